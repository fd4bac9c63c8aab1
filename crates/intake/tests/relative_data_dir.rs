//! `--data-dir data`: a one-part relative data directory (the docs' own
//! examples use one). Its parent is the empty path, which the node must
//! take as the working directory when it syncs directories: the node
//! opens, stores, forwards (the sink's cursor file), restarts and reads
//! back what it acknowledged.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod support;

use std::path::Path;

use serde_json::{Value, json};
use support::{Intake, create_stream, get_json, push, unique, wait_forwarded};

#[tokio::test(flavor = "multi_thread")]
async fn a_node_opens_and_reopens_a_relative_data_dir() {
    let cwd = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let subject = unique("intake.relative");
    let node = Intake::serve_in(cwd.path(), Path::new("data"), &[]);
    create_stream(
        &http,
        &node,
        json!({"name": "rel", "partitions": 1,
               "sinks": [{"name": "n1", "kind": "nats", "url": "nats://127.0.0.1:4222",
                          "subject": subject}]}),
    )
    .await;
    let acked = push(&http, &node, "rel", &[json!({"n": 1}), json!({"n": 2})])
        .await
        .unwrap();
    assert_eq!(acked, [(0, 0), (0, 1)]);
    wait_forwarded(&http, &node, "rel").await;
    drop(node);
    assert!(
        cwd.path().join("data/journal").is_dir(),
        "the data directory is made relative to the working directory"
    );

    let node = Intake::serve_in(cwd.path(), Path::new("data"), &[]);
    let page = get_json(&http, &node, "/v1/streams/rel/partitions/0/records").await;
    let values: Vec<&Value> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["value"])
        .collect();
    assert_eq!(values, [&json!({"n": 1}), &json!({"n": 2})], "{page}");
    let sink = wait_forwarded(&http, &node, "rel").await;
    assert_eq!(sink["lag_records"], 0, "{sink}");
}
