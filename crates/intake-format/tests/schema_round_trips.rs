//! Every schema type, nested arrays and structs included, survives a trip
//! through the json, ndjson and delimited decoders with strict validation;
//! and every strict-validation error reads as the API promises.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on the first surprise"
)]

use bytes::Bytes;
use intake_format::api::{Format, StreamDefinition};
use intake_format::delimited::encode_line;
use intake_format::schema::{Field, FieldType};
use intake_format::time::TimeFormat;
use intake_format::{Framing, RecordCodec};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn scalar_type() -> impl Strategy<Value = FieldType> {
    prop_oneof![
        Just(FieldType::Bigint),
        Just(FieldType::Float),
        Just(FieldType::String),
        Just(FieldType::Datetime),
        Just(FieldType::Boolean),
        Just(FieldType::Bytea),
    ]
}

fn fields_of(types: Vec<FieldType>) -> Vec<Field> {
    types
        .into_iter()
        .enumerate()
        .map(|(i, ty)| Field {
            name: format!("f{i}"),
            ty,
        })
        .collect()
}

fn field_type() -> impl Strategy<Value = FieldType> {
    scalar_type().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            inner
                .clone()
                .prop_map(|t| FieldType::Array { items: Box::new(t) }),
            proptest::collection::vec(inner, 1..4).prop_map(|types| FieldType::Struct {
                fields: fields_of(types)
            }),
        ]
    })
}

fn value_for(ty: &FieldType) -> BoxedStrategy<Value> {
    match ty {
        FieldType::Bigint => any::<i64>().prop_map(Value::from).boxed(),
        // Quarters are exact in binary and in decimal text.
        FieldType::Float => (-1_000_000i64..1_000_000)
            .prop_map(|n| Value::from(n as f64 / 4.0))
            .boxed(),
        FieldType::String => "[a-zA-Z0-9 _.:-]{0,12}".prop_map(Value::String).boxed(),
        FieldType::Datetime => prop_oneof![
            (0i64..4_102_444_800_000).prop_map(Value::from),
            (0i64..4_102_444_800_000)
                .prop_map(|ms| Value::String(TimeFormat::iso8601().format(ms).unwrap())),
        ]
        .boxed(),
        FieldType::Boolean => any::<bool>().prop_map(Value::Bool).boxed(),
        FieldType::Bytea => proptest::collection::vec(any::<u8>(), 0..16)
            .prop_map(|b| {
                use base64::Engine;
                Value::String(base64::engine::general_purpose::STANDARD.encode(b))
            })
            .boxed(),
        FieldType::Array { items } => proptest::collection::vec(value_for(items), 0..4)
            .prop_map(Value::Array)
            .boxed(),
        FieldType::Struct { fields } => record_for(fields).prop_map(Value::Object).boxed(),
    }
}

fn record_for(fields: &[Field]) -> BoxedStrategy<Map<String, Value>> {
    let names: Vec<String> = fields.iter().map(|f| f.name.clone()).collect();
    let values: Vec<BoxedStrategy<Value>> = fields.iter().map(|f| value_for(&f.ty)).collect();
    values
        .prop_map(move |values| names.iter().cloned().zip(values).collect())
        .boxed()
}

fn schema_and_records() -> impl Strategy<Value = (Vec<Field>, Vec<Map<String, Value>>)> {
    proptest::collection::vec(field_type(), 1..6)
        .prop_map(fields_of)
        .prop_flat_map(|fields| {
            let records = proptest::collection::vec(record_for(&fields), 1..5);
            (Just(fields), records)
        })
}

fn codec(format: Format, fields: &[Field], strict: bool) -> RecordCodec {
    let mut def = StreamDefinition::new("s");
    def.format = format;
    def.schema = Some(fields.to_vec());
    def.strict_validation = strict;
    def.delimiter = "|".into();
    RecordCodec::new(&def).unwrap()
}

