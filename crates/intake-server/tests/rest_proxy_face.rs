//! The Kafka REST Proxy v2 face: produce in the json and binary embedded
//! formats, topic metadata, Redpanda's fetch, and every error with its
//! literal Confluent body.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod fixture;

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use fixture::TestNode;
use intake_server::Limits;
use serde_json::{Value, json};

const JSON_V2: &str = "application/vnd.kafka.json.v2+json";
const BINARY_V2: &str = "application/vnd.kafka.binary.v2+json";

async fn produce(node: &TestNode, path: &str, ct: &str, body: Value) -> (u16, Value) {
    let (status, headers, body) = node.post(path, Some(ct), body.to_string()).await;
    assert_eq!(
        headers["content-type"], "application/vnd.kafka.v2+json",
        "{body}"
    );
    (status, body)
}

async fn fetch(node: &TestNode, path: &str, accept: &str) -> (u16, axum::http::HeaderMap, Value) {
    node.call(
        Request::get(path)
            .header("accept", accept)
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

fn offsets(list: &[(u32, u64)]) -> Value {
    json!({"key_schema_id": null, "value_schema_id": null, "offsets": list
        .iter()
        .map(|(p, o)| json!({"partition": p, "offset": o, "error_code": null, "error": null}))
        .collect::<Vec<_>>()})
}

async fn count(node: &TestNode, stream: &str, partition: u32) -> usize {
    let (_, _, body) = node
        .get(&format!(
            "/v1/streams/{stream}/partitions/{partition}/records"
        ))
        .await;
    body["records"].as_array().unwrap().len()
}

async fn node() -> TestNode {
    let node = TestNode::new(Limits::default()).await;
    node.create(json!({"name": "orders", "partitions": 2, "retention_ms": 86400000}))
        .await;
    node.create(json!({"name": "raw", "format": "binary"}))
        .await;
    node
}

#[tokio::test]
async fn json_records_produce_and_fetch_back() {
    let node = node().await;
    let (status, body) = produce(
        &node,
        "/topics/orders",
        JSON_V2,
        json!({"records": [{"value": {"a": 1}, "partition": 1}, {"key": "k1", "value": [2], "partition": 1}]}),
    )
    .await;
    assert_eq!((status, body), (200, offsets(&[(1, 0), (1, 1)])));
    let (status, body) = produce(
        &node,
        "/topics/orders/partitions/0",
        JSON_V2,
        json!({"records": [{"value": "three"}]}),
    )
    .await;
    assert_eq!((status, body), (200, offsets(&[(0, 0)])));
    let (status, headers, body) = fetch(
        &node,
        "/topics/orders/partitions/1/records?offset=0&max_bytes=100000&timeout=1000",
        JSON_V2,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], JSON_V2);
    assert_eq!(
        body,
        json!([
            {"topic": "orders", "key": null, "value": {"a": 1}, "partition": 1, "offset": 0},
            {"topic": "orders", "key": "k1", "value": [2], "partition": 1, "offset": 1}
        ])
    );
    // The same records base64-embedded; the JSON key is stored as its JSON text.
    let (_, headers, body) = fetch(
        &node,
        "/topics/orders/partitions/1/records?offset=1",
        BINARY_V2,
    )
    .await;
    assert_eq!(headers["content-type"], BINARY_V2);
    assert_eq!(
        body,
        json!([{"topic": "orders", "key": "ImsxIg==", "value": "WzJd", "partition": 1, "offset": 1}])
    );
}

#[tokio::test]
async fn binary_records_keep_their_bytes() {
    let node = node().await;
    let (status, body) = produce(
        &node,
        "/topics/raw",
        BINARY_V2,
        json!({"records": [{"key": "a2V5", "value": "AP8="}, {"value": ""}]}),
    )
    .await;
    assert_eq!((status, body), (200, offsets(&[(0, 0), (0, 1)])));
    let (_, _, body) = fetch(
        &node,
        "/topics/raw/partitions/0/records?offset=0",
        BINARY_V2,
    )
    .await;
    assert_eq!(
        body,
        json!([
            {"topic": "raw", "key": "a2V5", "value": "AP8=", "partition": 0, "offset": 0},
            {"topic": "raw", "key": null, "value": "", "partition": 0, "offset": 1}
        ])
    );
    // Bytes that are not JSON cannot be shown JSON-embedded.
    let (status, _, body) =
        fetch(&node, "/topics/raw/partitions/0/records?offset=0", JSON_V2).await;
    assert_eq!(status, 406);
    assert_eq!(
        body,
        json!({"error_code": 40601, "message": "the value of the record at offset 0 is not JSON; fetch it with Accept: application/vnd.kafka.binary.v2+json"})
    );
}

#[tokio::test]
async fn topics_list_and_describe() {
    let node = node().await;
    let (status, headers, body) = node.get("/topics").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/vnd.kafka.v2+json");
    assert_eq!(body, json!(["orders", "raw"]));
    let (status, _, body) = node.get("/topics/orders").await;
    assert_eq!(status, 200);
    let partition = |p: u32| {
        json!({"partition": p, "leader": 0,
            "replicas": [{"broker": 0, "leader": true, "in_sync": true}]})
    };
    assert_eq!(
        body,
        json!({"name": "orders", "configs": {"retention.ms": "86400000"},
            "partitions": [partition(0), partition(1)]})
    );
}

#[tokio::test]
async fn unknown_topic_and_partition() {
    let node = node().await;
    let topic_not_found = json!({"error_code": 40401, "message": "Topic not found"});
    let partition_not_found = json!({"error_code": 40402, "message": "Partition not found"});
    assert_eq!(
        produce(
            &node,
            "/topics/nope",
            JSON_V2,
            json!({"records": [{"value": 1}]})
        )
        .await,
        (404, topic_not_found.clone())
    );
    let (status, _, body) = node.get("/topics/nope").await;
    assert_eq!((status, body), (404, topic_not_found.clone()));
    let (status, _, body) = node.get("/topics/nope/partitions/0/records?offset=0").await;
    assert_eq!((status, body), (404, topic_not_found));
    for path in ["/topics/orders/partitions/2", "/topics/orders/partitions/x"] {
        assert_eq!(
            produce(&node, path, JSON_V2, json!({"records": [{"value": 1}]})).await,
            (404, partition_not_found.clone()),
            "{path}"
        );
    }
    assert_eq!(
        produce(
            &node,
            "/topics/orders",
            JSON_V2,
            json!({"records": [{"value": 1, "partition": 0}, {"value": 2, "partition": 9}]})
        )
        .await,
        (404, partition_not_found.clone())
    );
    let (status, _, body) = node
        .get("/topics/orders/partitions/7/records?offset=0")
        .await;
    assert_eq!((status, body), (404, partition_not_found));
    assert_eq!(count(&node, "orders", 0).await, 0, "all or nothing");
}

#[tokio::test]
async fn invalid_keys_values_and_bodies() {
    let node = node().await;
    for (path, ct, body, status, expected) in [
        (
            "/topics/raw",
            BINARY_V2,
            json!({"records": [{"value": "AA=="}, {"key": "not base64!", "value": "AA=="}]}),
            422,
            json!({"error_code": 42201, "message": "record 1: key is not valid base64"}),
        ),
        (
            "/topics/raw",
            BINARY_V2,
            json!({"records": [{"value": 5}]}),
            422,
            json!({"error_code": 42202, "message": "record 0: value must be a base64 string"}),
        ),
        (
            "/topics/raw",
            BINARY_V2,
            json!({"records": [{"key": "AA=="}]}),
            422,
            json!({"error_code": 42202, "message": "record 0: value is missing or null; intake stores no tombstones"}),
        ),
        (
            // Base64 bytes that are not JSON, sent to a JSON stream.
            "/topics/orders",
            BINARY_V2,
            json!({"records": [{"value": "e30="}, {"value": "bm90IGpzb24="}]}),
            422,
            json!({"error_code": 42202, "message": "record 1: not JSON: expected ident at line 1 column 2"}),
        ),
        (
            "/topics/orders",
            JSON_V2,
            json!({"records": [{"value": 1, "offset": 3}]}),
            422,
            json!({"error_code": 422, "message": "invalid produce request: unknown field `offset`, expected one of `key`, `value`, `partition` at line 1 column 21"}),
        ),
        (
            "/topics/orders",
            JSON_V2,
            json!({"values": []}),
            422,
            json!({"error_code": 422, "message": "invalid produce request: unknown field `values`, expected one of `records`, `key_schema`, `value_schema`, `key_schema_id`, `value_schema_id` at line 1 column 9"}),
        ),
    ] {
        assert_eq!(
            produce(&node, path, ct, body.clone()).await,
            (status, expected),
            "{body}"
        );
    }
    let (status, _, body) = node
        .post("/topics/orders", Some(JSON_V2), "{\"records\": [")
        .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"error_code": 400, "message": "the body is not JSON: EOF while parsing a list at line 1 column 13"})
        )
    );
    assert_eq!(
        count(&node, "orders", 0).await + count(&node, "orders", 1).await,
        0
    );
    assert_eq!(count(&node, "raw", 0).await, 0);
}

