//! The InLong DataProxy face: the seed's curl report, every DataProxy code
//! it answers (with its literal body), JSONP, and all-or-nothing.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod fixture;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use fixture::TestNode;
use http_body_util::BodyExt;
use intake_log::MemoryFilesystem;
use intake_server::{Limits, run};
use serde_json::{Value, json};
use tower::ServiceExt;

const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

/// A node with stream `s` bound to g1/s1 in `format`.
async fn node_with(limits: Limits, format: &str) -> TestNode {
    let node = TestNode::new(limits).await;
    bind(&node, "s", format, "g1", "s1").await;
    node
}

async fn bind(node: &TestNode, name: &str, format: &str, group: &str, stream: &str) {
    node.create(json!({"name": name, "format": format,
        "bindings": {"inlong": [{"group_id": group, "stream_id": stream}]}}))
        .await;
}

async fn report(node: &TestNode, form: &str) -> (u16, axum::http::HeaderMap, Value) {
    node.post("/dataproxy/message", FORM, form.to_owned()).await
}

/// The records of partition 0 of `stream`.
async fn records(node: &TestNode, stream: &str) -> Vec<Value> {
    let (status, _, body) = node
        .get(&format!("/v1/streams/{stream}/partitions/0/records"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["records"].as_array().unwrap().clone()
}

fn value_bytes(record: &Value) -> Vec<u8> {
    BASE64.decode(record["value"].as_str().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_curl_line_is_stored_and_reads_back() {
    let node = TestNode::new(Limits::default()).await;
    bind(
        &node,
        "seed",
        "binary",
        "give_your_group_id",
        "give_your_stream_id",
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/dataproxy/message",
        listener.local_addr().unwrap()
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(listener, node.state.clone(), async move {
        stopped.await.ok();
    }));
    let before = intake_core::now_ms();
    // Exactly what `curl -X POST -d '...' URL` sends.
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("groupId=give_your_group_id&streamId=give_your_stream_id&dt=data_time&body=give_your_data_body&cnt=1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/json;charset=utf-8"
    );
    assert_eq!(response.text().await.unwrap(), r#"{"code":"0","msg":"Ok"}"#);
    let stored = records(&node, "seed").await;
    assert_eq!(stored.len(), 1);
    assert_eq!(value_bytes(&stored[0]), b"give_your_data_body");
    assert_eq!(
        stored[0]["headers"],
        json!({"groupId": "give_your_group_id", "streamId": "give_your_stream_id", "clientIp": "127.0.0.1"})
    );
    // `dt=data_time` is not a number: the receive time stands in.
    let ts = stored[0]["timestamp"].as_i64().unwrap();
    assert!(ts >= before && ts <= intake_core::now_ms(), "{ts}");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn lines_become_records_with_dt_as_timestamp() {
    let node = node_with(Limits::default(), "binary").await;
    let (status, _, body) = report(
        &node,
        "groupId=g1&streamId=s1&dt=1700000000123&cnt=3&body=a+b%0Ac%FF%0A%7Bx%7D",
    )
    .await;
    assert_eq!((status, body), (200, json!({"code": "0", "msg": "Ok"})));
    let stored = records(&node, "s").await;
    let values: Vec<Vec<u8>> = stored.iter().map(value_bytes).collect();
    assert_eq!(
        values,
        [b"a b".to_vec(), b"c\xff".to_vec(), b"{x}".to_vec()]
    );
    assert!(
        stored
            .iter()
            .all(|r| r["timestamp"] == 1_700_000_000_123_i64)
    );
    // A trailing newline ends the last record; it does not add an empty one.
    let (_, _, body) = report(&node, "groupId=g1&streamId=s1&cnt=2&body=d%0Ae%0A").await;
    assert_eq!(body["code"], "0");
    assert_eq!(records(&node, "s").await.len(), 5);
}

#[tokio::test]
async fn get_with_query_and_body_overriding_query() {
    let node = node_with(Limits::default(), "binary").await;
    let (status, _, body) = node
        .get("/dataproxy/message?groupId=g1&streamId=s1&body=from-query")
        .await;
    assert_eq!((status, body["code"].clone()), (200, json!("0")));
    let (_, _, body) = node
        .post(
            "/dataproxy/message?groupId=g1&streamId=s1&body=from-query",
            FORM,
            "body=from-body",
        )
        .await;
    assert_eq!(body["code"], "0");
    let values: Vec<Vec<u8>> = records(&node, "s").await.iter().map(value_bytes).collect();
    assert_eq!(values, [b"from-query".to_vec(), b"from-body".to_vec()]);
}

#[tokio::test]
async fn heartbeat_answers_success() {
    let node = TestNode::new(Limits::default()).await;
    for (status, _, body) in [
        node.get("/dataproxy/heartbeat").await,
        node.post("/dataproxy/heartbeat", None, "").await,
    ] {
        assert_eq!((status, body), (200, json!({"code": "0", "msg": "Ok"})));
    }
}

#[tokio::test]
async fn callback_wraps_the_answer_as_jsonp() {
    let node = node_with(Limits::default(), "binary").await;
    let response = node
        .router()
        .oneshot(
            Request::get("/dataproxy/message?groupId=g1&streamId=s1&body=x&callback=cb_1")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/javascript;charset=utf-8"
    );
    let text = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&text[..], br#"cb_1({"code":"0","msg":"Ok"})"#);
    let (_, _, body) = node
        .get("/dataproxy/message?streamId=s1&body=x&callback=cb")
        .await;
    assert_eq!(
        body,
        json!(r#"cb({"code":"100","msg":"Field groupId must exist and not be blank"})"#)
    );
    let (_, _, body) = node
        .get("/dataproxy/message?groupId=g1&streamId=s1&body=x&callback=alert(1)")
        .await;
    assert_eq!(
        body,
        json!({"code": "31", "msg": "Field callback must be a JavaScript name (letters, digits, _ $ .) of at most 128 characters"})
    );
}

#[tokio::test]
async fn missing_and_blank_fields_have_their_codes() {
    let node = node_with(Limits::default(), "binary").await;
    for (form, expected) in [
        (
            "streamId=s1&body=x",
            json!({"code": "100", "msg": "Field groupId must exist and not be blank"}),
        ),
        (
            "groupId=+&streamId=s1&body=x",
            json!({"code": "100", "msg": "Field groupId must exist and not be blank"}),
        ),
        (
            "groupId=g1&body=x",
            json!({"code": "101", "msg": "Field streamId must exist and not be blank"}),
        ),
        (
            "groupId=g1&streamId=s1",
            json!({"code": "103", "msg": "Field body is required"}),
        ),
        (
            "groupId=g1&streamId=s1&body=",
            json!({"code": "111", "msg": "Field body is blank"}),
        ),
        (
            "groupId=g1&streamId=s1&body=%20%0A",
            json!({"code": "111", "msg": "Field body is blank"}),
        ),
        (
            "groupId=g1&streamId=nope&body=x",
            json!({"code": "113", "msg": "Unconfigured groupId or streamId: no stream is bound to groupId \"g1\" and streamId \"nope\""}),
        ),
        (
            "groupId=g1&streamId=s1&cnt=2&body=x",
            json!({"code": "123", "msg": "Msg body items invalid: cnt is \"2\" but body holds 1 record(s) joined by \\n"}),
        ),
        (
            "groupId=g1&streamId=s1&cnt=many&body=x",
            json!({"code": "123", "msg": "Msg body items invalid: cnt is \"many\" but body holds 1 record(s) joined by \\n"}),
        ),
    ] {
        let (status, headers, body) = report(&node, form).await;
        assert_eq!(status, 200, "{form}");
        assert_eq!(body, expected, "{form}");
        assert!(headers.get("retry-after").is_none());
    }
    assert!(records(&node, "s").await.is_empty(), "nothing was written");
}

#[tokio::test]
async fn json_stream_refuses_the_whole_request_naming_the_bad_line() {
    let node = node_with(Limits::default(), "json").await;
    let (_, _, body) = report(
        &node,
        "groupId=g1&streamId=s1&cnt=3&body=%7B%22a%22%3A1%7D%0Anot+json%0A%7B%22a%22%3A3%7D",
    )
    .await;
    assert_eq!(
        body,
        json!({"code": "123", "msg": "record 1: not JSON: expected ident at line 1 column 2"})
    );
    assert!(records(&node, "s").await.is_empty(), "all or nothing");
    let (_, _, body) = report(
        &node,
        "groupId=g1&streamId=s1&cnt=2&body=%7B%22a%22%3A1%7D%0A%7B%22a%22%3A2%7D",
    )
    .await;
    assert_eq!(body["code"], "0");
    let stored = records(&node, "s").await;
    assert_eq!(stored[1]["value"], json!({"a": 2}));
}

#[tokio::test]
async fn unsupported_path_method_and_content_type() {
    let node = node_with(Limits::default(), "binary").await;
    let (status, _, body) = node.get("/dataproxy/nope").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"code": "35", "msg": "Un-supported service uri GET /dataproxy/nope; only /dataproxy/heartbeat and /dataproxy/message are served"})
    );
    let (status, _, body) = node
        .call(
            Request::put("/dataproxy/message")
                .body(Body::from("groupId=g1"))
                .unwrap(),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"code": "32", "msg": "Un-supported method PUT; only GET and POST are served"})
    );
    let (status, _, body) = node
        .post(
            "/dataproxy/message",
            Some("application/json"),
            r#"{"groupId":"g1"}"#,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"code": "36", "msg": "content type \"application/json\" is not accepted here; send application/x-www-form-urlencoded"})
    );
    // A form with a charset parameter, and a body without any content type,
    // are read as forms.
    let (_, _, body) = node
        .post(
            "/dataproxy/message",
            Some("application/x-www-form-urlencoded; charset=UTF-8"),
            "groupId=g1&streamId=s1&body=x",
        )
        .await;
    assert_eq!(body["code"], "0");
    let (_, _, body) = node
        .post("/dataproxy/message", None, "groupId=g1&streamId=s1&body=y")
        .await;
    assert_eq!(body["code"], "0");
}

#[tokio::test]
async fn paused_stream_says_so_and_resumes() {
    let node = node_with(Limits::default(), "binary").await;
    let set = |state: &'static str| {
        Request::put("/v1/streams/s/state")
            .header("content-type", "application/json")
            .body(Body::from(format!(r#"{{"state":"{state}"}}"#)))
            .unwrap()
    };
    assert_eq!(node.call(set("paused")).await.0, 200);
    let (status, _, body) = report(&node, "groupId=g1&streamId=s1&body=x").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"code": "1", "msg": "stream \"s\" is paused; resume it to accept records"})
    );
    assert!(records(&node, "s").await.is_empty());
    assert_eq!(node.call(set("active")).await.0, 200);
    let (_, _, body) = report(&node, "groupId=g1&streamId=s1&body=x").await;
    assert_eq!(body["code"], "0");
}

#[tokio::test]
async fn body_size_limit_at_and_past_the_edge() {
    let limits = Limits {
        max_body_bytes: 64,
        ..Limits::default()
    };
    let node = node_with(limits, "binary").await;
    let prefix = "groupId=g1&streamId=s1&body=";
    let at_limit = format!("{prefix}{}", "x".repeat(64 - prefix.len()));
    assert_eq!(at_limit.len(), 64);
    let (_, _, body) = report(&node, &at_limit).await;
    assert_eq!(body["code"], "0");
    let (status, _, body) = report(&node, &format!("{at_limit}x")).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"code": "104", "msg": "request body is larger than the limit of 64 bytes"})
    );
    // The same limit holds for a body sent in the query string.
    let (_, _, body) = node
        .get(&format!(
            "/dataproxy/message?groupId=g1&streamId=s1&body={}",
            "y".repeat(65)
        ))
        .await;
    assert_eq!(body["code"], "104");
    assert_eq!(records(&node, "s").await.len(), 1);
}

