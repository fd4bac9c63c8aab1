//! A stream's record codec: from a request body or a pushed item to what the
//! log stores (value, key, timestamp).

use bytes::Bytes;
use serde_json::Value;

use std::sync::Arc;

use serde_json::Map;

use crate::api::{Format, StreamDefinition};
use crate::delimited::{decode_line, split_lines};
use crate::error::FormatError;
use crate::json::{check_json, split_json, split_ndjson};
use crate::protobuf::{NoSchemaFiles, ProtoMessage, SchemaFiles};
use crate::schema::{Field, FieldType, Validation, conform_record, describe_value};
use crate::time::TimeFormat;

/// How a request body holds its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A JSON value (one record) or array (one record per element).
    Json,
    /// One JSON value per line.
    Ndjson,
    /// The body as it is, split the way the stream's own format says (a
    /// `binary` stream takes the whole body as one record).
    Raw,
}

/// One record ready for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedRecord {
    /// The bytes to store.
    pub value: Bytes,
    /// Key from the stream's `key_field`.
    pub key: Option<Bytes>,
    /// Milliseconds since the epoch from the stream's `timestamp_field`.
    pub timestamp: Option<i64>,
}

/// Decodes records of one stream, per its definition.
#[derive(Debug, Clone)]
pub struct RecordCodec {
    format: Format,
    key_field: Option<String>,
    timestamp_field: Option<String>,
    schema: Option<Arc<[Field]>>,
    validation: Validation,
    delimiter: String,
    time: TimeFormat,
    protobuf: Option<ProtoMessage>,
}

/// Checks that names are non-empty and unique, at every level.
fn check_fields(fields: &[Field], prefix: &str) -> Result<(), FormatError> {
    let mut seen = std::collections::HashSet::new();
    for f in fields {
        let path = if prefix.is_empty() {
            f.name.clone()
        } else {
            format!("{prefix}.{}", f.name)
        };
        if f.name.is_empty() {
            return Err(FormatError::definition("schema", "a field name is empty"));
        }
        if !seen.insert(f.name.as_str()) {
            return Err(FormatError::definition(
                "schema",
                format!("field {path:?} is declared twice"),
            ));
        }
        let mut ty = &f.ty;
        while let FieldType::Array { items } = ty {
            ty = items;
        }
        if let FieldType::Struct { fields } = ty {
            check_fields(fields, &path)?;
        }
    }
    Ok(())
}

impl RecordCodec {
    /// Builds the codec of a stream that needs no `.proto` files.
    ///
    /// # Errors
    /// [`FormatError::InvalidDefinition`] when the definition asks for
    /// something this codec cannot do.
    pub fn new(def: &StreamDefinition) -> Result<Self, FormatError> {
        Self::with_schema_files(def, Arc::new(NoSchemaFiles))
    }

    /// Builds the codec of a stream; a `protobuf` stream compiles its
    /// `schema_id` from `files`.
    ///
    /// # Errors
    /// [`FormatError::InvalidDefinition`] when the definition asks for
    /// something this codec cannot do.
    pub fn with_schema_files(
        def: &StreamDefinition,
        files: Arc<dyn SchemaFiles>,
    ) -> Result<Self, FormatError> {
        let mut protobuf = None;
        match def.format {
            Format::Json | Format::Ndjson => {}
            Format::Delimited => {
                if def.delimiter.is_empty() || def.delimiter.contains(['\n', '\r']) {
                    return Err(FormatError::definition(
                        "delimiter",
                        format!(
                            "{:?} cannot separate values; use a non-empty text without line breaks, such as \",\"",
                            def.delimiter
                        ),
                    ));
                }
            }
            Format::Binary => {
                for (field, set) in [
                    ("key_field", def.key_field.is_some()),
                    ("timestamp_field", def.timestamp_field.is_some()),
                    ("schema", def.schema.is_some()),
                ] {
                    if set {
                        return Err(FormatError::definition(
                            field,
                            "a binary stream's records are opaque bytes without fields; leave it null",
                        ));
                    }
                }
            }
            Format::Protobuf => {
                let Some(schema_id) = &def.schema_id else {
                    return Err(FormatError::definition(
                        "schema_id",
                        "a protobuf stream names its message type as \"file.Message\"",
                    ));
                };
                let message = ProtoMessage::resolve(schema_id, files)
                    .map_err(|reason| FormatError::definition("schema_id", reason))?;
                if def.schema.is_none() {
                    check_message_fields(&message, def)?;
                }
                protobuf = Some(message);
            }
        }
        if let Some(fields) = &def.schema {
            check_fields(fields, "")?;
            for (what, name) in [
                ("key_field", &def.key_field),
                ("timestamp_field", &def.timestamp_field),
            ] {
                if let Some(name) = name
                    && !fields.iter().any(|f| &f.name == name)
                {
                    let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
                    return Err(FormatError::definition(
                        what,
                        format!(
                            "{name:?} is not a field of the schema ({})",
                            names.join(", ")
                        ),
                    ));
                }
            }
        }
        let time = TimeFormat::from_option(def.timestamp_format.as_deref())
            .map_err(|reason| FormatError::definition("timestamp_format", reason))?;
        Ok(Self {
            format: def.format,
            key_field: def.key_field.clone(),
            timestamp_field: def.timestamp_field.clone(),
            schema: def.schema.as_deref().map(Arc::from),
            validation: if def.strict_validation {
                Validation::Strict
            } else {
                Validation::Coerce
            },
            delimiter: def.delimiter.clone(),
            time,
            protobuf,
        })
    }

