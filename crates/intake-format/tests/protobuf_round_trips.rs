//! Protobuf records: every scalar type, enums, nested messages, repeated
//! fields, maps and oneofs survive encode → decode into their JSON record;
//! the codec takes key and timestamp from message fields, holds records to
//! a declared schema, and refuses bad bytes and bad definitions clearly.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on the first surprise"
)]

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use intake_format::api::{Format, StreamDefinition};
use intake_format::protobuf::{ProtoMessage, SchemaFiles};
use intake_format::schema::{Field, FieldType};
use intake_format::{Framing, RecordCodec};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// `.proto` files held in memory.
#[derive(Debug)]
struct Files(HashMap<String, String>);

impl SchemaFiles for Files {
    fn read(&self, name: &str) -> Result<Option<String>, String> {
        Ok(self.0.get(name).cloned())
    }
    fn describe(&self) -> String {
        "files of the test".to_owned()
    }
}

const ALL_TYPES: &str = r#"
syntax = "proto3";
package test.all;

enum Level { LOW = 0; MID = 1; HIGH = 2; }

message Inner {
  string name = 1;
  repeated int32 values = 2;
}

message AllTypes {
  double f_double = 1;
  float f_float = 2;
  int32 f_int32 = 3;
  int64 f_int64 = 4;
  uint32 f_uint32 = 5;
  uint64 f_uint64 = 6;
  sint32 f_sint32 = 7;
  sint64 f_sint64 = 8;
  fixed32 f_fixed32 = 9;
  fixed64 f_fixed64 = 10;
  sfixed32 f_sfixed32 = 11;
  sfixed64 f_sfixed64 = 12;
  bool f_bool = 13;
  string f_string = 14;
  bytes f_bytes = 15;
  Level f_enum = 16;
  Inner f_inner = 17;
  repeated Inner f_inners = 18;
  repeated string f_strings = 19;
  map<string, int64> f_map = 20;
  oneof choice {
    string choice_text = 21;
    int32 choice_number = 22;
  }
}
"#;

fn files() -> Arc<dyn SchemaFiles> {
    let mut map = HashMap::new();
    map.insert("all.proto".to_owned(), ALL_TYPES.to_owned());
    map.insert(
        "sensor.proto".to_owned(),
        r#"syntax = "proto3";
           message Reading { string device_id = 1; double temperature = 2; int64 ts = 3; }"#
            .to_owned(),
    );
    Arc::new(Files(map))
}

fn all_types() -> ProtoMessage {
    ProtoMessage::resolve("all.AllTypes", files()).unwrap()
}

fn inner() -> impl Strategy<Value = Value> {
    ("[a-z]{0,8}", proptest::collection::vec(any::<i32>(), 0..4))
        .prop_map(|(name, values)| json!({"name": name, "values": values}))
}

/// A record of `AllTypes` in the form decoding gives: every field present.
fn all_types_record() -> impl Strategy<Value = Value> {
    let numbers = (
        (-1_000_000i64..1_000_000).prop_map(|n| n as f64 / 8.0),
        (-1_000i32..1_000).prop_map(|n| f64::from(n) / 4.0),
        any::<i32>(),
        any::<i64>(),
        any::<u32>(),
        any::<u64>(),
        any::<i32>(),
        any::<i64>(),
        any::<u32>(),
        any::<u64>(),
        any::<i32>(),
        any::<i64>(),
    );
    let others = (
        any::<bool>(),
        "\\PC{0,12}",
        proptest::collection::vec(any::<u8>(), 0..16),
        prop_oneof![Just("LOW"), Just("MID"), Just("HIGH")],
        proptest::option::of(inner()),
        proptest::collection::vec(inner(), 0..3),
        proptest::collection::vec("[a-z ]{0,6}", 0..4),
        proptest::collection::btree_map("[a-z]{1,4}", any::<i64>(), 0..4),
        prop_oneof![
            Just((Value::Null, Value::Null)),
            "[a-z]{0,5}".prop_map(|s| (Value::from(s), Value::Null)),
            any::<i32>().prop_map(|n| (Value::Null, Value::from(n))),
        ],
    );
    (numbers, others).prop_map(|(n, o)| {
        let mut record = Map::new();
        let numbers = [
            ("f_double", json!(n.0)),
            ("f_float", json!(n.1)),
            ("f_int32", json!(n.2)),
            ("f_int64", json!(n.3)),
            ("f_uint32", json!(n.4)),
            ("f_uint64", json!(n.5)),
            ("f_sint32", json!(n.6)),
            ("f_sint64", json!(n.7)),
            ("f_fixed32", json!(n.8)),
            ("f_fixed64", json!(n.9)),
            ("f_sfixed32", json!(n.10)),
            ("f_sfixed64", json!(n.11)),
        ];
        for (name, value) in numbers {
            record.insert(name.to_owned(), value);
        }
        record.insert("f_bool".into(), json!(o.0));
        record.insert("f_string".into(), json!(o.1));
        record.insert(
            "f_bytes".into(),
            json!(base64::engine::general_purpose::STANDARD.encode(&o.2)),
        );
        record.insert("f_enum".into(), json!(o.3));
        record.insert("f_inner".into(), o.4.unwrap_or(Value::Null));
        record.insert("f_inners".into(), json!(o.5));
        record.insert("f_strings".into(), json!(o.6));
        record.insert("f_map".into(), json!(o.7));
        record.insert("choice_text".into(), o.8.0);
        record.insert("choice_number".into(), o.8.1);
        Value::Object(record)
    })
}

