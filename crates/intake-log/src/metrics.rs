//! What a partition reports about its own work, as `metrics` handles.
//!
//! The log never installs or looks up a recorder: whoever opens a
//! partition and wants its figures registers handles with a recorder of its
//! own and hands them over with [`crate::Partition::set_metrics`]. Until
//! then every handle is a no-op, so a partition costs nothing to observe
//! when nobody does, and two nodes in one process never share figures.

use std::time::Duration;

use metrics::Histogram;

/// Histograms a partition records into.
#[derive(Debug, Clone)]
pub struct LogMetrics {
    /// Seconds from an [`crate::Partition::append`] call to its answer:
    /// queueing, the group's write and (under `FsyncPolicy::Always`) its
    /// fdatasync.
    pub append_seconds: Histogram,
    /// Seconds each fdatasync of a segment takes.
    pub fsync_seconds: Histogram,
    /// Appends one group commit wrote together.
    pub group_appends: Histogram,
    /// Bytes one group commit wrote.
    pub group_bytes: Histogram,
}

impl Default for LogMetrics {
    fn default() -> Self {
        Self {
            append_seconds: Histogram::noop(),
            fsync_seconds: Histogram::noop(),
            group_appends: Histogram::noop(),
            group_bytes: Histogram::noop(),
        }
    }
}

impl LogMetrics {
    pub(crate) fn fsync_took(&self, took: Duration) {
        self.fsync_seconds.record(took.as_secs_f64());
    }
}