fn decode_all(codec: &RecordCodec, body: Bytes, framing: Framing) -> Vec<Value> {
    codec
        .split(&body, framing)
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let r = codec.decode(i, item, true).unwrap();
            serde_json::from_slice(&r.value).unwrap()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn json_and_ndjson_round_trip((fields, records) in schema_and_records()) {
        let want: Vec<Value> = records.iter().cloned().map(Value::Object).collect();
        for strict in [true, false] {
            let c = codec(Format::Json, &fields, strict);
            let body = Bytes::from(serde_json::to_vec(&want).unwrap());
            prop_assert_eq!(&decode_all(&c, body, Framing::Json), &want);
            let c = codec(Format::Ndjson, &fields, strict);
            let lines: Vec<String> = want.iter().map(Value::to_string).collect();
            let body = Bytes::from(lines.join("\n"));
            prop_assert_eq!(&decode_all(&c, body, Framing::Raw), &want);
        }
    }

    #[test]
    fn delimited_round_trip((fields, records) in schema_and_records()) {
        let want: Vec<Value> = records.iter().cloned().map(Value::Object).collect();
        let lines: Vec<String> = records.iter().map(|r| encode_line(r, &fields, "|")).collect();
        // A blank line is no record at all.
        prop_assume!(lines.iter().all(|l| !l.trim().is_empty()));
        for strict in [true, false] {
            let c = codec(Format::Delimited, &fields, strict);
            let body = Bytes::from(lines.join("\r\n"));
            prop_assert_eq!(&decode_all(&c, body, Framing::Raw), &want);
        }
    }

    #[test]
    fn decoders_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200), fields in proptest::collection::vec(field_type(), 1..4)) {
        let fields = fields_of(fields);
        for format in [Format::Json, Format::Ndjson, Format::Delimited] {
            for strict in [true, false] {
                let c = codec(format, &fields, strict);
                let body = Bytes::from(body.clone());
                if let Ok(items) = c.split(&body, Framing::Raw) {
                    for (i, item) in items.into_iter().enumerate() {
                        let _ = c.decode(i, item, false);
                    }
                }
            }
        }
    }
}

fn strict_error(ty: FieldType, value: Value) -> String {
    let fields = vec![Field {
        name: "temp".into(),
        ty,
    }];
    let c = codec(Format::Json, &fields, true);
    let item = Bytes::from(json!({ "temp": value }).to_string());
    c.decode(3, item, true).unwrap_err().to_string()
}

#[test]
fn each_strict_validation_error() {
    let cases = [
        (
            FieldType::Float,
            json!("hot"),
            r#"record 3: field "temp": expected float, got string "hot""#,
        ),
        (
            FieldType::Bigint,
            json!(1.5),
            r#"record 3: field "temp": expected bigint, got number 1.5"#,
        ),
        (
            FieldType::Bigint,
            json!("12"),
            r#"record 3: field "temp": expected bigint, got string "12""#,
        ),
        (
            FieldType::String,
            json!(12),
            r#"record 3: field "temp": expected string, got number 12"#,
        ),
        (
            FieldType::Boolean,
            json!("true"),
            r#"record 3: field "temp": expected boolean, got string "true""#,
        ),
        (
            FieldType::Float,
            Value::Null,
            r#"record 3: field "temp": expected float, got null"#,
        ),
        (
            FieldType::Datetime,
            json!("yesterday"),
            r#"record 3: field "temp": expected datetime (epoch milliseconds or RFC 3339 text), got string "yesterday""#,
        ),
        (
            FieldType::Bytea,
            json!("not base64!"),
            r#"record 3: field "temp": expected bytea (base64 text), got string "not base64!""#,
        ),
        (
            FieldType::Array {
                items: Box::new(FieldType::Bigint),
            },
            json!([1, "two"]),
            r#"record 3: field "temp[1]": expected bigint, got string "two""#,
        ),
        (
            FieldType::Array {
                items: Box::new(FieldType::Bigint),
            },
            json!({"a": 1}),
            r#"record 3: field "temp": expected array(bigint), got an object"#,
        ),
        (
            FieldType::Struct {
                fields: vec![Field {
                    name: "lat".into(),
                    ty: FieldType::Float,
                }],
            },
            json!({"lat": false}),
            r#"record 3: field "temp.lat": expected float, got boolean false"#,
        ),
        (
            FieldType::Struct {
                fields: vec![Field {
                    name: "lat".into(),
                    ty: FieldType::Float,
                }],
            },
            json!({}),
            r#"record 3: field "temp.lat": expected float, got nothing (the field is missing)"#,
        ),
        (
            FieldType::Struct {
                fields: vec![Field {
                    name: "lat".into(),
                    ty: FieldType::Float,
                }],
            },
            json!([1.0]),
            r#"record 3: field "temp": expected struct(lat float), got an array"#,
        ),
    ];
    for (ty, value, want) in cases {
        assert_eq!(strict_error(ty, value), want);
    }
    let fields = vec![Field {
        name: "temp".into(),
        ty: FieldType::Float,
    }];
    let c = codec(Format::Json, &fields, true);
    let err = c
        .decode(3, Bytes::from_static(b"{}"), true)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        r#"record 3: field "temp": expected float, got nothing (the field is missing)"#
    );
    let err = c
        .decode(0, Bytes::from_static(b"[1]"), true)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "record 0: expected an object with the schema's fields, got an array"
    );
}

