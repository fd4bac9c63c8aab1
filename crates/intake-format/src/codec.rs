//! A stream's record codec: from a request body or a pushed item to what the
//! log stores (value, key, timestamp).

use bytes::Bytes;
use serde_json::Value;

use crate::api::{Format, StreamDefinition};
use crate::error::FormatError;
use crate::json::{check_json, split_json, split_ndjson};

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
}

impl RecordCodec {
    /// Builds the codec of a stream.
    ///
    /// # Errors
    /// [`FormatError::InvalidDefinition`] when the definition asks for
    /// something this codec cannot do.
    pub fn new(def: &StreamDefinition) -> Result<Self, FormatError> {
        match def.format {
            Format::Json | Format::Ndjson => {}
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
            other => {
                return Err(FormatError::definition(
                    "format",
                    format!("{other:?} is not supported; use json, ndjson or binary")
                        .to_lowercase(),
                ));
            }
        }
        if def.schema.is_some() {
            return Err(FormatError::definition(
                "schema",
                "typed schemas are not supported; leave schema null for schemaless JSON",
            ));
        }
        Ok(Self {
            format: def.format,
            key_field: def.key_field.clone(),
            timestamp_field: def.timestamp_field.clone(),
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
            (_, Format::Binary) => Ok(vec![body.clone()]),
            (Framing::Json, _) => split_json(body),
            (Framing::Ndjson, _) => split_ndjson(body),
            (Framing::Raw, Format::Ndjson) => split_ndjson(body),
            (Framing::Raw, _) => split_json(body),
        }
    }

    /// True when [`RecordCodec::decode`] needs to look inside records.
    fn inspects_fields(&self) -> bool {
        self.key_field.is_some() || self.timestamp_field.is_some()
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
        if self.format == Format::Binary {
            return Ok(DecodedRecord {
                value: item,
                key: None,
                timestamp: None,
            });
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
        let key = match &self.key_field {
            Some(field) => key_of(parsed.get(field)),
            None => None,
        };
        let timestamp = match &self.timestamp_field {
            Some(field) => timestamp_of(index, field, parsed.get(field))?,
            None => None,
        };
        Ok(DecodedRecord {
            value: item,
            key,
            timestamp,
        })
    }
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
) -> Result<Option<i64>, FormatError> {
    let bad = |got: &Value| {
        FormatError::record(
            index,
            Some(field),
            format!("expected epoch milliseconds or RFC 3339 text, got {got}"),
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
        Some(v @ Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.timestamp_millis()))
            .map_err(|_| bad(v)),
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
}
