//! The server on a real socket: push, read, live tail over SSE, and a
//! graceful shutdown that finishes in-flight requests before closing the log.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod fixture;

use std::sync::Arc;
use std::time::Duration;

use fixture::TestNode;
use futures::StreamExt;
use intake_log::MemoryFilesystem;
use intake_server::{Limits, run};
use serde_json::{Value, json};

async fn serve(
    node: &TestNode,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let state = node.state.clone();
    let server = tokio::spawn(run(listener, state, async move {
        stopped.await.ok();
    }));
    (url, stop, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_read_and_tail() {
    let node = TestNode::new(Limits::default()).await;
    let (url, stop, server) = serve(&node).await;
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{url}/v1/streams"))
        .json(&json!({"name": "demo", "partitions": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    // A tail from the end sees only what comes after it.
    let tail = http
        .get(format!("{url}/v1/streams/demo/tail"))
        .send()
        .await
        .unwrap();
    assert_eq!(tail.headers()["content-type"], "text/event-stream");
    let mut events = tail.bytes_stream();

    let pushed: Value = http
        .post(format!("{url}/v1/streams/demo/records"))
        .header("content-type", "application/x-ndjson")
        .body("{\"n\":1}\n{\"n\":2}\n")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pushed["records"], 2);
    let partition = pushed["partitions"][0]["partition"].as_u64().unwrap();
    assert_eq!(pushed["partitions"][0]["first_offset"], 0);
    assert_eq!(pushed["partitions"][0]["last_offset"], 1);

    let mut text = String::new();
    while text.matches("data:").count() < 2 {
        let chunk = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let records: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| serde_json::from_str(d.trim()).unwrap())
        .collect();
    assert_eq!(records[0]["value"], json!({"n": 1}));
    assert_eq!(records[1]["value"], json!({"n": 2}));
    assert_eq!(records[1]["offset"], 1);
    assert_eq!(records[1]["partition"], partition);
    assert!(text.contains(&format!("id: {partition}:1")), "{text}");

    let read: Value = http
        .get(format!(
            "{url}/v1/streams/demo/partitions/{partition}/records?offset=1&limit=5"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["records"].as_array().unwrap().len(), 1);
    assert_eq!(read["next_offset"], 2);
    assert!(read["records"][0]["timestamp"].as_i64().unwrap() > 1_700_000_000_000);
    assert_eq!(read["records"][0]["headers"], json!({}));
    assert_eq!(read["records"][0]["key"], Value::Null);

    // Shutdown ends the open tail instead of waiting for it.
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_requests_then_refuses() {
    let mem = MemoryFilesystem::new();
    let node = TestNode::with_fs(Limits::default(), Arc::new(mem.clone())).await;
    node.create(json!({"name": "s"})).await;
    let (url, stop, server) = serve(&node).await;
    mem.set_sync_delay(Duration::from_millis(400));
    let http = reqwest::Client::new();
    let in_flight = tokio::spawn({
        let http = http.clone();
        let url = url.clone();
        async move {
            http.post(format!("{url}/v1/streams/s/records"))
                .body("{\"kept\":true}")
                .send()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    let answer = in_flight.await.unwrap().unwrap();
    assert_eq!(answer.status(), 200, "the in-flight push finished");
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // New connections are refused once the listener is gone.
    assert!(http.get(format!("{url}/healthz")).send().await.is_err());
    // And what was acknowledged is durable: it survives a power loss.
    let after = mem.crash();
    let p = intake_log::Partition::open(
        Arc::new(after),
        node.dir.path().join("streams/s/0"),
        intake_log::PartitionConfig::default(),
    )
    .unwrap();
    assert_eq!(p.next_offset(), 1);
}