#[test]
fn coercion_converts_and_fills_missing_with_null() {
    let fields: Vec<Field> = serde_json::from_value(json!([
        {"name": "id", "type": "bigint"},
        {"name": "temp", "type": "float"},
        {"name": "name", "type": "string"},
        {"name": "on", "type": "boolean"},
        {"name": "at", "type": "datetime"},
        {"name": "tags", "type": "array", "items": {"type": "bigint"}},
        {"name": "gone", "type": "string"},
    ]))
    .unwrap();
    let c = codec(Format::Json, &fields, false);
    let item = json!({"id": "42", "temp": "21.5", "name": 7, "on": "T",
                      "at": "1700000000000", "tags": "[1, 2.9]", "extra": [true]});
    let r = c.decode(0, Bytes::from(item.to_string()), true).unwrap();
    let got: Value = serde_json::from_slice(&r.value).unwrap();
    assert_eq!(
        got,
        json!({"id": 42, "temp": 21.5, "name": "7", "on": true, "at": 1_700_000_000_000i64,
               "tags": [1, 2], "gone": null, "extra": [true]})
    );
    let err = c
        .decode(5, Bytes::from(json!({"temp": "hot"}).to_string()), true)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        r#"record 5: field "temp": expected float, got string "hot""#
    );
    let r = c
        .decode(
            0,
            Bytes::from(json!({"id": 2.7, "on": 0, "temp": true}).to_string()),
            true,
        )
        .unwrap();
    let got: Value = serde_json::from_slice(&r.value).unwrap();
    assert_eq!(
        (&got["id"], &got["on"], &got["temp"]),
        (&json!(2), &json!(false), &json!(1.0))
    );
}

#[test]
fn timestamp_field_and_format() {
    let mut def = StreamDefinition::new("s");
    def.schema = Some(
        serde_json::from_value(json!([
            {"name": "ts", "type": "datetime"},
            {"name": "id", "type": "string"},
        ]))
        .unwrap(),
    );
    def.timestamp_field = Some("ts".into());
    def.key_field = Some("id".into());
    def.timestamp_format = Some("YYYY-MM-dd HH:mm:ss".into());
    let c = RecordCodec::new(&def).unwrap();
    let r = c
        .decode(
            0,
            Bytes::from_static(br#"{"ts": "2023-11-14 22:13:20", "id": "d1"}"#),
            true,
        )
        .unwrap();
    assert_eq!(r.timestamp, Some(1_700_000_000_000));
    assert_eq!(r.key.as_deref(), Some(&b"d1"[..]));
    let r = c
        .decode(0, Bytes::from_static(br#"{"ts": 1700000000123}"#), true)
        .unwrap();
    assert_eq!(r.timestamp, Some(1_700_000_000_123));
    let err = c
        .decode(
            1,
            Bytes::from_static(br#"{"ts": "2023-11-14T22:13:20Z"}"#),
            true,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains(r#"field "ts""#), "{err}");

    let mut bad = def.clone();
    bad.timestamp_format = Some("YYYY-qq".into());
    assert!(
        RecordCodec::new(&bad)
            .unwrap_err()
            .to_string()
            .contains("timestamp_format")
    );
    let mut bad = def.clone();
    bad.timestamp_field = Some("when".into());
    assert!(
        RecordCodec::new(&bad)
            .unwrap_err()
            .to_string()
            .contains(r#""when" is not a field of the schema (ts, id)"#)
    );

    // A bigint timestamp field is epoch milliseconds.
    let mut def = StreamDefinition::new("d");
    def.format = Format::Delimited;
    def.schema = Some(
        serde_json::from_value(
            json!([{"name": "ts", "type": "bigint"}, {"name": "v", "type": "float"}]),
        )
        .unwrap(),
    );
    def.timestamp_field = Some("ts".into());
    let c = RecordCodec::new(&def).unwrap();
    let r = c
        .decode(0, Bytes::from_static(b"1700000000001,2.5"), false)
        .unwrap();
    assert_eq!(r.timestamp, Some(1_700_000_000_001));
    assert_eq!(&r.value[..], br#"{"ts":1700000000001,"v":2.5}"#);
}

#[test]
fn definitions_refused() {
    let mut def = StreamDefinition::new("s");
    def.format = Format::Delimited;
    def.delimiter = String::new();
    assert!(
        RecordCodec::new(&def)
            .unwrap_err()
            .to_string()
            .contains("delimiter")
    );
    let mut def = StreamDefinition::new("s");
    def.schema = Some(
        serde_json::from_value(
            json!([{"name": "a", "type": "float"}, {"name": "a", "type": "bigint"}]),
        )
        .unwrap(),
    );
    assert!(
        RecordCodec::new(&def)
            .unwrap_err()
            .to_string()
            .contains("declared twice")
    );
}
