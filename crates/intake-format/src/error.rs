//! The errors of decoding.

/// Why a body or record could not be decoded.
///
/// Not `#[non_exhaustive]`, on purpose: `intake-server` maps every variant
/// to a status and code in one exhaustive match, so a new variant does not
/// compile until it has its answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The body is not well-formed in its framing (e.g. not JSON).
    #[error("malformed body at line {line}, column {column}: {reason}")]
    Malformed {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser expected.
        reason: String,
    },
    /// One record of the request is not acceptable.
    #[error("record {index}: {}{reason}", field.as_ref().map(|f| format!("field {f:?}: ")).unwrap_or_default())]
    InvalidRecord {
        /// 0-based position of the record in the request.
        index: usize,
        /// The field at fault, if one is.
        field: Option<String>,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// The stream definition cannot be used to decode.
    #[error("invalid stream definition: {field}: {reason}")]
    InvalidDefinition {
        /// The definition field at fault.
        field: String,
        /// What is wrong and what is accepted.
        reason: String,
    },
}

impl FormatError {
    pub(crate) fn record(index: usize, field: Option<&str>, reason: impl Into<String>) -> Self {
        Self::InvalidRecord {
            index,
            field: field.map(str::to_owned),
            reason: reason.into(),
        }
    }

    pub(crate) fn definition(field: &str, reason: impl Into<String>) -> Self {
        Self::InvalidDefinition {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}