    /// The stream's format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Splits a request body into records.
    ///
    /// # Errors
    /// [`FormatError::Malformed`] naming line and column.
    pub fn split(&self, body: &Bytes, framing: Framing) -> Result<Vec<Bytes>, FormatError> {
        match (framing, self.format) {
            (_, Format::Binary | Format::Protobuf) => Ok(vec![body.clone()]),
            (_, Format::Delimited) => Ok(split_lines(body)),
            (Framing::Json, _) => split_json(body),
            (Framing::Ndjson, _) => split_ndjson(body),
            (Framing::Raw, Format::Ndjson) => split_ndjson(body),
            (Framing::Raw, _) => split_json(body),
        }
    }

    /// True when [`RecordCodec::decode`] needs to look inside records.
    fn inspects_fields(&self) -> bool {
        self.key_field.is_some() || self.timestamp_field.is_some() || self.schema.is_some()
    }

    /// Decodes record `index`; `syntax_checked` says [`RecordCodec::split`]
    /// already validated its JSON.
    ///
    /// # Errors
    /// [`FormatError::InvalidRecord`] naming `index`, and the field at fault.
    pub fn decode(
        &self,
        index: usize,
        item: Bytes,
        syntax_checked: bool,
    ) -> Result<DecodedRecord, FormatError> {
        match self.format {
            Format::Binary => {
                return Ok(DecodedRecord {
                    value: item,
                    key: None,
                    timestamp: None,
                });
            }
            Format::Delimited => {
                let record = decode_line(
                    index,
                    &item,
                    &self.delimiter,
                    self.schema.as_deref(),
                    self.validation,
                    &self.time,
                )?;
                return self.finish(index, &record, None);
            }
            Format::Protobuf => return self.decode_protobuf(index, &item),
            Format::Json | Format::Ndjson => {}
        }
        if !self.inspects_fields() {
            if !syntax_checked {
                check_json(index, &item)?;
            }
            return Ok(DecodedRecord {
                value: item,
                key: None,
                timestamp: None,
            });
        }
        let parsed: Value = serde_json::from_slice(&item)
            .map_err(|e| FormatError::record(index, None, format!("not JSON: {e}")))?;
        match (&self.schema, parsed) {
            (Some(fields), Value::Object(mut record)) => {
                conform_record(fields, &mut record, self.validation, &self.time)
                    .map_err(|e| FormatError::record(index, Some(&e.path), e.reason))?;
                self.finish(index, &record, None)
            }
            (Some(_), other) => Err(FormatError::record(
                index,
                None,
                format!(
                    "expected an object with the schema's fields, got {}",
                    describe_value(&other)
                ),
            )),
            (None, Value::Object(record)) => self.finish(index, &record, Some(item)),
            (None, _) => Ok(DecodedRecord {
                value: item,
                key: None,
                timestamp: None,
            }),
        }
    }

    /// Decodes one protobuf message into its JSON record, held to the
    /// schema when the stream declares one.
    fn decode_protobuf(&self, index: usize, item: &[u8]) -> Result<DecodedRecord, FormatError> {
        let Some(message) = &self.protobuf else {
            return Err(FormatError::record(index, None, "no protobuf message type"));
        };
        let mut record = message
            .decode(item)
            .map_err(|reason| FormatError::record(index, None, reason))?;
        if let Some(fields) = &self.schema {
            conform_record(fields, &mut record, self.validation, &self.time)
                .map_err(|e| FormatError::record(index, Some(&e.path), e.reason))?;
        }
        self.finish(index, &record, None)
    }

    /// Takes key and timestamp from a record; stores `original` when the
    /// record is unchanged, else the record's JSON text.
    fn finish(
        &self,
        index: usize,
        record: &Map<String, Value>,
        original: Option<Bytes>,
    ) -> Result<DecodedRecord, FormatError> {
        let key = match &self.key_field {
            Some(field) => key_of(record.get(field)),
            None => None,
        };
        let timestamp = match &self.timestamp_field {
            Some(field) => timestamp_of(index, field, record.get(field), &self.time)?,
            None => None,
        };
        let value = match original {
            Some(bytes) => bytes,
            None => Bytes::from(serde_json::to_vec(record).map_err(|e| {
                FormatError::record(index, None, format!("cannot be stored as JSON: {e}"))
            })?),
        };
        Ok(DecodedRecord {
            value,
            key,
            timestamp,
        })
    }
}

