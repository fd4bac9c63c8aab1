//! The CKafka DataHub face: SendMessage ids that match what reads back,
//! the seed's paused shape, every Tencent Cloud API 3.0 error with its
//! literal body, and the 500-message / 5 MiB limits at and past the edge.
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
use fixture::TestNode;
use http_body_util::BodyExt;
use intake_log::MemoryFilesystem;
use intake_server::Limits;
use serde_json::{Value, json};
use tower::ServiceExt;

fn send_request(body: impl Into<Body>) -> Request<Body> {
    Request::post("/")
        .header("content-type", "application/json")
        .header("x-tc-action", "SendMessage")
        .header("x-tc-version", "2019-08-19")
        .header("x-tc-region", "ap-guangzhou")
        .header("x-tc-timestamp", "1700000000")
        .header("authorization", "TC3-HMAC-SHA256 Credential=x/2023-11-14/ckafka/tc3_request, SignedHeaders=content-type;host, Signature=y")
        .body(body.into())
        .unwrap()
}

/// Sends a request; checks the API 3.0 rules every answer follows (HTTP
/// 200, `application/json` exactly, a UUID `RequestId`) and returns the
/// `Response` object without its `RequestId`.
async fn call(node: &TestNode, req: Request<Body>) -> (Value, axum::http::HeaderMap) {
    let (status, headers, mut body) = node.call(req).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    let request_id = body["Response"]
        .as_object_mut()
        .unwrap()
        .remove("RequestId")
        .unwrap();
    let request_id = request_id.as_str().unwrap();
    assert_eq!(request_id.len(), 36, "{request_id}");
    assert_eq!(request_id.matches('-').count(), 4, "{request_id}");
    (body, headers)
}

async fn send(node: &TestNode, body: Value) -> Value {
    call(node, send_request(body.to_string())).await.0
}

fn error(code: &str, message: &str) -> Value {
    json!({"Response": {"Error": {"Code": code, "Message": message}}})
}

async fn node_with(limits: Limits, format: &str) -> TestNode {
    let node = TestNode::new(limits).await;
    node.create(json!({"name": "events", "partitions": 2, "format": format,
        "bindings": {"datahub_id": "datahub-demo"}}))
        .await;
    node
}

