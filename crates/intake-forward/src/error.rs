//! Errors of sinks.

use std::path::Path;
use std::time::Duration;

/// What can go wrong with a sink.
///
/// Not `#[non_exhaustive]`, on purpose: `intake-server` maps every variant
/// to a status and code in one exhaustive match, so a new variant does not
/// compile until it has its answer.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// A file operation on a cursor failed.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A cursor file holds something other than an offset.
    #[error("sink cursor {path} is damaged: {reason}")]
    CorruptCursor {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The definition cannot be served by this build.
    #[error("sink {name:?}: {reason}")]
    Unsupported {
        /// The sink.
        name: String,
        /// Why.
        reason: String,
    },
    /// No sink of that name on the stream.
    #[error("stream has no sink named {name:?}")]
    SinkNotFound {
        /// The name asked for.
        name: String,
    },
    /// `ack = "sink"` waited longer than the stream's `ack_timeout_ms`.
    #[error(
        "sink {sink:?} did not acknowledge within {waited:?}; the records are stored and will be forwarded, retry later"
    )]
    AckTimeout {
        /// The sink waited for.
        sink: String,
        /// How long.
        waited: Duration,
    },
    /// The sinks stopped (stream deleted or node shutting down) before
    /// acknowledging.
    #[error("sink {sink:?} stopped before acknowledging")]
    Stopped {
        /// The sink.
        sink: String,
    },
}

impl ForwardError {
    pub(crate) fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.display().to_string();
        move |source| Self::Io { op, path, source }
    }
}

/// A failed send to a broker (retried by the worker).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SendError(pub(crate) String);
