//! The errors of the log.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the log.
///
/// Not `#[non_exhaustive]`, on purpose: `intake-server` maps every variant
/// to a status and code in one exhaustive match, so a new variant does not
/// compile until it has its answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O call failed.
    #[error("{op} {path}: {source}", path = path.display())]
    Io {
        /// What was being done (`"open"`, `"write"`, ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// Bytes on disk are not what the log wrote.
    #[error("corrupt log {path} at byte {position}: {reason}", path = path.display())]
    Corrupt {
        /// The segment or index file.
        path: PathBuf,
        /// Byte position of the bad data within the file.
        position: u64,
        /// What check failed.
        reason: String,
    },
    /// A write or fsync failed earlier; the partition refuses writes until
    /// the process restarts and recovery has run.
    #[error("partition {dir} refuses writes after an I/O failure ({cause}); restart to recover", dir = dir.display())]
    Poisoned {
        /// The partition directory.
        dir: PathBuf,
        /// The failure that poisoned it.
        cause: String,
    },
    /// The disk is full; nothing of the failed append was kept. Writes
    /// resume once space returns.
    #[error("no space left for {path}; nothing was written", path = path.display())]
    NoSpace {
        /// The segment being written.
        path: PathBuf,
    },
    /// Too much is already waiting to be written to this partition.
    #[error("partition {dir} has {pending_bytes} bytes waiting (limit {limit}); retry shortly", dir = dir.display())]
    QueueFull {
        /// The partition directory.
        dir: PathBuf,
        /// Bytes waiting for the writer.
        pending_bytes: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The partition is closed (shutting down).
    #[error("partition {dir} is closed", dir = dir.display())]
    Closed {
        /// The partition directory.
        dir: PathBuf,
    },
    /// A batch must hold at least one record.
    #[error("a batch needs at least one record")]
    EmptyBatch,
    /// A batch is larger than the log accepts.
    #[error("batch of {len} bytes is over the limit of {limit} bytes")]
    BatchTooLarge {
        /// Encoded size.
        len: u64,
        /// Largest accepted size.
        limit: u64,
    },
    /// A read asked for an offset the partition does not hold.
    #[error(
        "offset {requested} is out of range: this partition holds offsets {earliest} to {next} (exclusive)"
    )]
    OffsetOutOfRange {
        /// The offset asked for.
        requested: u64,
        /// Oldest retained offset.
        earliest: u64,
        /// Offset the next record will get.
        next: u64,
    },
    /// A configuration value is not acceptable.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// Why it is refused.
        reason: String,
    },
}

impl Error {
    /// True when the same call may succeed later without operator action
    /// (queue full, disk full).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::QueueFull { .. } | Self::NoSpace { .. })
    }

    /// True for a disk that is full: [`Error::NoSpace`], or an I/O error
    /// saying so.
    pub(crate) fn is_no_space(&self) -> bool {
        match self {
            Self::NoSpace { .. } => true,
            Self::Io { source, .. } => source.kind() == io::ErrorKind::StorageFull,
            _ => false,
        }
    }

    /// True for an I/O error saying the process (`EMFILE`) or the system
    /// (`ENFILE`) has no file handle left: the node is at a limit an
    /// operator can raise, not broken.
    pub fn is_out_of_file_handles(&self) -> bool {
        matches!(self, Self::Io { source, .. }
            if matches!(source.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)))
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { op, path, source }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
