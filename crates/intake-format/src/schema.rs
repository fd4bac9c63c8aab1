//! Schema types: the fields of structured records.

use serde::{Deserialize, Serialize};

/// One field of a schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    /// Field name.
    pub name: String,
    /// Field type.
    #[serde(flatten)]
    pub ty: FieldType,
}

/// The type of a field, as eKuiper names them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
        items: Box<FieldType>,
    },
    /// A nested record.
    Struct {
        /// Its fields.
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