async fn read(node: &TestNode, partition: u64, offset: u64) -> Vec<Value> {
    let (status, _, body) = node
        .get(&format!(
            "/v1/streams/events/partitions/{partition}/records?offset={offset}&limit=100"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    body["records"].as_array().unwrap().clone()
}

/// Records stored in every partition of the stream.
async fn total(node: &TestNode) -> u64 {
    let (_, _, body) = node.get("/v1/streams/events").await;
    body["status"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["next_offset"].as_u64().unwrap())
        .sum()
}

#[tokio::test]
async fn message_ids_parse_and_match_the_records_read_back() {
    let node = node_with(Limits::default(), "json").await;
    let messages = json!([
        {"Body": r#"{"n":0}"#, "Key": "device-a"},
        {"Body": r#"{"n":1}"#, "Key": "device-b"},
        {"Body": r#"{"n":2}"#},
    ]);
    let before = intake_core::now_ms();
    let answer = send(
        &node,
        json!({"DataHubId": "datahub-demo", "Message": messages}),
    )
    .await;
    let ids = answer["Response"]["MessageId"].as_array().unwrap();
    assert_eq!(ids.len(), 3);
    for (i, id) in ids.iter().enumerate() {
        let parts: Vec<&str> = id.as_str().unwrap().split(':').collect();
        let [datahub, stream, partition, offset, received, durable] = parts[..] else {
            panic!("{id}");
        };
        assert_eq!((datahub, stream), ("datahub-demo", "events"));
        let (received, durable): (i64, i64) = (received.parse().unwrap(), durable.parse().unwrap());
        assert!(before <= received && received <= durable, "{id}");
        let stored = read(&node, partition.parse().unwrap(), offset.parse().unwrap()).await;
        assert_eq!(stored[0]["offset"], offset.parse::<u64>().unwrap());
        assert_eq!(stored[0]["value"], json!({"n": i}));
        assert_eq!(stored[0]["key"], messages[i]["Key"]);
    }
}

#[tokio::test]
async fn paused_task_gives_the_seed_shape_and_resume_accepts_again() {
    let node = node_with(Limits::default(), "binary").await;
    let set = |state: &str| {
        Request::put("/v1/streams/events/state")
            .header("content-type", "application/json")
            .body(Body::from(format!(r#"{{"state":"{state}"}}"#)))
            .unwrap()
    };
    let message = json!({"DataHubId": "datahub-demo", "Message": [{"Body": "x"}]});
    assert_eq!(node.call(set("paused")).await.0, 200);
    assert_eq!(
        send(&node, message.clone()).await,
        error("FailedOperation", "task status suspended [datahub-demo]")
    );
    assert_eq!(total(&node).await, 0);
    assert_eq!(node.call(set("active")).await.0, 200);
    let answer = send(&node, message).await;
    assert_eq!(answer["Response"]["MessageId"].as_array().unwrap().len(), 1);
    assert_eq!(total(&node).await, 1);
}

#[tokio::test]
async fn every_refusal_has_its_api_3_code() {
    let node = node_with(Limits::default(), "json").await;
    for (body, expected) in [
        (
            json!({"DataHubId": "nope", "Message": [{"Body": "{}"}]}),
            error("ResourceNotFound", "the DataHubId \"nope\" does not exist"),
        ),
        (
            json!({"Message": [{"Body": "{}"}]}),
            error(
                "MissingParameter",
                "the request is missing the required parameter `DataHubId`",
            ),
        ),
        (
            json!({"DataHubId": "datahub-demo"}),
            error(
                "MissingParameter",
                "the request is missing the required parameter `Message`",
            ),
        ),
        (
            json!({"DataHubId": "datahub-demo", "Message": [{"Body": "{}"}, {"Key": "k"}]}),
            error(
                "MissingParameter",
                "the request is missing the required parameter `Message.1.Body`",
            ),
        ),
        (
            json!({"DataHubId": 7, "Message": [{"Body": "{}"}]}),
            error(
                "InvalidParameterValue",
                "the value of `DataHubId` is invalid: expected a non-empty string, got 7",
            ),
        ),
        (
            json!({"DataHubId": "datahub-demo", "Message": {"Body": "{}"}}),
            error(
                "InvalidParameterValue",
                "the value of `Message` is invalid: expected an array of messages, got {\"Body\":\"{}\"}",
            ),
        ),
        (
            json!({"DataHubId": "datahub-demo", "Message": [{"Body": {"a": 1}}]}),
            error(
                "InvalidParameterValue",
                "the value of `Message.0.Body` is invalid: expected a string, got {\"a\":1}",
            ),
        ),
        (
            json!({"DataHubId": "datahub-demo", "Message": [{"Body": "{}", "Key": 5}]}),
            error(
                "InvalidParameterValue",
                "the value of `Message.0.Key` is invalid: expected a string, got 5",
            ),
        ),
        (
            json!({"DataHubId": "datahub-demo", "Message": []}),
            error(
                "InvalidParameterValue",
                "the value of `Message` is invalid: it holds 0 messages; 1 to 500 are accepted per request",
            ),
        ),
        (
            json!({"DataHubId": "datahub-demo", "Message": [{"Body": "{}", "Partition": 1}]}),
            error(
                "UnknownParameter",
                "the parameter `Message.0.Partition` is not a parameter of SendMessage",
            ),
        ),
        (
            json!({"DataHubId": "datahub-demo", "Message": [{"Body": "{}"}, {"Body": "not json"}, {"Body": "{}"}]}),
            error(
                "InvalidParameterValue",
                "the value of `Message.1.Body` is invalid: record 1: not JSON: expected ident at line 1 column 2",
            ),
        ),
    ] {
        assert_eq!(send(&node, body.clone()).await, expected, "{body}");
    }
    let (answer, _) = call(&node, send_request("{\"DataHubId\": ")).await;
    assert_eq!(
        answer,
        error(
            "InvalidParameter",
            "the request body is not valid JSON: EOF while parsing a value at line 1 column 14"
        )
    );
    assert_eq!(
        total(&node).await,
        0,
        "nothing of any refused request was written"
    );
}

#[tokio::test]
async fn actions_content_types_and_methods_are_checked() {
    let node = node_with(Limits::default(), "json").await;
    let body = json!({"DataHubId": "datahub-demo", "Message": [{"Body": "{}"}]}).to_string();
    let (answer, _) = call(
        &node,
        Request::post("/")
            .header("content-type", "application/json")
            .body(Body::from(body.clone()))
            .unwrap(),
    )
    .await;
    assert_eq!(
        answer,
        error(
            "MissingParameter",
            "the X-TC-Action header is required; this endpoint serves SendMessage"
        )
    );
    let (answer, _) = call(
        &node,
        Request::post("/")
            .header("content-type", "application/json")
            .header("x-tc-action", "DescribeTopic")
            .body(Body::from(body.clone()))
            .unwrap(),
    )
    .await;
    assert_eq!(
        answer,
        error(
            "InvalidAction",
            "the action \"DescribeTopic\" does not exist here; this endpoint serves SendMessage"
        )
    );
    let (answer, _) = call(
        &node,
        Request::post("/")
            .header("content-type", "text/plain")
            .header("x-tc-action", "SendMessage")
            .body(Body::from(body))
            .unwrap(),
    )
    .await;
    assert_eq!(
        answer,
        error(
            "InvalidRequest",
            "content type \"text/plain\" is not accepted here; send application/json"
        )
    );
    // GET / is the dashboard's; other methods are the API 3.0 face's.
    let (answer, _) = call(&node, Request::put("/").body(Body::empty()).unwrap()).await;
    assert_eq!(
        answer,
        error(
            "UnsupportedOperation",
            "method PUT is not allowed here; the Allow header lists the accepted ones"
        )
    );
    assert_eq!(total(&node).await, 0);
}

#[tokio::test]
async fn message_count_limit_at_and_past_500() {
    let node = node_with(Limits::default(), "binary").await;
    let messages =
        |n: usize| -> Vec<Value> { (0..n).map(|i| json!({"Body": i.to_string()})).collect() };
    let answer = send(
        &node,
        json!({"DataHubId": "datahub-demo", "Message": messages(500)}),
    )
    .await;
    assert_eq!(
        answer["Response"]["MessageId"].as_array().unwrap().len(),
        500
    );
    assert_eq!(
        send(
            &node,
            json!({"DataHubId": "datahub-demo", "Message": messages(501)})
        )
        .await,
        error(
            "InvalidParameterValue",
            "the value of `Message` is invalid: it holds 501 messages; 1 to 500 are accepted per request"
        )
    );
    assert_eq!(total(&node).await, 500);
}

/// A SendMessage body of exactly `len` bytes: five 1,000,000-byte bodies
/// and a sixth that fills the rest.
fn body_of_len(len: usize) -> String {
    let head = r#"{"DataHubId":"datahub-demo","Message":["#;
    let big = format!(r#"{{"Body":"{}"}},"#, "x".repeat(1_000_000));
    let mut body = String::with_capacity(len);
    body.push_str(head);
    for _ in 0..5 {
        body.push_str(&big);
    }
    let tail_fixed = r#"{"Body":""}]}"#.len();
    let fill = len - body.len() - tail_fixed;
    body.push_str(&format!(r#"{{"Body":"{}"}}]}}"#, "y".repeat(fill)));
    assert_eq!(body.len(), len);
    body
}

#[tokio::test]
async fn five_mib_request_limit_at_and_past_the_edge() {
    let node = node_with(Limits::default(), "binary").await;
    let limit = 5 * 1024 * 1024;
    let (answer, _) = call(&node, send_request(body_of_len(limit))).await;
    assert_eq!(answer["Response"]["MessageId"].as_array().unwrap().len(), 6);
    let (answer, _) = call(&node, send_request(body_of_len(limit + 1))).await;
    assert_eq!(
        answer,
        error(
            "InvalidParameterValue",
            "request body is larger than the limit of 5242880 bytes"
        )
    );
    assert_eq!(total(&node).await, 6);
}

#[tokio::test]
async fn overload_is_request_limit_exceeded_with_retry_after() {
    let mem = MemoryFilesystem::new();
    let limits = Limits {
        max_concurrent_requests: 1,
        ..Limits::default()
    };
    let node = TestNode::with_fs(limits, Arc::new(mem.clone())).await;
    node.create(json!({"name": "events", "format": "binary",
        "bindings": {"datahub_id": "datahub-demo"}}))
        .await;
    mem.set_sync_delay(Duration::from_millis(300));
    let body = json!({"DataHubId": "datahub-demo", "Message": [{"Body": "x"}]}).to_string();
    let router = node.router();
    let first = router.clone();
    let slow_body = body.clone();
    let slow = tokio::spawn(async move {
        let response = first.oneshot(send_request(slow_body)).await.unwrap();
        response.status().as_u16()
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let response = router.oneshot(send_request(body)).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["retry-after"], "1");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let mut answer: Value = serde_json::from_slice(&bytes).unwrap();
    answer["Response"]
        .as_object_mut()
        .unwrap()
        .remove("RequestId");
    assert_eq!(
        answer,
        error(
            "RequestLimitExceeded",
            "the node is at its limit of concurrent requests"
        )
    );
    assert_eq!(slow.await.unwrap(), 200);
}
