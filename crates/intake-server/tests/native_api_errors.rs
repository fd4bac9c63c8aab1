//! Every error status of the native API, through the router, with its
//! JSON body.
#![allow(clippy::unwrap_used, reason = "a panic in a test is a failed test")]

mod fixture;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use fixture::{TestNode, code, message};
use intake_log::MemoryFilesystem;
use intake_server::Limits;
use serde_json::json;

const JSON: Option<&str> = Some("application/json");

#[tokio::test]
async fn unknown_stream_is_404() {
    let node = TestNode::new(Limits::default()).await;
    for (status, body) in [
        node.post("/v1/streams/nope/records", JSON, "{}").await,
        node.get("/v1/streams/nope").await,
        node.get("/v1/streams/nope/partitions/0/records").await,
        node.get("/v1/streams/nope/tail").await,
    ]
    .map(|(s, _, b)| (s, b))
    {
        assert_eq!(status, 404);
        assert_eq!(
            body,
            json!({"error": {"code": "stream_not_found", "message": "stream \"nope\" does not exist"}})
        );
    }
    node.create(json!({"name": "s"})).await;
    let (status, _, body) = node.get("/v1/streams/s/partitions/3/records").await;
    assert_eq!(status, 404);
    assert_eq!(code(&body), "partition_not_found");
    assert_eq!(message(&body), "stream \"s\" has no partition 3 (it has 1)");
    let (status, _, body) = node.get("/no/such/path").await;
    assert_eq!((status, code(&body)), (404, "not_found"));
}