#[tokio::test]
async fn other_content_types_are_415() {
    let node = node().await;
    for ct in [
        "application/json",
        "application/vnd.kafka.avro.v2+json",
        "text/plain",
    ] {
        assert_eq!(
            produce(
                &node,
                "/topics/orders",
                ct,
                json!({"records": [{"value": 1}]})
            )
            .await,
            (
                415,
                json!({"error_code": 415, "message": format!("HTTP 415 Unsupported Media Type: content type \"{ct}\" is not accepted here; send application/vnd.kafka.json.v2+json or application/vnd.kafka.binary.v2+json")})
            ),
            "{ct}"
        );
    }
}

#[tokio::test]
async fn paused_topic_is_409_illegal_state() {
    let node = node().await;
    let (status, _, _) = node
        .call(
            Request::put("/v1/streams/orders/state")
                .header("content-type", "application/json")
                .body(Body::from(r#"{"state":"paused"}"#))
                .unwrap(),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        produce(
            &node,
            "/topics/orders",
            JSON_V2,
            json!({"records": [{"value": 1}]})
        )
        .await,
        (
            409,
            json!({"error_code": 40903, "message": "Illegal state: stream \"orders\" is paused; resume it to accept records"})
        )
    );
}

#[tokio::test]
async fn body_limit_at_and_past_the_edge() {
    let limits = Limits {
        max_body_bytes: 40,
        ..Limits::default()
    };
    let node = TestNode::new(limits).await;
    node.create(json!({"name": "t"})).await;
    let body = |n: usize| format!(r#"{{"records":[{{"value":"{}"}}]}}"#, "x".repeat(n));
    let at = body(40 - body(0).len());
    assert_eq!(at.len(), 40);
    let (status, _, _) = node.post("/topics/t", Some(JSON_V2), at.clone()).await;
    assert_eq!(status, 200);
    let (status, _, body) = node
        .post("/topics/t", Some(JSON_V2), format!("{at} "))
        .await;
    assert_eq!(
        (status, body),
        (
            413,
            json!({"error_code": 413, "message": "request body is larger than the limit of 40 bytes"})
        )
    );
}

#[tokio::test]
async fn fetch_waits_up_to_timeout_for_a_first_record() {
    let node = node().await;
    let router = node.router();
    let waiter = tokio::spawn(async move {
        use tower::ServiceExt;
        let response = router
            .oneshot(
                Request::get("/topics/orders/partitions/0/records?offset=0&timeout=5000")
                    .header("accept", JSON_V2)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        serde_json::from_slice::<Value>(&bytes).unwrap()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    produce(
        &node,
        "/topics/orders/partitions/0",
        JSON_V2,
        json!({"records": [{"value": "late"}]}),
    )
    .await;
    assert_eq!(
        waiter.await.unwrap(),
        json!([{"topic": "orders", "key": null, "value": "late", "partition": 0, "offset": 0}])
    );
    // Past the end with no timeout: an empty list at once.
    let (_, _, body) = fetch(
        &node,
        "/topics/orders/partitions/0/records?offset=1",
        JSON_V2,
    )
    .await;
    assert_eq!(body, json!([]));
}
