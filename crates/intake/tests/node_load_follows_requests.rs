//! The load a node reports follows the requests it holds: with 18 of its
//! 20 allowed requests in flight (pushes whose bodies arrive slowly), the
//! dashboard's `load`, the `intake_node_load` gauge and the load its
//! heartbeat gives the manager (what InLong's SDK picks nodes by) stand
//! at 200 × 18/20 = 180, and they fall back once the requests end.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Intake, create_stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MAX_CONCURRENT: usize = 20;
const HELD: usize = 18;
const BODY: &str = r#"{"temp": 21.5}"#;

/// A push whose head and first body byte are sent, the rest held back.
async fn start_slow_push(addr: &str) -> TcpStream {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/streams/load/records HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{}",
        BODY.len(),
        &BODY[..1]
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket
}

/// Sends the rest of the body; the node's status line.
async fn finish_slow_push(mut socket: TcpStream) -> String {
    socket.write_all(&BODY.as_bytes()[1..]).await.unwrap();
    let mut answer = vec![0; 1024];
    let n = socket.read(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The node's own load, from its dashboard data and from its metrics.
async fn own_load(http: &reqwest::Client, node: &Intake) -> (u64, f64) {
    let overview: Value = http
        .get(node.url("/v1/overview"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let metrics = http
        .get(node.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let gauge = metrics
        .lines()
        .find_map(|l| l.strip_prefix("intake_node_load "))
        .unwrap_or_else(|| panic!("no intake_node_load in {metrics}"))
        .parse()
        .unwrap();
    (overview["node"]["load"].as_u64().unwrap(), gauge)
}

/// The load the manager last heard from the node (one node registered).
async fn load_at_manager(http: &reqwest::Client, manager: &Intake) -> Option<u64> {
    let nodes: Value = http
        .get(manager.url("/v1/cluster/nodes"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    nodes["nodes"][0]["load"].as_u64()
}

/// Polls `check` every 100 ms until it holds, for at most 10 s.
async fn eventually<F: AsyncFnMut() -> Result<(), String>>(what: &str, mut check: F) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match check().await {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn load_rises_with_requests_in_flight_and_falls_back() {
    let (manager_dir, node_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let manager = Intake::serve(manager_dir.path(), &["--manager"]);
    let max = MAX_CONCURRENT.to_string();
    let node = Intake::serve_with_env(
        node_dir.path(),
        &["--join", &manager.url("")],
        &[
            ("INTAKE_LIMITS__MAX_CONCURRENT_REQUESTS", &max),
            ("INTAKE_CLUSTER__HEARTBEAT_INTERVAL", "300ms"),
        ],
    );
    let http = reqwest::Client::new();
    // A joined node takes its streams from the manager.
    create_stream(&http, &manager, json!({"name": "load"})).await;
    eventually("the node opens the manager's stream", async || {
        match http
            .get(node.url("/v1/streams/load"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
        {
            200 => Ok(()),
            other => Err(format!("{other}")),
        }
    })
    .await;

    // Idle: the node and the manager see (almost) nothing.
    eventually("idle load", async || match own_load(&http, &node).await {
        (0, 0.0) => Ok(()),
        other => Err(format!("{other:?}")),
    })
    .await;
    eventually(
        "the manager hears the idle node",
        async || match load_at_manager(&http, &manager).await {
            Some(load) if load < 50 => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;

    let mut held = Vec::new();
    for _ in 0..HELD {
        held.push(start_slow_push(&node.addr).await);
    }
    let expected = (200 * HELD / MAX_CONCURRENT) as u64;
    eventually("load under held requests", async || {
        match own_load(&http, &node).await {
            (load, gauge) if load == expected && gauge == expected as f64 => Ok(()),
            other => Err(format!("{other:?}, expected {expected}")),
        }
    })
    .await;
    // The heartbeat's load is the largest of the request share, the write
    // queues and the CPU share: at least the request share.
    eventually(
        "the manager hears the load",
        async || match load_at_manager(&http, &manager).await {
            Some(load) if load >= expected => Ok(()),
            other => Err(format!("{other:?}, expected at least {expected}")),
        },
    )
    .await;

    for socket in held {
        assert_eq!(finish_slow_push(socket).await, "HTTP/1.1 200 OK");
    }
    eventually("load after the requests ended", async || {
        match own_load(&http, &node).await {
            (0, 0.0) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    eventually(
        "the manager hears the load fall",
        async || match load_at_manager(&http, &manager).await {
            Some(load) if load < 50 => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    let stored: Value = http
        .get(node.url("/v1/streams/load"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["status"][0]["next_offset"], HELD as u64);
}
