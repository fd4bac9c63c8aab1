//! A delimited body through a stream with a schema: every line decodes or
//! is refused, and what is kept is a JSON object.
#![no_main]

use bytes::Bytes;
use intake_format::api::{Format, StreamDefinition};
use intake_format::schema::{Field, FieldType};
use intake_format::{Framing, RecordCodec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let field = |name: &str, ty: FieldType| Field {
        name: name.to_owned(),
        ty,
    };
    let mut def = StreamDefinition::new("fuzz");
    def.format = Format::Delimited;
    def.schema = Some(vec![
        field("id", FieldType::Bigint),
        field("temp", FieldType::Float),
        field("name", FieldType::String),
        field("ok", FieldType::Boolean),
        field("at", FieldType::Datetime),
    ]);
    def.timestamp_field = Some("at".into());
    let codec = RecordCodec::new(&def).expect("a valid definition");
    let body = Bytes::copy_from_slice(data);
    let Ok(lines) = codec.split(&body, Framing::Raw) else {
        return;
    };
    for (i, line) in lines.into_iter().enumerate() {
        if let Ok(record) = codec.decode(i, line, false) {
            let value: serde_json::Value =
                serde_json::from_slice(&record.value).expect("a decoded line is JSON");
            assert!(value.is_object(), "a decoded line is an object");
        }
    }
});
