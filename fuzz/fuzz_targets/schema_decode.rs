//! A JSON body through a stream with a schema, key and timestamp fields,
//! strict and coercing: decoded or refused, and what is kept is JSON.
#![no_main]

use bytes::Bytes;
use intake_format::api::StreamDefinition;
use intake_format::schema::{Field, FieldType};
use intake_format::{Framing, RecordCodec};
use libfuzzer_sys::fuzz_target;

fn codec(strict: bool) -> RecordCodec {
    let field = |name: &str, ty: FieldType| Field {
        name: name.to_owned(),
        ty,
    };
    let mut def = StreamDefinition::new("fuzz");
    def.schema = Some(vec![
        field("id", FieldType::Bigint),
        field("temp", FieldType::Float),
        field("name", FieldType::String),
        field("ok", FieldType::Boolean),
        field("at", FieldType::Datetime),
        field("raw", FieldType::Bytea),
        field(
            "tags",
            FieldType::Array {
                items: Box::new(FieldType::String),
            },
        ),
        field(
            "loc",
            FieldType::Struct {
                fields: vec![field("lat", FieldType::Float)],
            },
        ),
    ]);
    def.key_field = Some("id".into());
    def.timestamp_field = Some("at".into());
    def.strict_validation = strict;
    RecordCodec::new(&def).expect("a valid definition")
}

fuzz_target!(|data: &[u8]| {
    let body = Bytes::copy_from_slice(data);
    for strict in [true, false] {
        let codec = codec(strict);
        let Ok(items) = codec.split(&body, Framing::Json) else {
            continue;
        };
        for (i, item) in items.into_iter().enumerate() {
            if let Ok(record) = codec.decode(i, item, true) {
                assert!(
                    serde_json::from_slice::<serde_json::Value>(&record.value).is_ok(),
                    "a decoded record is not JSON"
                );
            }
        }
    }
});