proptest! {
    #[test]
    fn every_type_round_trips(record in all_types_record()) {
        let message = all_types();
        let bytes = message.encode(&record).unwrap();
        let decoded = message.decode(&bytes).unwrap();
        prop_assert_eq!(Value::Object(decoded), record.clone());

        // Through the stream's codec, as a push stores it.
        let mut def = StreamDefinition::new("all");
        def.format = Format::Protobuf;
        def.schema_id = Some("all.AllTypes".into());
        let codec = RecordCodec::with_schema_files(&def, files()).unwrap();
        let body = Bytes::from(bytes);
        let items = codec.split(&body, Framing::Raw).unwrap();
        prop_assert_eq!(items.len(), 1);
        let stored = codec.decode(0, items[0].clone(), false).unwrap();
        let stored: Value = serde_json::from_slice(&stored.value).unwrap();
        prop_assert_eq!(stored, record);
    }

    #[test]
    fn arbitrary_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let message = all_types();
        if let Ok(record) = message.decode(&bytes) {
            // What decodes re-encodes to a message that decodes the same.
            let again = message.encode(&Value::Object(record.clone())).unwrap();
            prop_assert_eq!(message.decode(&again).unwrap(), record);
        }
    }
}

fn sensor_def(f: impl FnOnce(&mut StreamDefinition)) -> StreamDefinition {
    let mut def = StreamDefinition::new("sensor");
    def.format = Format::Protobuf;
    def.schema_id = Some("sensor.Reading".into());
    f(&mut def);
    def
}

fn reading(device: &str, temperature: f64, ts: i64) -> Bytes {
    let message = ProtoMessage::resolve("sensor.Reading", files()).unwrap();
    Bytes::from(
        message
            .encode(&json!({"device_id": device, "temperature": temperature, "ts": ts}))
            .unwrap(),
    )
}

#[test]
fn key_and_timestamp_come_from_message_fields() {
    let def = sensor_def(|d| {
        d.key_field = Some("device_id".into());
        d.timestamp_field = Some("ts".into());
    });
    let codec = RecordCodec::with_schema_files(&def, files()).unwrap();
    let r = codec
        .decode(0, reading("dev-7", 21.5, 1_700_000_000_123), false)
        .unwrap();
    assert_eq!(r.key.as_deref(), Some(&b"dev-7"[..]));
    assert_eq!(r.timestamp, Some(1_700_000_000_123));
    let value: Value = serde_json::from_slice(&r.value).unwrap();
    assert_eq!(
        value,
        json!({"device_id": "dev-7", "temperature": 21.5, "ts": 1_700_000_000_123_i64})
    );
}

#[test]
fn a_declared_schema_holds_decoded_messages() {
    let schema = |ty| {
        Some(vec![
            Field {
                name: "device_id".into(),
                ty: FieldType::String,
            },
            Field {
                name: "temperature".into(),
                ty,
            },
        ])
    };
    let def = sensor_def(|d| {
        d.schema = schema(FieldType::Float);
        d.strict_validation = true;
    });
    let codec = RecordCodec::with_schema_files(&def, files()).unwrap();
    let r = codec.decode(0, reading("a", 1.25, 5), false).unwrap();
    let value: Value = serde_json::from_slice(&r.value).unwrap();
    assert_eq!(value["temperature"], json!(1.25));

    let def = sensor_def(|d| {
        d.schema = schema(FieldType::Boolean);
        d.strict_validation = true;
    });
    let codec = RecordCodec::with_schema_files(&def, files()).unwrap();
    let err = codec
        .decode(2, reading("a", 1.25, 5), false)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        r#"record 2: field "temperature": expected boolean, got number 1.25"#
    );
}

#[test]
fn bad_bytes_name_the_record_and_the_message() {
    let codec = RecordCodec::with_schema_files(&sensor_def(|_| {}), files()).unwrap();
    let err = codec
        .decode(0, Bytes::from_static(b"\x0a\x05ab"), false)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("record 0: not a protobuf Reading: "),
        "{err}"
    );
}

#[test]
fn bad_definitions_are_refused_with_the_reason() {
    let refuse = |def: StreamDefinition| {
        RecordCodec::with_schema_files(&def, files())
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        refuse(sensor_def(|d| d.schema_id = None)),
        r#"invalid stream definition: schema_id: a protobuf stream names its message type as "file.Message""#
    );
    assert_eq!(
        refuse(sensor_def(|d| d.schema_id = Some("gone.Reading".into()))),
        "invalid stream definition: schema_id: gone.proto is not in the files of the test"
    );
    assert_eq!(
        refuse(sensor_def(|d| d.key_field = Some("serial".into()))),
        r#"invalid stream definition: key_field: "serial" is not a field of Reading (device_id, temperature, ts)"#
    );
    let err = RecordCodec::new(&sensor_def(|_| {}))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "invalid stream definition: schema_id: sensor.proto is not in the schemas directory (none is configured)"
    );
}