#[tokio::test]
async fn malformed_bodies_are_400_naming_line_column_or_record() {
    let node = TestNode::new(Limits::default()).await;
    node.create(json!({"name": "s", "timestamp_field": "ts"}))
        .await;
    let (status, _, body) = node
        .post("/v1/streams/s/records", JSON, "[{\"a\": 1},\n {\"b\": }]")
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": {"code": "malformed_body", "message": "malformed body at line 2, column 8: expected value"}})
    );
    let (status, _, body) = node
        .post(
            "/v1/streams/s/records",
            Some("application/x-ndjson"),
            "{\"ts\":1}\n{\"ts\":2}\nnot json\n",
        )
        .await;
    assert_eq!((status, code(&body)), (400, "malformed_body"));
    assert!(message(&body).contains("line 3"), "{body}");
    let (status, _, body) = node
        .post("/v1/streams/s/records", JSON, r#"[{"ts":1},{"ts":true}]"#)
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": {"code": "invalid_record", "message": "record 1: field \"ts\": expected epoch milliseconds or RFC 3339 text, got true"}})
    );
    // Nothing of the refused requests was written.
    let (_, _, read) = node.get("/v1/streams/s/partitions/0/records").await;
    assert_eq!(read["records"], json!([]));
    // Bad definitions and bad query parameters are 400 too.
    let (status, _, body) = node
        .post("/v1/streams", JSON, r#"{"name":"x","partitons":2}"#)
        .await;
    assert_eq!((status, code(&body)), (400, "bad_request"));
    assert!(
        message(&body).contains("unknown field `partitons`"),
        "{body}"
    );
    let (status, _, body) = node.post("/v1/streams", JSON, r#"{"name":"../etc"}"#).await;
    assert_eq!((status, code(&body)), (400, "invalid_definition"));
    let (status, _, body) = node
        .get("/v1/streams/s/partitions/0/records?offset=minus")
        .await;
    assert_eq!((status, code(&body)), (400, "bad_request"));
    let (status, _, body) = node
        .get("/v1/streams/s/partitions/0/records?limit=-1")
        .await;
    assert_eq!((status, code(&body)), (400, "bad_request"));
    // Counts past the type's range mean "as many as allowed".
    let huge = "99999999999999999999999999";
    let (status, _, body) = node
        .get(&format!(
            "/v1/streams/s/partitions/0/records?limit={huge}&max_bytes={huge}"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = node
        .get(&format!("/v1/streams/s/partitions/0/records?offset={huge}"))
        .await;
    assert_eq!((status, code(&body)), (416, "offset_out_of_range"));
    let (status, _, body) = node.get("/v1/streams/s/tail?from=yesterday").await;
    assert_eq!((status, code(&body)), (400, "bad_request"));
}

#[tokio::test]
async fn body_limit_is_413_just_past_the_edge() {
    let limits = Limits {
        max_body_bytes: 1000,
        ..Limits::default()
    };
    let node = TestNode::new(limits).await;
    node.create(json!({"name": "s"})).await;
    let at = format!("\"{}\"", "x".repeat(998));
    assert_eq!(at.len(), 1000);
    let (status, _, body) = node.post("/v1/streams/s/records", JSON, at).await;
    assert_eq!(status, 200, "{body}");
    let past = format!("\"{}\"", "x".repeat(999));
    let (status, _, body) = node.post("/v1/streams/s/records", JSON, past.clone()).await;
    assert_eq!(status, 413);
    assert_eq!(
        body,
        json!({"error": {"code": "payload_too_large", "message": "request body is larger than the limit of 1000 bytes"}})
    );
    // Without a Content-Length (chunked), the limit still holds.
    let chunks = futures::stream::iter(vec![Ok::<_, std::io::Error>(past.into_bytes())]);
    let req = Request::post("/v1/streams/s/records")
        .header("content-type", "application/json")
        .body(Body::from_stream(chunks))
        .unwrap();
    let (status, _, body) = node.call(req).await;
    assert_eq!((status, code(&body)), (413, "payload_too_large"));
}

#[tokio::test]
async fn record_count_and_size_limits_are_413() {
    let limits = Limits {
        max_records_per_request: 3,
        max_record_bytes: 10,
        ..Limits::default()
    };
    let node = TestNode::new(limits).await;
    node.create(json!({"name": "s"})).await;
    assert_eq!(
        node.post("/v1/streams/s/records", JSON, "[1,2,3]").await.0,
        200
    );
    let (status, _, body) = node.post("/v1/streams/s/records", JSON, "[1,2,3,4]").await;
    assert_eq!((status, code(&body)), (413, "too_many_records"));
    assert_eq!(
        message(&body),
        "4 records in one request; at most 3 are accepted"
    );
    assert_eq!(
        node.post("/v1/streams/s/records", JSON, "[1234567890]")
            .await
            .0,
        200
    );
    let (status, _, body) = node
        .post("/v1/streams/s/records", JSON, "[1, 12345678901]")
        .await;
    assert_eq!((status, code(&body)), (413, "record_too_large"));
    assert_eq!(
        message(&body),
        "record 1: 11 bytes; at most 10 are accepted per record"
    );
}

#[tokio::test]
async fn unsupported_content_type_is_415() {
    let node = TestNode::new(Limits::default()).await;
    node.create(json!({"name": "s"})).await;
    let (status, _, body) = node
        .post(
            "/v1/streams/s/records",
            Some("application/x-www-form-urlencoded"),
            "{}",
        )
        .await;
    assert_eq!((status, code(&body)), (415, "unsupported_media_type"));
    assert_eq!(
        message(&body),
        "content type \"application/x-www-form-urlencoded\" is not accepted here; send application/json, application/x-ndjson, or application/octet-stream (read as the stream's format)"
    );
    // JSON variants and no content type at all are accepted.
    for ct in [
        Some("application/json; charset=utf-8"),
        Some("application/vnd.acme+json"),
        None,
    ] {
        assert_eq!(
            node.post("/v1/streams/s/records", ct, "{}").await.0,
            200,
            "{ct:?}"
        );
    }
    let (status, _, body) = node
        .post("/v1/streams", Some("text/plain"), r#"{"name":"t"}"#)
        .await;
    assert_eq!((status, code(&body)), (415, "unsupported_media_type"));
    assert_eq!(
        message(&body),
        "content type \"text/plain\" is not accepted here; send application/json"
    );
}

#[tokio::test]
async fn conflicts_and_ranges() {
    let node = TestNode::new(Limits::default()).await;
    node.create(json!({"name": "s"})).await;
    let (status, _, body) = node.post("/v1/streams", JSON, r#"{"name":"s"}"#).await;
    assert_eq!((status, code(&body)), (409, "stream_exists"));
    let req = Request::put("/v1/streams/s/state")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"state":"paused"}"#))
        .unwrap();
    assert_eq!(node.call(req).await.0, 200);
    let (status, _, body) = node.post("/v1/streams/s/records", JSON, "{}").await;
    assert_eq!((status, code(&body)), (409, "stream_paused"));
    let (status, _, body) = node
        .get("/v1/streams/s/partitions/0/records?offset=5")
        .await;
    assert_eq!((status, code(&body)), (416, "offset_out_of_range"));
    assert_eq!(
        message(&body),
        "offset 5 is out of range: this partition holds offsets 0 to 0 (exclusive)"
    );
    let req = Request::delete("/v1/streams/s/records")
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = node.call(req).await;
    assert_eq!((status, code(&body)), (405, "method_not_allowed"));
    assert_eq!(headers["allow"], "POST");
}

#[tokio::test]
async fn poisoned_log_is_503_with_retry_after() {
    let mem = MemoryFilesystem::new();
    let node = TestNode::with_fs(Limits::default(), Arc::new(mem.clone())).await;
    node.create(json!({"name": "s"})).await;
    assert_eq!(node.post("/v1/streams/s/records", JSON, "{}").await.0, 200);
    mem.fail_syncs(true);
    let (status, headers, body) = node.post("/v1/streams/s/records", JSON, "{}").await;
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(
        body,
        json!({"error": {"code": "log_unavailable", "message": "the log refuses writes after an I/O failure; retry on another node"}})
    );
    mem.fail_syncs(false);
    assert_eq!(
        node.post("/v1/streams/s/records", JSON, "{}").await.0,
        503,
        "stays poisoned"
    );
    let (status, _, body) = node.get("/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "not ready");
    // Reads still work.
    let (status, _, body) = node.get("/v1/streams/s/partitions/0/records").await;
    assert_eq!(status, 200);
    assert_eq!(body["records"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn full_disk_is_507_and_recovers() {
    let mem = MemoryFilesystem::new();
    let node = TestNode::with_fs(Limits::default(), Arc::new(mem.clone())).await;
    node.create(json!({"name": "s"})).await;
    mem.set_capacity(100);
    let (status, headers, body) = node
        .post(
            "/v1/streams/s/records",
            JSON,
            format!("\"{}\"", "x".repeat(200)),
        )
        .await;
    assert_eq!((status, code(&body)), (507, "insufficient_storage"));
    assert_eq!(headers["retry-after"], "1");
    mem.set_capacity(u64::MAX);
    assert_eq!(node.post("/v1/streams/s/records", JSON, "{}").await.0, 200);
}

#[tokio::test]
async fn slow_durability_is_408() {
    let mem = MemoryFilesystem::new();
    let limits = Limits {
        request_timeout: Duration::from_millis(100),
        ..Limits::default()
    };
    let node = TestNode::with_fs(limits, Arc::new(mem.clone())).await;
    node.create(json!({"name": "s"})).await;
    mem.set_sync_delay(Duration::from_millis(500));
    let (status, _, body) = node.post("/v1/streams/s/records", JSON, "{}").await;
    assert_eq!(status, 408);
    assert_eq!(
        body,
        json!({"error": {"code": "request_timeout", "message": "the request took longer than 100ms"}})
    );
}

#[tokio::test]
async fn draining_node_is_503_with_retry_after() {
    let node = TestNode::new(Limits::default()).await;
    node.create(json!({"name": "s"})).await;
    node.state.draining.cancel();
    let (status, headers, body) = node.post("/v1/streams/s/records", JSON, "{}").await;
    assert_eq!((status, code(&body)), (503, "shutting_down"));
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(headers["connection"], "close");
    assert_eq!(node.get("/readyz").await.0, 503);
    assert_eq!(
        node.get("/healthz").await.0,
        503,
        "draining refuses everything"
    );
}

#[tokio::test]
async fn concurrency_limit_sheds_with_503() {
    let mem = MemoryFilesystem::new();
    let limits = Limits {
        max_concurrent_requests: 1,
        ..Limits::default()
    };
    let node = TestNode::with_fs(limits, Arc::new(mem.clone())).await;
    node.create(json!({"name": "s"})).await;
    mem.set_sync_delay(Duration::from_millis(300));
    use tower::ServiceExt;
    let router = node.router();
    let first = router.clone();
    let slow = tokio::spawn(async move {
        let req = Request::post("/v1/streams/s/records")
            .body(Body::from("{}"))
            .unwrap();
        first.oneshot(req).await.unwrap().status().as_u16()
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let req = Request::post("/v1/streams/s/records")
        .body(Body::from("{}"))
        .unwrap();
    let response = router.oneshot(req).await.unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(slow.await.unwrap(), 200);
}

#[tokio::test]
async fn sink_errors_are_404_and_503_naming_the_sink() {
    let node = TestNode::new(Limits::default()).await;
    // Nothing listens on port 1: the sink's broker never acknowledges.
    let sink = json!([{"name": "n1", "kind": "nats", "url": "nats://127.0.0.1:1", "subject": "s"}]);
    node.create(json!({"name": "s", "ack": "sink", "ack_timeout_ms": 30000, "sinks": sink}))
        .await;
    node.create(json!({"name": "quick", "ack": "sink", "ack_timeout_ms": 200, "sinks": sink}))
        .await;

    let (status, _, body) = node.post("/v1/streams/s/sinks/nope/pause", None, "").await;
    assert_eq!((status, code(&body)), (404, "sink_not_found"));
    assert_eq!(message(&body), "stream has no sink named \"nope\"");

    let (status, headers, body) = node.post("/v1/streams/quick/records", JSON, "{}").await;
    assert_eq!((status, code(&body)), (503, "sink_ack_timeout"));
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(
        message(&body),
        "sink \"n1\" did not acknowledge within 200ms; the records are stored and will be forwarded, retry later"
    );

    // A push waiting for the broker is answered as soon as the stream is
    // deleted, not at its 30 s ack timeout.
    use tower::ServiceExt;
    let router = node.router();
    let waiting = tokio::spawn(async move {
        let req = Request::post("/v1/streams/s/records")
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let response = router.oneshot(req).await.unwrap();
        let status = response.status().as_u16();
        let retry_after = response.headers().get("retry-after").cloned();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        (status, retry_after, body)
    });
    // The record is stored locally first.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while node.get("/v1/streams/s").await.2["status"][0]["next_offset"] != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the push was not stored"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deleted = node
        .call(
            Request::delete("/v1/streams/s")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(deleted.0, 204, "{}", deleted.2);
    let (status, retry_after, body) = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the waiting push is answered when its sinks stop")
        .unwrap();
    assert_eq!((status, code(&body)), (503, "sink_stopped"));
    assert_eq!(retry_after.unwrap(), "1");
    assert_eq!(message(&body), "sink \"n1\" stopped before acknowledging");
}

#[tokio::test]
async fn sink_bounds_below_one_are_refused_and_one_is_taken() {
    let node = TestNode::new(Limits::default()).await;
    for field in [
        "batch_records",
        "max_lag_bytes",
        "max_in_flight_batches",
        "max_in_flight_bytes",
    ] {
        let mut sink =
            json!({"name": "n1", "kind": "nats", "url": "nats://127.0.0.1:1", "subject": "s"});
        sink[field] = json!(0);
        let definition = json!({"name": format!("zero-{field}"), "sinks": [sink.clone()]});
        let (status, _, body) = node.post("/v1/streams", JSON, definition.to_string()).await;
        assert_eq!(
            (status, code(&body)),
            (400, "invalid_definition"),
            "{field}"
        );
        assert!(
            message(&body).contains(&format!("{field} must be at least 1")),
            "{field}: {body}"
        );
        sink[field] = json!(1);
        let definition = json!({"name": format!("one-{field}"), "sinks": [sink]});
        let (status, _, body) = node.post("/v1/streams", JSON, definition.to_string()).await;
        assert_eq!(status, 201, "{field} = 1: {body}");
    }
}