#[tokio::test]
async fn record_size_and_count_limits_at_and_past_the_edge() {
    let limits = Limits {
        max_record_bytes: 10,
        max_records_per_request: 3,
        ..Limits::default()
    };
    let node = node_with(limits, "binary").await;
    let (_, _, body) = report(&node, "groupId=g1&streamId=s1&body=0123456789").await;
    assert_eq!(body["code"], "0");
    let (_, _, body) = report(&node, "groupId=g1&streamId=s1&body=a%0A0123456789X").await;
    assert_eq!(
        body,
        json!({"code": "104", "msg": "record 1: 11 bytes; at most 10 are accepted per record"})
    );
    let (_, _, body) = report(&node, "groupId=g1&streamId=s1&cnt=3&body=a%0Ab%0Ac").await;
    assert_eq!(body["code"], "0");
    let (_, _, body) = report(&node, "groupId=g1&streamId=s1&cnt=4&body=a%0Ab%0Ac%0Ad").await;
    assert_eq!(
        body,
        json!({"code": "104", "msg": "4 records in one request; at most 3 are accepted"})
    );
    assert_eq!(records(&node, "s").await.len(), 4);
}

#[tokio::test]
async fn overloaded_node_answers_114_with_retry_after() {
    let mem = MemoryFilesystem::new();
    let limits = Limits {
        max_concurrent_requests: 1,
        ..Limits::default()
    };
    let node = TestNode::with_fs(limits, Arc::new(mem.clone())).await;
    bind(&node, "s", "binary", "g1", "s1").await;
    mem.set_sync_delay(Duration::from_millis(300));
    let router = node.router();
    let first = router.clone();
    let slow = tokio::spawn(async move {
        let req = Request::post("/dataproxy/message")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from("groupId=g1&streamId=s1&body=slow"))
            .unwrap();
        let response = first.oneshot(req).await.unwrap();
        response.into_body().collect().await.unwrap().to_bytes()
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let response = router
        .oneshot(
            Request::post("/dataproxy/message")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from("groupId=g1&streamId=s1&body=shed"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["retry-after"], "1");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        &body[..],
        br#"{"code":"114","msg":"the node is at its limit of concurrent requests"}"#
    );
    assert_eq!(&slow.await.unwrap()[..], br#"{"code":"0","msg":"Ok"}"#);
    let values: Vec<Vec<u8>> = records(&node, "s").await.iter().map(value_bytes).collect();
    assert_eq!(values, [b"slow".to_vec()], "the shed request wrote nothing");
}

#[tokio::test]
async fn full_disk_answers_114_and_writes_nothing() {
    let mem = MemoryFilesystem::new();
    let node = TestNode::with_fs(Limits::default(), Arc::new(mem.clone())).await;
    bind(&node, "s", "binary", "g1", "s1").await;
    mem.set_capacity(100);
    let (_, headers, body) = report(
        &node,
        &format!("groupId=g1&streamId=s1&body={}", "x".repeat(200)),
    )
    .await;
    assert_eq!(
        body,
        json!({"code": "114", "msg": "the node's disk is full; nothing was written; retry later"})
    );
    assert_eq!(headers["retry-after"], "1");
    mem.set_capacity(u64::MAX);
    assert!(records(&node, "s").await.is_empty());
}

#[tokio::test]
async fn draining_node_answers_2_with_503() {
    let node = node_with(Limits::default(), "binary").await;
    node.state.draining.cancel();
    for (status, headers, body) in [
        report(&node, "groupId=g1&streamId=s1&body=x").await,
        node.get("/dataproxy/heartbeat").await,
    ] {
        assert_eq!(status, 503);
        assert_eq!(headers["retry-after"], "1");
        assert_eq!(
            body,
            json!({"code": "2", "msg": "the node is shutting down"})
        );
    }
}
