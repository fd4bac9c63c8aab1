//! Every request limit of `[limits]`, at its edge and one step past it:
//! decompressed size, JSON depth, header count and size, slow clients,
//! open connections, and per-stream request rates.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod fixture;

use std::io::Write;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use fixture::{TestNode, code};
use intake_server::{Limits, run};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const JSON: Option<&str> = Some("application/json");

/// A JSON string record of exactly `len` bytes.
fn json_string_of(len: usize) -> Vec<u8> {
    format!("\"{}\"", "a".repeat(len - 2)).into_bytes()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

async fn push_encoded(
    node: &TestNode,
    encoding: &str,
    body: Vec<u8>,
) -> (u16, axum::http::HeaderMap, serde_json::Value) {
    node.call(
        Request::post("/v1/streams/s/records")
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(Body::from(body))
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn decompressed_size_at_and_past_the_limit() {
    let limits = Limits {
        max_decompressed_bytes: 1000,
        ..Limits::default()
    };
    let node = TestNode::new(limits).await;
    node.create(json!({"name": "s"})).await;
    for (name, encode) in [
        ("gzip", gzip as fn(&[u8]) -> Vec<u8>),
        ("deflate", deflate),
        ("zstd", zstd),
    ] {
        let (status, _, body) = push_encoded(&node, name, encode(&json_string_of(1000))).await;
        assert_eq!(status, 200, "{name} at the limit: {body}");
        let (status, _, body) = push_encoded(&node, name, encode(&json_string_of(1001))).await;
        assert_eq!(
            (status, code(&body)),
            (413, "decompressed_too_large"),
            "{name} past the limit: {body}"
        );
    }
    let (status, _, body) = push_encoded(&node, "br", b"{}".to_vec()).await;
    assert_eq!((status, code(&body)), (415, "unsupported_encoding"));
    let (status, _, body) = push_encoded(&node, "gzip", b"not gzip".to_vec()).await;
    assert_eq!((status, code(&body)), (400, "bad_request"), "{body}");
    let (_, _, read) = node.get("/v1/streams/s/partitions/0/records").await;
    assert_eq!(
        read["records"].as_array().unwrap().len(),
        3,
        "only the good ones"
    );
}

#[tokio::test]
async fn a_gzip_bomb_is_413_without_inflating() {
    let limits = Limits {
        max_decompressed_bytes: 1 << 20,
        ..Limits::default()
    };
    let node = TestNode::new(limits).await;
    node.create(json!({"name": "s"})).await;
    // 256 MiB of spaces inside a JSON array: about 250 KiB of gzip.
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b"[").unwrap();
    let spaces = vec![b' '; 1 << 20];
    for _ in 0..256 {
        e.write_all(&spaces).unwrap();
    }
    e.write_all(b"]").unwrap();
    let bomb = e.finish().unwrap();
    assert!(bomb.len() < 2 << 20, "{}", bomb.len());
    let started = Instant::now();
    let (status, _, body) = push_encoded(&node, "gzip", bomb).await;
    assert_eq!((status, code(&body)), (413, "decompressed_too_large"));
    assert!(started.elapsed() < Duration::from_secs(5), "stopped early");
}

#[tokio::test]
async fn json_depth_at_and_past_the_limit() {
    let limits = Limits {
        max_json_depth: 4,
        ..Limits::default()
    };
    let node = TestNode::new(limits).await;
    node.create(json!({"name": "s"})).await;
    let (status, _, body) = node
        .post("/v1/streams/s/records", JSON, r#"{"a":[{"b":[1]}]}"#)
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = node
        .post("/v1/streams/s/records", JSON, r#"{"a":[{"b":[[1]]}]}"#)
        .await;
    assert_eq!((status, code(&body)), (400, "json_too_deep"), "{body}");
    assert!(
        fixture::message(&body).contains("deeper than 4 levels"),
        "{body}"
    );
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let (status, _, body) = node.post("/v1/streams/s/records", JSON, deep).await;
    assert_eq!((status, code(&body)), (400, "json_too_deep"));
    // The REST Proxy face pushes items: each is held to the same depth.
    let items = json!({"records": [{"value": {"a": [{"b": [[1]]}]}}]});
    let (status, _, body) = node
        .post(
            "/topics/s",
            Some("application/vnd.kafka.json.v2+json"),
            items.to_string(),
        )
        .await;
    assert_eq!(status, 400, "{body}");
}

/// A node on a real socket; returns its address and the stop sender.
async fn serve(node: &TestNode) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(run(listener, node.state.clone(), async move {
        stopped.await.ok();
    }));
    (addr, stop)
}

/// Sends `request` on a fresh connection and returns everything the server
/// writes until it closes the connection or 3 s pass.
async fn raw(addr: &str, request: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), tcp.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn get_with_headers(count: usize, value_len: usize) -> Vec<u8> {
    // `Host` and `Connection` count too.
    let mut head = String::from("GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n");
    for i in 0..count - 2 {
        head.push_str(&format!("x-h{i}: {}\r\n", "v".repeat(value_len)));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_count_and_size_at_and_past_the_limit() {
    let limits = Limits {
        max_headers: 20,
        max_header_bytes: 8192,
        ..Limits::default()
    };
    let node = TestNode::new(limits).await;
    let (addr, _stop) = serve(&node).await;
    let at = raw(&addr, &get_with_headers(20, 1)).await;
    assert!(at.starts_with("HTTP/1.1 200"), "{at}");
    let past = raw(&addr, &get_with_headers(21, 1)).await;
    assert!(past.starts_with("HTTP/1.1 431"), "{past}");
    // 10 headers of 700 bytes: a head of about 7.3 KiB passes; 12 (8.7 KiB)
    // do not fit the 8 KiB buffer.
    let under = raw(&addr, &get_with_headers(10, 700)).await;
    assert!(under.starts_with("HTTP/1.1 200"), "{under}");
    let over = raw(&addr, &get_with_headers(14, 700)).await;
    assert!(over.starts_with("HTTP/1.1 431"), "{over}");
    let flood = raw(&addr, &get_with_headers(10_000, 1)).await;
    assert!(flood.starts_with("HTTP/1.1 431"), "{flood}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_get_408_or_are_closed() {
    let limits = Limits {
        request_read_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let node = TestNode::new(limits).await;
    node.create(json!({"name": "s"})).await;
    let (addr, _stop) = serve(&node).await;
    let head = "POST /v1/streams/s/records HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 4\r\nconnection: close\r\n\r\n";

    // Within the time, one byte every 200 ms: accepted.
    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    for b in b"\"ab\"" {
        tokio::time::sleep(Duration::from_millis(200)).await;
        tcp.write_all(&[*b]).await.unwrap();
    }
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");

    // One byte a second: 408 once the second is up.
    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let slow = async {
        for b in b"\"ab\"" {
            if tcp.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(1500), slow).await;
    let mut out = String::new();
    let _ = tcp.read_to_string(&mut out).await;
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
    assert!(out.contains("request_read_timeout"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(3));

    // A head that never ends: closed after the timeout.
    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), tcp.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the connection is closed");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(2500),
        "{waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_at_and_past_the_limit() {
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let node = TestNode::new(limits).await;
    let (addr, _stop) = serve(&node).await;
    let keep_alive = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n";
    let mut first = TcpStream::connect(&addr).await.unwrap();
    let mut second = TcpStream::connect(&addr).await.unwrap();
    for conn in [&mut first, &mut second] {
        conn.write_all(keep_alive).await.unwrap();
        let mut buf = [0u8; 12];
        conn.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200");
    }
    let refused = raw(&addr, keep_alive).await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(
        refused.to_ascii_lowercase().contains("retry-after: 1"),
        "{refused}"
    );
    assert!(refused.contains("too_many_connections"), "{refused}");
    drop(first);
    // The freed slot is taken by the next connection.
    let mut ok = String::new();
    for _ in 0..50 {
        ok = raw(
            &addr,
            b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
        .await;
        if ok.starts_with("HTTP/1.1 200") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
}

#[tokio::test]
async fn stream_rate_at_and_past_the_limit() {
    let limits = Limits {
        stream_requests_per_second: Some(3),
        ..Limits::default()
    };
    let node = TestNode::new(limits).await;
    node.create(json!({"name": "s"})).await;
    node.create(json!({"name": "t"})).await;
    for _ in 0..3 {
        let (status, _, body) = node.post("/v1/streams/s/records", JSON, "{}").await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, headers, body) = node.post("/v1/streams/s/records", JSON, "{}").await;
    assert_eq!((status, code(&body)), (429, "rate_limited"), "{body}");
    assert_eq!(headers["retry-after"], "1");
    // Another stream has its own budget, on every face.
    let (status, _, _) = node.post("/v1/streams/t/records", JSON, "{}").await;
    assert_eq!(status, 200);
    let (status, headers, _) = node
        .post(
            "/topics/s",
            Some("application/vnd.kafka.json.v2+json"),
            json!({"records": [{"value": 1}]}).to_string(),
        )
        .await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "1");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, _, _) = node.post("/v1/streams/s/records", JSON, "{}").await;
    assert_eq!(status, 200, "refilled");
}
