//! Non-JSON streams through the native face: a binary stream takes the
//! body as it is, whatever its content type, and reads back as base64.
#![allow(clippy::unwrap_used, reason = "a panic in a test is a failed test")]

mod fixture;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use fixture::TestNode;
use intake_server::Limits;
use serde_json::json;

#[tokio::test]
async fn binary_stream_keeps_bytes_exactly() {
    let node = TestNode::new(Limits::default()).await;
    node.create(json!({"name": "raw", "format": "binary"}))
        .await;
    let payload: Vec<u8> = (0u8..=255).collect();
    let (status, _, body) = node
        .post(
            "/v1/streams/raw/records",
            Some("application/octet-stream"),
            payload.clone(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["records"], 1);
    let (_, _, read) = node.get("/v1/streams/raw/partitions/0/records").await;
    let value = read["records"][0]["value"].as_str().unwrap();
    assert_eq!(BASE64.decode(value).unwrap(), payload);
    // A binary stream has no fields to take a key or timestamp from.
    let (status, _, body) = node
        .post(
            "/v1/streams",
            Some("application/json"),
            r#"{"name":"b2","format":"binary","key_field":"id"}"#,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_definition");
}
