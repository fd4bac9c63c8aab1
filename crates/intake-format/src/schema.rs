//! Schema types: the fields of structured records.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One field of a schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Field {
    /// Field name.
    pub name: String,
    /// Field type.
    #[serde(flatten)]
    pub ty: FieldType,
}

/// The type of a field, as eKuiper names them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum FieldType {
    /// 64-bit signed integer.
    Bigint,
    /// 64-bit float.
    Float,
    /// UTF-8 text.
    String,
    /// A point in time (epoch ms, or text in the stream's timestamp format).
    Datetime,
    /// true or false.
    Boolean,
    /// Bytes (base64 text in JSON).
    Bytea,
    /// A list of values of one type.
    Array {
        /// Type of the elements.
        #[schema(no_recursion)]
        items: Box<FieldType>,
    },
    /// A nested record.
    Struct {
        /// Its fields.
        #[schema(no_recursion)]
        fields: Vec<Field>,
    },
}

impl FieldType {
    /// The eKuiper spelling: `bigint`, `array(float)`, `struct(a bigint, b string)`.
    pub fn describe(&self) -> String {
        match self {
            Self::Bigint => "bigint".into(),
            Self::Float => "float".into(),
            Self::String => "string".into(),
            Self::Datetime => "datetime".into(),
            Self::Boolean => "boolean".into(),
            Self::Bytea => "bytea".into(),
            Self::Array { items } => format!("array({})", items.describe()),
            Self::Struct { fields } => {
                let inner: Vec<String> = fields
                    .iter()
                    .map(|f| format!("{} {}", f.name, f.ty.describe()))
                    .collect();
                format!("struct({})", inner.join(", "))
            }
        }
    }
}

/// Why one value does not fit its field; the codec adds the record index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field: `temp`, `loc.lat`, `tags[2]`.
    pub path: String,
    /// What was expected and what came.
    pub reason: String,
}

/// How values that do not match their field's type are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// Refuse a missing field or a value of another type.
    Strict,
    /// Convert what can be converted (see [`conform_record`]); a missing
    /// field becomes null.
    Coerce,
}

/// Checks (and in [`Validation::Coerce`] mode converts) a record against
/// `fields`, in place. Fields the schema does not name are kept unchanged.
///
/// Conversion rules of [`Validation::Coerce`], after eKuiper's:
/// - `bigint`: an integral number as is; another number truncated toward
///   zero; text holding a number parsed (then truncated); `true`/`false` as
///   1/0.
/// - `float`: any number; text holding a number; `true`/`false` as 1.0/0.0.
/// - `string`: text as is; a number or boolean as its JSON text; an array or
///   object as its JSON text.
/// - `boolean`: a boolean; `1 t T TRUE true True` and `0 f F FALSE false
///   False` as text; a number is true unless 0.
/// - `datetime`: epoch milliseconds (a fraction is dropped) or text in the
///   stream's timestamp format; digits-only text as epoch milliseconds.
/// - `bytea`: base64 text.
/// - `array(T)` and `struct(...)`: their elements and fields, recursively;
///   text holding a JSON array or object is parsed first.
/// - null stays null for every type, and a missing field becomes null.
///
/// A value that cannot be converted is refused in both modes, so a stored
/// record always matches its schema.
///
/// # Errors
/// [`FieldError`] naming the first field at fault.
pub fn conform_record(
    fields: &[Field],
    record: &mut serde_json::Map<String, serde_json::Value>,
    mode: Validation,
    time: &crate::time::TimeFormat,
) -> Result<(), FieldError> {
    conform_fields(fields, record, mode, time, "")
}

fn conform_fields(
    fields: &[Field],
    record: &mut serde_json::Map<String, serde_json::Value>,
    mode: Validation,
    time: &crate::time::TimeFormat,
    prefix: &str,
) -> Result<(), FieldError> {
    for field in fields {
        let path = if prefix.is_empty() {
            field.name.clone()
        } else {
            format!("{prefix}.{}", field.name)
        };
        match record.get_mut(&field.name) {
            Some(value) => conform_value(&field.ty, value, mode, time, &path)?,
            None if mode == Validation::Strict => {
                return Err(FieldError {
                    path,
                    reason: format!(
                        "expected {}, got nothing (the field is missing)",
                        field.ty.describe()
                    ),
                });
            }
            None => {
                record.insert(field.name.clone(), serde_json::Value::Null);
            }
        }
    }
    Ok(())
}

