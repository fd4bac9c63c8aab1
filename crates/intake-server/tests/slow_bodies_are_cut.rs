//! A body that arrives slower than `limits.min_body_bytes_per_second`
//! (after `limits.body_rate_grace`) is cut with 408 `request_body_too_slow`
//! and its connection closed, long before `request_read_timeout`; a body
//! that keeps up, even with pauses, is stored. Raw bytes on a real socket,
//! paced by the test.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod fixture;

use std::time::{Duration, Instant};

use fixture::TestNode;
use intake_server::{Limits, run};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// 1,000 bytes per second after 1 s; 30 s in all.
fn limits() -> Limits {
    Limits {
        min_body_bytes_per_second: 1000,
        body_rate_grace: Duration::from_secs(1),
        request_read_timeout: Duration::from_secs(30),
        ..Limits::default()
    }
}

async fn serve(node: &TestNode) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = node.state.clone();
    tokio::spawn(run(listener, state, std::future::pending()));
    addr
}

/// A JSON record of exactly `len` bytes.
fn record(len: usize) -> Vec<u8> {
    let empty = json!({"pad": ""}).to_string().len();
    json!({"pad": "x".repeat(len - empty)})
        .to_string()
        .into_bytes()
}

/// Sends the head and `parts` of `body`, each after its pause; returns the
/// whole answer (the connection must close after it) and how long it took
/// from the head.
async fn send_paced(
    addr: std::net::SocketAddr,
    body: &[u8],
    parts: &[(Duration, usize)],
) -> (String, Duration) {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/streams/s/records HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut at = 0;
    for &(pause, len) in parts {
        tokio::time::sleep(pause).await;
        if socket.write_all(&body[at..at + len]).await.is_err() {
            break; // cut already
        }
        at += len;
    }
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        let mut buf = [0u8; 4096];
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    // A kept-alive connection stays open after a 200.
                    if answer.starts_with(b"HTTP/1.1 200") && answer.ends_with(b"}") {
                        break;
                    }
                }
            }
        }
    });
    read.await.expect("the answer, then the close, within 20 s");
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_below_the_rate_is_cut_when_its_bytes_run_out() {
    let node = TestNode::new(limits()).await;
    node.create(json!({"name": "s"})).await;
    let addr = serve(&node).await;
    let body = record(10_000);
    // 3,000 bytes at once cover 3 s at 1,000 bytes/s; then nothing.
    let (answer, took) = send_paced(addr, &body, &[(Duration::ZERO, 3000)]).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_body_too_slow"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(
        took >= Duration::from_millis(2800) && took < Duration::from_secs(10),
        "cut after {took:?}, expected about 3 s"
    );
    // A trickle in the grace period: cut when the grace ends, at 1 s.
    let (answer, took) = send_paced(addr, &body, &[(Duration::ZERO, 10)]).await;
    assert!(answer.contains("request_body_too_slow"), "{answer}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "cut after {took:?}, expected about 1 s"
    );
    assert!(node.values("s").await.is_empty(), "nothing was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_keeps_up_is_stored_despite_pauses() {
    let node = TestNode::new(limits()).await;
    node.create(json!({"name": "s"})).await;
    let addr = serve(&node).await;
    let body = record(10_000);
    // 3,000 bytes, a pause of 2 s (of the 3 s they cover), the rest.
    let parts = [
        (Duration::ZERO, 3000),
        (Duration::from_secs(2), body.len() - 3000),
    ];
    let (answer, _) = send_paced(addr, &body, &parts).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(node.values("s").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_of_zero_leaves_only_the_read_timeout() {
    let node = TestNode::new(Limits {
        min_body_bytes_per_second: 0,
        request_read_timeout: Duration::from_secs(3),
        ..limits()
    })
    .await;
    node.create(json!({"name": "s"})).await;
    let addr = serve(&node).await;
    let body = record(10_000);
    let (answer, took) = send_paced(addr, &body, &[(Duration::ZERO, 10)]).await;
    assert!(answer.contains("request_read_timeout"), "{answer}");
    assert!(
        took >= Duration::from_millis(2800),
        "cut after {took:?}, expected 3 s"
    );
}
