//! A real full disk: the data directory on a 1 MiB tmpfs the test mounts
//! (it runs as root, like CI). Pushes past the space get 507 with
//! `Retry-After`, nothing acknowledged is lost or torn, and writes resume
//! once space returns (the tmpfs is grown), also after a restart.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

use std::path::Path;
use std::process::Command;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use intake_core::{CoreConfig, Node};
use intake_server::{AppState, Limits, router};
use serde_json::{Value, json};
use tower::ServiceExt;

/// Unmounts the tmpfs when the test ends, however it ends.
struct Mount(tempfile::TempDir);

impl Mount {
    fn tmpfs(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("the mount command runs");
        assert!(
            status.success(),
            "mounting a tmpfs failed: this test needs root (CI runs as root)"
        );
        Self(dir)
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

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

async fn push(state: &AppState, n: usize) -> (u16, axum::http::HeaderMap, Value) {
    let record = json!({"n": n, "pad": "x".repeat(16 * 1024)});
    call(
        state,
        Request::post("/v1/streams/s/records")
            .header("content-type", "application/json")
            .body(Body::from(record.to_string()))
            .unwrap(),
    )
    .await
}

/// Every `n` in the stream, in order.
async fn read_all(state: &AppState) -> Vec<u64> {
    let (status, _, body) = call(
        state,
        Request::get("/v1/streams/s/partitions/0/records?limit=10000")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"]["n"].as_u64().unwrap())
        .collect()
}

async fn open(dir: &Path) -> AppState {
    let mut core = CoreConfig::new(dir);
    core.log.segment_bytes = 256 * 1024;
    AppState::new(Node::open(core).await.unwrap(), Limits::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_is_507_then_writes_resume() {
    let mount = Mount::tmpfs("1m");
    let state = open(mount.path()).await;
    let (status, _, body) = call(
        &state,
        Request::post("/v1/streams")
            .header("content-type", "application/json")
            .body(Body::from(json!({"name": "s"}).to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    let mut acked = 0usize;
    let (status, headers, body) = loop {
        let (status, headers, body) = push(&state, acked).await;
        if status != 200 {
            break (status, headers, body);
        }
        acked += 1;
        assert!(acked < 200, "1 MiB cannot hold 200 records of 16 KiB");
    };
    assert!(acked > 10, "some records fit first: {acked}");
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["error"]["code"], "insufficient_storage");
    assert_eq!(headers["retry-after"], "1");
    // Still full: refused again, the log is not poisoned or torn.
    assert_eq!(push(&state, acked).await.0, 507);
    assert_eq!(
        read_all(&state).await,
        (0..acked as u64).collect::<Vec<_>>()
    );

    // Space returns: writes resume without a restart.
    mount.resize("4m");
    let (status, _, body) = push(&state, acked).await;
    assert_eq!(status, 200, "{body}");
    acked += 1;
    state.node.shutdown().await;
    drop(state);

    // After a restart every acknowledged record is there, in order.
    let state = open(mount.path()).await;
    assert_eq!(
        read_all(&state).await,
        (0..acked as u64).collect::<Vec<_>>()
    );
    assert_eq!(push(&state, acked).await.0, 200);
    state.node.shutdown().await;
}