/// Describes a JSON value for error messages: `string "hot"`, `number 3.5`.
pub fn describe_value(value: &serde_json::Value) -> String {
    use serde_json::Value;
    const MAX: usize = 40;
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.chars().count() > MAX => {
            let cut: String = s.chars().take(MAX).collect();
            format!("string {cut:?}...")
        }
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn truncate(f: f64) -> Option<i64> {
    (f.is_finite() && f.abs() < 9.2e18).then(|| f.trunc() as i64)
}

/// Converts `value` to `ty` under `mode`, or says why it cannot.
fn conform_value(
    ty: &FieldType,
    value: &mut serde_json::Value,
    mode: Validation,
    time: &crate::time::TimeFormat,
    path: &str,
) -> Result<(), FieldError> {
    use base64::Engine;
    use serde_json::Value;
    let strict = mode == Validation::Strict;
    let mismatch = |value: &Value| FieldError {
        path: path.to_owned(),
        reason: format!("expected {}, got {}", ty.describe(), describe_value(value)),
    };
    if value.is_null() {
        return if strict { Err(mismatch(value)) } else { Ok(()) };
    }
    let converted: Option<Value> = match (ty, &*value) {
        (FieldType::Bigint, Value::Number(n)) if n.is_i64() => return Ok(()),
        (FieldType::Bigint, _) if strict => None,
        (FieldType::Bigint, Value::Number(n)) => n.as_f64().and_then(truncate).map(Value::from),
        (FieldType::Bigint, Value::String(s)) => {
            let s = s.trim();
            s.parse::<i64>()
                .ok()
                .or_else(|| s.parse::<f64>().ok().and_then(truncate))
                .map(Value::from)
        }
        (FieldType::Bigint, Value::Bool(b)) => Some(Value::from(i64::from(*b))),
        (FieldType::Float, Value::Number(_)) => return Ok(()),
        (FieldType::Float, _) if strict => None,
        (FieldType::Float, Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number),
        (FieldType::Float, Value::Bool(b)) => Some(Value::from(if *b { 1.0 } else { 0.0 })),
        (FieldType::String, Value::String(_)) => return Ok(()),
        (FieldType::String, _) if strict => None,
        (FieldType::String, other) => Some(Value::String(other.to_string())),
        (FieldType::Boolean, Value::Bool(_)) => return Ok(()),
        (FieldType::Boolean, _) if strict => None,
        (FieldType::Boolean, Value::String(s)) => parse_bool(s.trim()).map(Value::Bool),
        (FieldType::Boolean, Value::Number(n)) => n.as_f64().map(|f| Value::Bool(f != 0.0)),
        (FieldType::Datetime, Value::Number(n)) if n.is_i64() => return Ok(()),
        (FieldType::Datetime, Value::String(s)) if time.parse(s).is_some() => return Ok(()),
        (FieldType::Datetime, _) if strict => {
            return Err(FieldError {
                path: path.to_owned(),
                reason: format!(
                    "expected datetime (epoch milliseconds or {}), got {}",
                    time.describe(),
                    describe_value(value)
                ),
            });
        }
        (FieldType::Datetime, Value::Number(n)) => n.as_f64().and_then(truncate).map(Value::from),
        (FieldType::Datetime, Value::String(s)) => s.trim().parse::<i64>().ok().map(Value::from),
        (FieldType::Bytea, Value::String(s)) => {
            if base64::engine::general_purpose::STANDARD.decode(s).is_ok() {
                return Ok(());
            }
            return Err(FieldError {
                path: path.to_owned(),
                reason: format!(
                    "expected bytea (base64 text), got {}",
                    describe_value(value)
                ),
            });
        }
        (FieldType::Array { items }, Value::Array(_)) => {
            let Value::Array(elements) = value else {
                return Ok(());
            };
            for (i, element) in elements.iter_mut().enumerate() {
                conform_value(items, element, mode, time, &format!("{path}[{i}]"))?;
            }
            return Ok(());
        }
        (FieldType::Struct { fields }, Value::Object(_)) => {
            let Value::Object(map) = value else {
                return Ok(());
            };
            return conform_fields(fields, map, mode, time, path);
        }
        (FieldType::Array { .. } | FieldType::Struct { .. }, Value::String(s)) if !strict => {
            let parsed: Option<Value> = serde_json::from_str(s).ok();
            match (ty, parsed) {
                (FieldType::Array { .. }, Some(v @ Value::Array(_)))
                | (FieldType::Struct { .. }, Some(v @ Value::Object(_))) => {
                    *value = v;
                    return conform_value(ty, value, mode, time, path);
                }
                _ => None,
            }
        }
        _ => None,
    };
    match converted {
        Some(v) => {
            *value = v;
            Ok(())
        }
        None => Err(mismatch(value)),
    }
}

/// Parses one delimited text value into `ty` (under `mode`): the text of a
/// `string`, and for other types the same conversions as [`conform_record`]
/// applies to text. An empty value is null (refused when strict).
///
/// # Errors
/// [`FieldError`] naming `path`.
pub fn value_from_text(
    ty: &FieldType,
    text: &str,
    mode: Validation,
    time: &crate::time::TimeFormat,
    path: &str,
) -> Result<serde_json::Value, FieldError> {
    use serde_json::Value;
    if matches!(ty, FieldType::String | FieldType::Bytea) {
        let mut v = Value::String(text.to_owned());
        conform_value(ty, &mut v, mode, time, path)?;
        return Ok(v);
    }
    if text.is_empty() {
        let mut v = Value::Null;
        conform_value(ty, &mut v, mode, time, path)?;
        return Ok(v);
    }
    // Text is the wire form here, so strict mode too reads it as the type;
    // strict only refuses what coercion would have had to bend.
    let strict = mode == Validation::Strict;
    let trimmed = text.trim();
    let parsed = match ty {
        FieldType::Bigint => trimmed.parse::<i64>().ok().map(Value::from).or_else(|| {
            (!strict)
                .then(|| trimmed.parse::<f64>().ok().and_then(truncate))
                .flatten()
                .map(Value::from)
        }),
        FieldType::Float => trimmed
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number),
        FieldType::Boolean if strict => match trimmed {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        FieldType::Boolean => parse_bool(trimmed).map(Value::Bool),
        FieldType::Datetime if time.parse(text).is_some() => Some(Value::String(text.to_owned())),
        FieldType::Datetime => trimmed.parse::<i64>().ok().map(Value::from),
        FieldType::Array { .. } | FieldType::Struct { .. } => {
            let mut v: Value = match serde_json::from_str(text) {
                Ok(v) => v,
                Err(_) => {
                    return Err(FieldError {
                        path: path.to_owned(),
                        reason: format!(
                            "expected {} as JSON text, got {}",
                            ty.describe(),
                            describe_value(&Value::String(text.to_owned()))
                        ),
                    });
                }
            };
            conform_value(ty, &mut v, mode, time, path)?;
            Some(v)
        }
        FieldType::String | FieldType::Bytea => None,
    };
    parsed.ok_or_else(|| FieldError {
        path: path.to_owned(),
        reason: format!(
            "expected {}, got {}",
            ty.describe(),
            describe_value(&Value::String(text.to_owned()))
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_types_in_json() {
        let fields: Vec<Field> = serde_json::from_str(
            r#"[{"name":"temp","type":"float"},
                {"name":"tags","type":"array","items":{"type":"string"}},
                {"name":"loc","type":"struct","fields":[{"name":"lat","type":"float"}]}]"#,
        )
        .unwrap();
        assert_eq!(fields[1].ty.describe(), "array(string)");
        assert_eq!(fields[2].ty.describe(), "struct(lat float)");
        let back: Vec<Field> =
            serde_json::from_value(serde_json::to_value(&fields).unwrap()).unwrap();
        assert_eq!(back, fields);
    }
}
