//! At the process's open files limit (every partition keeps its active
//! segment open), making another stream is answered 503
//! `too_many_open_files` with `Retry-After`, not 500; nothing made before
//! is harmed, and once the limit is raised the same stream is made. Its
//! own test binary: it lowers the limit of the whole process.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod fixture;

use fixture::{TestNode, code, message};
use intake_server::Limits;
use rlimit::Resource;
use serde_json::{Value, json};

async fn create(node: &TestNode, name: &str) -> (u16, axum::http::HeaderMap, Value) {
    let definition = json!({"name": name}).to_string();
    node.post("/v1/streams", Some("application/json"), definition)
        .await
}

async fn push(node: &TestNode, stream: &str) -> u16 {
    let path = format!("/v1/streams/{stream}/records");
    node.post(&path, Some("application/json"), r#"{"n":1}"#)
        .await
        .0
}

fn open_files() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_open_files_limit_a_new_stream_is_503_then_made() {
    let node = TestNode::new(Limits::default()).await;
    assert_eq!(create(&node, "first").await.0, 201);
    assert_eq!(push(&node, "first").await, 200);
    let (soft, hard) = Resource::NOFILE.get().unwrap();
    Resource::NOFILE.set(open_files() + 24, hard).unwrap();
    let mut made = Vec::new();
    let refused = loop {
        let name = format!("s{}", made.len());
        let (status, headers, body) = create(&node, &name).await;
        if status != 201 {
            break (name, status, headers, body);
        }
        made.push(name);
        assert!(made.len() < 100, "24 file handles cannot hold 100 streams");
    };
    let (name, status, headers, body) = refused;
    Resource::NOFILE.set(soft, hard).unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(code(&body), "too_many_open_files", "{body}");
    assert_eq!(headers["retry-after"], "1");
    assert!(message(&body).contains("open files limit"), "{body}");
    // The limit raised, the same stream is made and takes records; the
    // streams made before still do.
    let (status, _, body) = create(&node, &name).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(push(&node, &name).await, 200);
    for stream in made.iter().map(String::as_str).chain(["first"]) {
        assert_eq!(push(&node, stream).await, 200, "{stream}");
    }
}
