//! The SDK's errors; [`Error::is_retryable`] says whether trying again (on
//! this or another node) can help.

use std::time::Duration;

/// What went wrong with a send.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The node list is empty: no static nodes, and the manager listed none.
    #[error("no node to send to: the manager lists no online node and no static node is set")]
    NoNodes,
    /// The manager could not be asked for nodes.
    #[error("cannot read the node list from {url}: {reason}")]
    Discovery {
        /// The manager URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// A node could not be reached or did not answer in time.
    #[error("node {node} unreachable: {reason}")]
    Unreachable {
        /// `HOST:PORT`.
        node: String,
        /// What failed.
        reason: String,
    },
    /// A node answered 5xx or 429: busy, draining or failing; try elsewhere.
    #[error("node {node} answered {status} ({code}): {message}")]
    Unavailable {
        /// `HOST:PORT`.
        node: String,
        /// HTTP status.
        status: u16,
        /// The error code from the body.
        code: String,
        /// The error message from the body.
        message: String,
        /// The node's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// A node refused the records (4xx): sending them again will not help.
    #[error("refused by {node} with {status} ({code}): {message}")]
    Rejected {
        /// `HOST:PORT`.
        node: String,
        /// HTTP status.
        status: u16,
        /// The error code from the body, e.g. `invalid_record`.
        code: String,
        /// The error message from the body.
        message: String,
        /// With `out_of_order_sequence`: the sequence the node expects.
        expected: Option<u64>,
    },
    /// Retries ran out of time; carries the last failure.
    #[error("gave up after {attempts} attempts in {elapsed:?}: {last}")]
    DeadlineExceeded {
        /// How many sends were tried.
        attempts: u32,
        /// Time spent.
        elapsed: Duration,
        /// The last failure.
        last: Box<Error>,
    },
    /// A builder setting is unusable.
    #[error("invalid setting {name}: {reason}")]
    InvalidSetting {
        /// The setting.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// The batcher was closed before the record was sent.
    #[error("the batcher is closed")]
    Closed,
}

impl Error {
    /// True when sending again (after a backoff, perhaps to another node)
    /// may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::NoNodes
            | Self::Discovery { .. }
            | Self::Unreachable { .. }
            | Self::Unavailable { .. } => true,
            Self::DeadlineExceeded { last, .. } => last.is_retryable(),
            Self::Rejected { .. } | Self::InvalidSetting { .. } | Self::Closed => false,
        }
    }
}

/// Results of the SDK.
pub type Result<T, E = Error> = std::result::Result<T, E>;
