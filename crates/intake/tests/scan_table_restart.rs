//! A scan table keeps exactly its last `retain_size` rows across a restart
//! (and a SIGKILL): the real binary, rows read before and after.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod support;

use serde_json::{Value, json};
use support::{Intake, create_stream, push};

async fn rows(http: &reqwest::Client, node: &Intake, table: &str) -> Vec<Value> {
    let body: Value = http
        .get(node.url(&format!("/v1/tables/{table}/rows?limit=1000")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["rows"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_survive_a_restart_and_a_kill() {
    let data = tempfile::tempdir().unwrap();
    let mut node = Intake::serve(data.path(), &[]);
    let http = reqwest::Client::new();
    create_stream(
        &http,
        &node,
        json!({"name": "by_key", "kind": "table", "retain_size": 15,
               "key_field": "device", "timestamp_field": "ts", "partitions": 3}),
    )
    .await;
    create_stream(
        &http,
        &node,
        json!({"name": "last", "kind": "table", "retain_size": 25,
               "timestamp_field": "ts", "partitions": 2}),
    )
    .await;
    // Distinct timestamps: "latest" is by record time, then partition.
    for n in 0..200 {
        let (device, ts) = (format!("d{}", n % 20), 1_700_000_000_000_i64 + n);
        push(
            &http,
            &node,
            "by_key",
            &[json!({"device": device, "n": n, "ts": ts})],
        )
        .await
        .unwrap();
        push(&http, &node, "last", &[json!({"n": n, "ts": ts})])
            .await
            .unwrap();
    }
    let keyed = rows(&http, &node, "by_key").await;
    let last = rows(&http, &node, "last").await;
    assert_eq!(keyed.len(), 15);
    assert_eq!(last.len(), 25);
    // The newest write of each of the 15 most recently written devices.
    let mut got: Vec<i64> = keyed.iter().map(|r| r["n"].as_i64().unwrap()).collect();
    got.sort_unstable();
    assert_eq!(got, (185..200).collect::<Vec<i64>>());
    let mut got: Vec<i64> = last.iter().map(|r| r["n"].as_i64().unwrap()).collect();
    got.sort_unstable();
    assert_eq!(got, (175..200).collect::<Vec<i64>>());

    drop(node);
    node = Intake::serve(data.path(), &[]);
    assert_eq!(rows(&http, &node, "by_key").await, keyed, "after a restart");
    assert_eq!(rows(&http, &node, "last").await, last);
    node.kill();
    let node = Intake::serve(data.path(), &[]);
    assert_eq!(rows(&http, &node, "by_key").await, keyed, "after SIGKILL");
    assert_eq!(rows(&http, &node, "last").await, last);
}
