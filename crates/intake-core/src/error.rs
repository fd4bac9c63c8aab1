//! The errors of the core.

use intake_format::FormatError;

/// Everything the core can refuse or fail with.
///
/// Not `#[non_exhaustive]`, on purpose: `intake-server` maps every variant
/// to a status and code in one exhaustive match, so a new variant does not
/// compile until it has its answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No stream has this name.
    #[error("stream {name:?} does not exist")]
    StreamNotFound {
        /// The name asked for.
        name: String,
    },
    /// A stream with this name exists already.
    #[error("stream {name:?} already exists")]
    StreamExists {
        /// The name.
        name: String,
    },
    /// The stream is paused and refuses records.
    #[error("stream {name:?} is paused; resume it to accept records")]
    StreamPaused {
        /// The stream.
        name: String,
    },
    /// The stream has no such partition.
    #[error("stream {stream:?} has no partition {partition} (it has {partitions})")]
    PartitionNotFound {
        /// The stream.
        stream: String,
        /// The partition asked for.
        partition: u32,
        /// How many it has.
        partitions: u32,
    },
    /// A stream definition is not acceptable.
    #[error("invalid stream definition: {field}: {reason}")]
    InvalidDefinition {
        /// The field at fault.
        field: String,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// A body or record could not be decoded or validated.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// More records in one request than allowed.
    #[error("{count} records in one request; at most {limit} are accepted")]
    TooManyRecords {
        /// Records in the request.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// One record is larger than allowed.
    #[error("record {index}: {len} bytes; at most {limit} are accepted per record")]
    RecordTooLarge {
        /// 0-based position in the request.
        index: usize,
        /// Its size.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// JSON nested deeper than allowed.
    #[error(
        "JSON nested deeper than {limit} levels (at byte {position}); flatten the record or raise limits.max_json_depth"
    )]
    TooDeep {
        /// Byte position, in the body or the record, of the bracket past the limit.
        position: usize,
        /// The limit.
        limit: usize,
    },
    /// The log refused or failed.
    #[error(transparent)]
    Log(#[from] intake_log::Error),
    /// The catalog database failed.
    #[error("catalog: {0}")]
    Catalog(#[from] sqlx::Error),
    /// The node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// A sink failed, or did not acknowledge in time for `ack = "sink"`.
    #[error(transparent)]
    Forward(#[from] intake_forward::ForwardError),
    /// A presented access token was refused.
    #[error(transparent)]
    Token(#[from] crate::auth::TokenError),
    /// No token has this id (revoking).
    #[error("token {id:?} does not exist")]
    TokenNotFound {
        /// The id asked for.
        id: String,
    },
    /// An `Idempotency-Key`, `Intake-Producer-Id` or `Intake-Sequence`
    /// that is not acceptable.
    #[error("{reason}")]
    InvalidIdempotencyKey {
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// A key seen within the stream's window with a different request.
    #[error(
        "{key} was used within the stream's dedup_window for a different request (its body, content type or records differ); use a new key for a new request"
    )]
    IdempotencyKeyReused {
        /// The key, as the client sent it.
        key: String,
    },
    /// A producer sequence that is neither the next one nor one held.
    #[error(
        "producer {producer:?} sent sequence {got}, but {expected} is the next one this stream expects"
    )]
    OutOfOrderSequence {
        /// The producer id.
        producer: String,
        /// The sequence expected next.
        expected: u64,
        /// The sequence sent.
        got: u64,
    },
    /// A file-system operation outside the log failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn definition(field: &str, reason: impl Into<String>) -> Self {
        Self::InvalidDefinition {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }

    /// True when the request may succeed if sent again later unchanged.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Log(e) => e.is_retryable(),
            Self::ShuttingDown | Self::Catalog(_) => true,
            Self::Forward(e) => matches!(
                e,
                intake_forward::ForwardError::AckTimeout { .. }
                    | intake_forward::ForwardError::Stopped { .. }
            ),
            _ => false,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