/// Checks that `key_field` and `timestamp_field` are fields of a protobuf
/// stream's message.
fn check_message_fields(message: &ProtoMessage, def: &StreamDefinition) -> Result<(), FormatError> {
    for (what, name) in [
        ("key_field", &def.key_field),
        ("timestamp_field", &def.timestamp_field),
    ] {
        let names = message.field_names();
        if let Some(name) = name
            && !names.contains(name)
        {
            return Err(FormatError::definition(
                what,
                format!(
                    "{name:?} is not a field of {} ({})",
                    message.full_name(),
                    names.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn key_of(value: Option<&Value>) -> Option<Bytes> {
    match value? {
        Value::Null => None,
        Value::String(s) => Some(Bytes::copy_from_slice(s.as_bytes())),
        other => Some(Bytes::from(other.to_string())),
    }
}

fn timestamp_of(
    index: usize,
    field: &str,
    value: Option<&Value>,
    time: &TimeFormat,
) -> Result<Option<i64>, FormatError> {
    let bad = |got: &Value| {
        FormatError::record(
            index,
            Some(field),
            format!(
                "expected epoch milliseconds or {}, got {got}",
                time.describe()
            ),
        )
    };
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 9.2e18)
                    .map(|f| f as i64)
            })
            .map(Some)
            .ok_or_else(|| bad(v)),
        Some(v @ Value::String(s)) => time.parse(s).map(Some).ok_or_else(|| bad(v)),
        Some(other) => Err(bad(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(f: impl FnOnce(&mut StreamDefinition)) -> RecordCodec {
        let mut def = StreamDefinition::new("s");
        f(&mut def);
        RecordCodec::new(&def).unwrap()
    }

    #[test]
    fn schemaless_records_pass_through() {
        let c = codec(|_| {});
        let r = c
            .decode(0, Bytes::from_static(br#"{"a":1}"#), false)
            .unwrap();
        assert_eq!(r.value, Bytes::from_static(br#"{"a":1}"#));
        assert_eq!((r.key, r.timestamp), (None, None));
        let err = c
            .decode(4, Bytes::from_static(b"{nope"), false)
            .unwrap_err();
        assert!(err.to_string().starts_with("record 4: not JSON"), "{err}");
    }

    #[test]
    fn binary_records_are_opaque() {
        let c = codec(|d| d.format = Format::Binary);
        let body = Bytes::from_static(b"\x00\xffnot json [");
        let items = c.split(&body, Framing::Raw).unwrap();
        assert_eq!(items, vec![body.clone()]);
        let r = c.decode(0, body.clone(), false).unwrap();
        assert_eq!(r.value, body);
        let mut def = StreamDefinition::new("b");
        def.format = Format::Binary;
        def.key_field = Some("k".into());
        let err = RecordCodec::new(&def).unwrap_err().to_string();
        assert!(err.contains("key_field"), "{err}");
    }

    #[test]
    fn key_and_timestamp_fields() {
        let c = codec(|d| {
            d.key_field = Some("id".into());
            d.timestamp_field = Some("ts".into());
        });
        let r = c
            .decode(
                0,
                Bytes::from_static(br#"{"id":"dev-1","ts":1700000000123}"#),
                true,
            )
            .unwrap();
        assert_eq!(r.key.as_deref(), Some(&b"dev-1"[..]));
        assert_eq!(r.timestamp, Some(1_700_000_000_123));
        let r = c
            .decode(
                0,
                Bytes::from_static(br#"{"id":42,"ts":"2023-11-14T22:13:20.5Z"}"#),
                true,
            )
            .unwrap();
        assert_eq!(r.key.as_deref(), Some(&b"42"[..]));
        assert_eq!(r.timestamp, Some(1_700_000_000_500));
        let r = c
            .decode(0, Bytes::from_static(br#"{"x":1}"#), true)
            .unwrap();
        assert_eq!((r.key, r.timestamp), (None, None));
        let err = c
            .decode(3, Bytes::from_static(br#"{"ts":"yesterday"}"#), true)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"record 3: field "ts": expected epoch milliseconds or RFC 3339 text, got "yesterday""#
        );
    }

    #[test]
    fn floats_keep_every_digit_through_a_schema() {
        use crate::schema::{Field, FieldType};
        let c = codec(|d| {
            d.schema = Some(vec![Field {
                name: "x".into(),
                ty: FieldType::Float,
            }]);
        });
        // Values serde_json's fast float parser (without its
        // `float_roundtrip` feature) rounds to a neighbour.
        for text in [
            "-1.1240305535886279e38",
            "0.30000000000000004",
            "2.2250738585072014e-308",
        ] {
            let body = format!(r#"{{"x":{text}}}"#);
            let r = c.decode(0, Bytes::from(body), true).unwrap();
            let stored = std::str::from_utf8(&r.value).unwrap();
            let number = stored.trim_start_matches(r#"{"x":"#).trim_end_matches('}');
            assert_eq!(
                number.parse::<f64>().unwrap().to_bits(),
                text.parse::<f64>().unwrap().to_bits(),
                "{text} stored as {number}"
            );
        }
    }
}
