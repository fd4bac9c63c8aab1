//! Protobuf streams end to end: a `.proto` file in the node's schemas
//! directory (with an import), a stream made by eKuiper DDL and one by the
//! native API, encoded messages pushed to the push path and to
//! `/v1/streams/{name}/records`, read back as their JSON records; bad bytes
//! and bad schema ids refused with the reason.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod fixture;

use std::sync::Arc;

use fixture::TestNode;
use intake_core::SchemaDir;
use intake_format::protobuf::ProtoMessage;
use intake_server::Limits;
use serde_json::json;

const SENSOR: &str = r#"
syntax = "proto3";
package iot;
import "common/units.proto";
message Reading {
  string device_id = 1;
  double temperature = 2;
  int64 ts = 3;
  iot.common.Unit unit = 4;
  repeated string tags = 5;
}
"#;

const UNITS: &str = r#"
syntax = "proto3";
package iot.common;
enum Unit { CELSIUS = 0; FAHRENHEIT = 1; }
"#;

async fn node_with_schemas() -> (TestNode, ProtoMessage) {
    let node = TestNode::new(Limits::default()).await;
    let dir = node.dir.path().join("schemas");
    std::fs::create_dir_all(dir.join("common")).unwrap();
    std::fs::write(dir.join("sensor.proto"), SENSOR).unwrap();
    std::fs::write(dir.join("common/units.proto"), UNITS).unwrap();
    let message = ProtoMessage::resolve("sensor.Reading", Arc::new(SchemaDir::new(dir))).unwrap();
    (node, message)
}

#[tokio::test]
async fn ddl_stream_takes_messages_at_its_push_path() {
    let (node, message) = node_with_schemas().await;
    let (status, _, body) = node
        .post(
            "/streams",
            Some("application/json"),
            json!({"sql": r#"CREATE STREAM readings() WITH (DATASOURCE="/api/readings", FORMAT="protobuf", SCHEMAID="sensor.Reading", TYPE="httppush", KEY="device_id", TIMESTAMP="ts")"#}).to_string(),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let record = json!({"device_id": "dev-1", "temperature": 21.5, "ts": 1_700_000_000_123_i64, "unit": "FAHRENHEIT", "tags": ["roof"]});
    let (status, _, body) = node
        .post(
            "/api/readings",
            Some("application/x-protobuf"),
            message.encode(&record).unwrap(),
        )
        .await;
    assert_eq!((status, body), (200, json!("ok")));
    let (status, _, body) = node.get("/v1/streams/readings/partitions/0/records").await;
    assert_eq!(status, 200);
    let stored = &body["records"][0];
    assert_eq!(stored["value"], record);
    assert_eq!(stored["key"], "dev-1");
    assert_eq!(stored["timestamp"], 1_700_000_000_123_i64);

    // Bytes that are not a Reading: 400 with the reason, nothing stored.
    let (status, _, body) = node
        .post(
            "/api/readings",
            Some("application/x-protobuf"),
            &b"\x0a\x09dev"[..],
        )
        .await;
    assert_eq!(status, 400);
    let reason = body.as_str().unwrap();
    assert!(
        reason.contains("record 0: not a protobuf iot.Reading: "),
        "{reason}"
    );
    assert_eq!(node.values("readings").await.len(), 1);

    // DESCRIBE gives the options back.
    let (status, _, body) = node.get("/streams/readings").await;
    assert_eq!(status, 200);
    assert_eq!(body["Options"]["FORMAT"], "PROTOBUF");
    assert_eq!(body["Options"]["SCHEMAID"], "sensor.Reading");
}

#[tokio::test]
async fn native_api_stream_and_bad_schema_ids() {
    let (node, message) = node_with_schemas().await;
    node.create(json!({"name": "native", "format": "protobuf", "schema_id": "sensor.iot.Reading"}))
        .await;
    let record =
        json!({"device_id": "d", "temperature": -3.25, "ts": 7, "unit": "CELSIUS", "tags": []});
    let (status, _, body) = node
        .post(
            "/v1/streams/native/records",
            Some("application/x-protobuf"),
            message.encode(&record).unwrap(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["records"], 1);
    // An empty body is the message with every field at its default.
    let (status, _, _) = node
        .post("/v1/streams/native/records", None, Vec::<u8>::new())
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        node.values("native").await,
        [
            record,
            json!({"device_id": "", "temperature": 0.0, "ts": 0, "unit": "CELSIUS", "tags": []})
        ]
    );

    for (schema_id, expected) in [
        (None, "a protobuf stream names its message type"),
        (
            Some("gone.Reading"),
            "gone.proto is not in the schemas directory",
        ),
        (
            Some("sensor.Nope"),
            "message \"Nope\" is not in sensor.proto (it has: iot.Reading)",
        ),
        (Some("../secret.Reading"), "is not of the form"),
    ] {
        let (status, _, body) = node
            .post(
                "/v1/streams",
                Some("application/json"),
                json!({"name": "bad", "format": "protobuf", "schema_id": schema_id}).to_string(),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        let text = body["error"]["message"].as_str().unwrap();
        assert!(
            text.contains("schema_id: ") && text.contains(expected),
            "{text}"
        );
    }
    std::fs::write(
        node.dir.path().join("schemas/broken.proto"),
        "message M { int32 x = ; }",
    )
    .unwrap();
    let (status, _, body) = node
        .post(
            "/v1/streams",
            Some("application/json"),
            json!({"name": "bad", "format": "protobuf", "schema_id": "broken.M"}).to_string(),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body.to_string().contains("broken.proto does not compile"),
        "{body}"
    );
}
