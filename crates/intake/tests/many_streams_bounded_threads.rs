//! Threads do not grow with streams: 200 streams of 2 partitions, each
//! with a Kafka sink and a NATS sink to the same brokers, pushed to once
//! each, leave the node with about the threads it started with (one commit
//! and one checkpoint thread for every partition, one Kafka producer and
//! one NATS connection for every sink). Before, each partition had a
//! writer thread and each Kafka sink a producer with threads of its own.
//! Needs NATS at 127.0.0.1:4222; the Kafka broker may be absent (its
//! producer only retries).
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod support;

use serde_json::json;
use support::{Intake, create_stream, push};

const STREAMS: usize = 200;

fn threads(node: &Intake) -> usize {
    std::fs::read_dir(format!("/proc/{}/task", node.pid()))
        .unwrap()
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn threads_stay_flat_as_streams_and_sinks_grow() {
    let data = tempfile::tempdir().unwrap();
    let node = Intake::serve_with_env(data.path(), &[], &[("INTAKE_LOG", "off")]);
    let http = reqwest::Client::new();
    let subject = support::unique("intake.threads");
    create_stream(&http, &node, json!({"name": "first", "partitions": 2})).await;
    let before = threads(&node);
    for i in 0..STREAMS {
        create_stream(
            &http,
            &node,
            json!({"name": format!("s{i}"), "partitions": 2, "sinks": [
                {"name": "k", "kind": "kafka", "brokers": "127.0.0.1:9", "topic": "t"},
                {"name": "n", "kind": "nats", "url": "nats://127.0.0.1:4222",
                 "subject": format!("{subject}.{i}")}]}),
        )
        .await;
    }
    for i in 0..STREAMS {
        push(&http, &node, &format!("s{i}"), &[json!({"i": i})])
            .await
            .unwrap();
    }
    let after = threads(&node);
    eprintln!("threads: {before} with one stream, {after} with {STREAMS} more");
    assert!(
        after <= before + 16,
        "{before} threads with one stream, {after} with {} more (and their sinks)",
        STREAMS
    );
}
