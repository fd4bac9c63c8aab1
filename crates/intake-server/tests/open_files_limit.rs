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

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use intake_core::{CoreConfig, Node};
use intake_server::{AppState, Limits, router};
use rlimit::Resource;
use serde_json::{Value, json};
use tower::ServiceExt;

async fn call(state: &AppState, req: Request<Body>) -> (u16, axum::http::HeaderMap, Value) {
    let response = router(state.clone()).oneshot(req).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn create(state: &AppState, name: &str) -> (u16, axum::http::HeaderMap, Value) {
    call(
        state,
        Request::post("/v1/streams")
            .header("content-type", "application/json")
            .body(Body::from(json!({"name": name}).to_string()))
            .unwrap(),
    )
    .await
}

async fn push(state: &AppState, stream: &str) -> u16 {
    call(
        state,
        Request::post(format!("/v1/streams/{stream}/records"))
            .header("content-type", "application/json")
            .body(Body::from(r#"{"n":1}"#))
            .unwrap(),
    )
    .await
    .0
}

fn open_files() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_open_files_limit_a_new_stream_is_503_then_made() {
    let dir = tempfile::tempdir().unwrap();
    let state = AppState::new(
        Node::open(CoreConfig::new(dir.path())).await.unwrap(),
        Limits::default(),
    );
    assert_eq!(create(&state, "first").await.0, 201);
    assert_eq!(push(&state, "first").await, 200);
    let (soft, hard) = Resource::NOFILE.get().unwrap();
    Resource::NOFILE.set(open_files() + 24, hard).unwrap();
    let mut made = Vec::new();
    let refused = loop {
        let name = format!("s{}", made.len());
        let (status, headers, body) = create(&state, &name).await;
        if status != 201 {
            break (name, status, headers, body);
        }
        made.push(name);
        assert!(made.len() < 100, "24 file handles cannot hold 100 streams");
    };
    let (name, status, headers, body) = refused;
    Resource::NOFILE.set(soft, hard).unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "too_many_open_files", "{body}");
    assert_eq!(headers["retry-after"], "1");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("open files limit"),
        "{body}"
    );
    // The limit raised, the same stream is made and takes records; the
    // streams made before still do.
    let (status, _, body) = create(&state, &name).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(push(&state, &name).await, 200);
    for stream in made.iter().map(String::as_str).chain(["first"]) {
        assert_eq!(push(&state, stream).await, 200, "{stream}");
    }
}
