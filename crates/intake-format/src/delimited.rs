//! The `delimited` format: one record per line, values separated by the
//! stream's delimiter (`,` by default) and mapped to the schema's fields in
//! order, as eKuiper's delimited format does. Without a schema the values
//! are named `col0`, `col1`, ... and kept as text. There is no quoting: a
//! value cannot hold the delimiter or a line break.
//!
//! A record is stored as the JSON object the line maps to, so reads, tails
//! and scan tables see fields, whatever the wire format was.

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::error::FormatError;
use crate::schema::{Field, Validation, value_from_text};
use crate::time::TimeFormat;

/// Splits a delimited body into its lines: `\n` or `\r\n` ends a line and
/// blank lines are skipped. Each line is a zero-copy slice of `body`.
pub fn split_lines(body: &Bytes) -> Vec<Bytes> {
    body.split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .map(|line| body.slice_ref(line))
        .collect()
}

/// Maps one line to a JSON object.
///
/// # Errors
/// [`FormatError::InvalidRecord`] naming `index` (and the field) when the
/// line is not UTF-8, has the wrong number of values (strict mode: exactly
/// as many as fields; otherwise missing values are null and extra ones are
/// refused), or a value does not read as its field's type.
pub fn decode_line(
    index: usize,
    line: &[u8],
    delimiter: &str,
    schema: Option<&[Field]>,
    mode: Validation,
    time: &TimeFormat,
) -> Result<Map<String, Value>, FormatError> {
    let text = std::str::from_utf8(line)
        .map_err(|e| FormatError::record(index, None, format!("not UTF-8 text: {e}")))?;
    let values: Vec<&str> = text.split(delimiter).collect();
    let mut out = Map::new();
    let Some(fields) = schema else {
        for (i, v) in values.into_iter().enumerate() {
            out.insert(format!("col{i}"), Value::String(v.to_owned()));
        }
        return Ok(out);
    };
    let too_many = values.len() > fields.len();
    let too_few = values.len() < fields.len() && mode == Validation::Strict;
    if too_many || too_few {
        return Err(FormatError::record(
            index,
            None,
            format!(
                "expected {} values separated by {delimiter:?}, got {}",
                fields.len(),
                values.len()
            ),
        ));
    }
    for (i, field) in fields.iter().enumerate() {
        let value = match values.get(i) {
            Some(text) => value_from_text(&field.ty, text, mode, time, &field.name)
                .map_err(|e| FormatError::record(index, Some(&e.path), e.reason))?,
            None => Value::Null,
        };
        out.insert(field.name.clone(), value);
    }
    Ok(out)
}

/// Writes a record back as a delimited line in schema order (the inverse of
/// [`decode_line`], for tests and tools): text as is, null as empty, other
/// values as their JSON text.
pub fn encode_line(record: &Map<String, Value>, fields: &[Field], delimiter: &str) -> String {
    fields
        .iter()
        .map(|f| match record.get(&f.name) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(delimiter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::FieldType;

    fn fields() -> Vec<Field> {
        vec![
            Field {
                name: "id".into(),
                ty: FieldType::Bigint,
            },
            Field {
                name: "temp".into(),
                ty: FieldType::Float,
            },
            Field {
                name: "name".into(),
                ty: FieldType::String,
            },
        ]
    }

    #[test]
    fn lines_split_and_blank_lines_skipped() {
        let body = Bytes::from_static(b"1,2\r\n\n  \n3,4\n");
        assert_eq!(split_lines(&body), vec![&b"1,2"[..], b"3,4"]);
    }

    #[test]
    fn values_map_to_fields_in_order() {
        let t = TimeFormat::iso8601();
        let rec = decode_line(
            0,
            b"7|21.5|a b",
            "|",
            Some(&fields()),
            Validation::Strict,
            &t,
        )
        .unwrap();
        assert_eq!(
            Value::Object(rec),
            serde_json::json!({"id": 7, "temp": 21.5, "name": "a b"})
        );
        let rec = decode_line(0, b"x,y", ",", None, Validation::Coerce, &t).unwrap();
        assert_eq!(
            Value::Object(rec),
            serde_json::json!({"col0": "x", "col1": "y"})
        );
        let rec = decode_line(0, b"7", ",", Some(&fields()), Validation::Coerce, &t).unwrap();
        assert_eq!(
            Value::Object(rec),
            serde_json::json!({"id": 7, "temp": null, "name": null})
        );
    }

    #[test]
    fn bad_lines_name_record_and_field() {
        let t = TimeFormat::iso8601();
        let err =
            decode_line(3, b"1,hot,x", ",", Some(&fields()), Validation::Strict, &t).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"record 3: field "temp": expected float, got string "hot""#
        );
        let err = decode_line(2, b"1,2", ",", Some(&fields()), Validation::Strict, &t).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"record 2: expected 3 values separated by ",", got 2"#
        );
        let err =
            decode_line(0, b"1,2,3,4", ",", Some(&fields()), Validation::Coerce, &t).unwrap_err();
        assert!(err.to_string().contains("expected 3 values"), "{err}");
        let err =
            decode_line(0, b"\xff", ",", Some(&fields()), Validation::Coerce, &t).unwrap_err();
        assert!(err.to_string().contains("not UTF-8"), "{err}");
    }
}
