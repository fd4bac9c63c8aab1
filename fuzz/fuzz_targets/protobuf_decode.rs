//! Bytes as a protobuf message of a type with every scalar type, enums,
//! nested and repeated messages, maps and a oneof: decoded or refused, and
//! what decodes re-encodes to a message that decodes the same.
#![no_main]

use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use intake_format::api::{Format, StreamDefinition};
use intake_format::protobuf::{ProtoMessage, SchemaFiles};
use intake_format::{Framing, RecordCodec};
use libfuzzer_sys::fuzz_target;

const ALL_TYPES: &str = r#"
syntax = "proto3";
package fuzz;
enum Level { LOW = 0; MID = 1; HIGH = 2; }
message Inner { string name = 1; repeated int32 values = 2; Inner next = 3; }
message AllTypes {
  double f_double = 1; float f_float = 2; int32 f_int32 = 3; int64 f_int64 = 4;
  uint32 f_uint32 = 5; uint64 f_uint64 = 6; sint32 f_sint32 = 7; sint64 f_sint64 = 8;
  fixed32 f_fixed32 = 9; fixed64 f_fixed64 = 10; sfixed32 f_sfixed32 = 11;
  sfixed64 f_sfixed64 = 12; bool f_bool = 13; string f_string = 14; bytes f_bytes = 15;
  Level f_enum = 16; Inner f_inner = 17; repeated Inner f_inners = 18;
  repeated string f_strings = 19; map<string, int64> f_map = 20;
  oneof choice { string choice_text = 21; int32 choice_number = 22; }
  repeated double f_doubles = 23;
}
"#;

#[derive(Debug)]
struct OneFile;

impl SchemaFiles for OneFile {
    fn read(&self, name: &str) -> Result<Option<String>, String> {
        Ok((name == "all.proto").then(|| ALL_TYPES.to_owned()))
    }
    fn describe(&self) -> String {
        "fuzz target".to_owned()
    }
}

/// Compiled once: protox is too slow to run per input.
static CODEC: LazyLock<RecordCodec> = LazyLock::new(|| {
    let mut def = StreamDefinition::new("fuzz");
    def.format = Format::Protobuf;
    def.schema_id = Some("all.AllTypes".into());
    def.key_field = Some("f_string".into());
    def.timestamp_field = Some("f_int64".into());
    RecordCodec::with_schema_files(&def, Arc::new(OneFile)).expect("a valid definition")
});

static MESSAGE: LazyLock<ProtoMessage> =
    LazyLock::new(|| ProtoMessage::resolve("all.AllTypes", Arc::new(OneFile)).expect("compiles"));

fuzz_target!(|data: &[u8]| {
    let codec = &*CODEC;
    let body = Bytes::copy_from_slice(data);
    let items = codec
        .split(&body, Framing::Raw)
        .expect("protobuf bodies are one message");
    assert_eq!(items.len(), 1);
    let Ok(record) = codec.decode(0, items[0].clone(), false) else {
        return;
    };
    let value: serde_json::Value =
        serde_json::from_slice(&record.value).expect("a decoded message is stored as JSON");
    let message = &*MESSAGE;
    let again = message
        .encode(&value)
        .expect("a decoded record encodes again");
    let round = message.decode(&again).expect("a re-encoded record decodes");
    assert_eq!(
        serde_json::Value::Object(round),
        value,
        "decode ∘ encode changed the record"
    );
});
