//! Runtime settings of a partition.

use std::time::Duration;

use crate::error::{Error, Result};

/// When appended data is made durable before the append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// fdatasync after every group of appends, before any of them is
    /// acknowledged. Nothing acknowledged is lost on power failure.
    #[default]
    Always,
    /// Acknowledge after the write; fdatasync at most this long after it.
    /// A power failure may lose up to this window (a process crash does not).
    Interval(Duration),
    /// Acknowledge after the write; leave flushing to the OS (and to segment
    /// rolls and shutdown, which always sync).
    Never,
}

/// How far an explicit [`crate::Partition::persist`] pushes data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersistMode {
    /// Data is in the OS page cache (survives a process crash).
    Buffer,
    /// Data is on disk (fdatasync).
    SyncData,
    /// Data and file metadata are on disk (fsync).
    SyncAll,
}

/// What opening a partition does with a damaged active segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Truncate the active segment at its first torn or corrupt batch (the
    /// trace of a crash mid-write, never acknowledged) and fsync. Damage in a
    /// sealed segment is still a hard error.
    #[default]
    TolerateCorruptTail,
    /// Refuse to open on any damage, tail included.
    AbsoluteConsistency,
}

/// Which sealed segments retention deletes. The active segment is never
/// deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Delete sealed segments last written longer ago than this.
    pub max_age: Option<Duration>,
    /// Delete the oldest sealed segments while the partition is larger.
    pub max_bytes: Option<u64>,
}

/// Settings of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionConfig {
    /// A segment is sealed and a new one started once it reaches this size
    /// (a group of appends is never split, so a segment may overshoot by one
    /// group). At most 1 GiB.
    pub segment_bytes: u64,
    /// One sparse index entry per this many bytes of batches.
    pub index_interval_bytes: u32,
    /// Durability of acknowledged appends.
    pub fsync: FsyncPolicy,
    /// The largest batch accepted (and believed when reading).
    pub max_batch_bytes: u32,
    /// Appends are refused with [`Error::QueueFull`] while this many bytes
    /// wait for the writer.
    pub max_pending_bytes: u64,
    /// Damage handling when opening.
    pub recovery: RecoveryMode,
    /// Verify every batch CRC of sealed segments when opening (slower start),
    /// rather than only their tails.
    pub verify_on_open: bool,
    /// Offset of the first record of a new, empty partition.
    pub start_offset: u64,
}

impl Default for PartitionConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 128 * 1024 * 1024,
            index_interval_bytes: 4096,
            fsync: FsyncPolicy::Always,
            max_batch_bytes: 64 * 1024 * 1024,
            max_pending_bytes: 256 * 1024 * 1024,
            recovery: RecoveryMode::TolerateCorruptTail,
            verify_on_open: false,
            start_offset: 0,
        }
    }
}

const MAX_SEGMENT_BYTES: u64 = 1 << 30;

impl PartitionConfig {
    /// Checks the values against each other and the format's limits.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the first bad value.
    pub fn validate(&self) -> Result<()> {
        let bad = |name, reason: String| Err(Error::InvalidParameter { name, reason });
        if self.segment_bytes < 4096 || self.segment_bytes > MAX_SEGMENT_BYTES {
            return bad(
                "segment_bytes",
                format!(
                    "{} is not between 4096 and {MAX_SEGMENT_BYTES}",
                    self.segment_bytes
                ),
            );
        }
        if self.index_interval_bytes == 0 {
            return bad("index_interval_bytes", "must be at least 1".into());
        }
        if u64::from(self.max_batch_bytes) > MAX_SEGMENT_BYTES || self.max_batch_bytes < 64 {
            return bad(
                "max_batch_bytes",
                format!(
                    "{} is not between 64 and {MAX_SEGMENT_BYTES}",
                    self.max_batch_bytes
                ),
            );
        }
        if let FsyncPolicy::Interval(d) = self.fsync
            && d.is_zero()
        {
            return bad("fsync", "an interval must be longer than zero".into());
        }
        Ok(())
    }
}

/// Settings of a [`crate::Log`]: its journal and its commit thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A journal file is closed and the next one started once it reaches
    /// this size; closed files are deleted once every partition they cover
    /// has synced its own segments (a checkpoint, in the background). It
    /// bounds what a restart after a crash replays.
    pub journal_file_bytes: u64,
    /// One group commit coalesces waiting appends, of every partition, up
    /// to this many bytes.
    pub max_group_bytes: usize,
    /// While a group holds an append under [`FsyncPolicy::Always`] and is
    /// less than half the size of the previous group, it waits up to this
    /// long for more appends before its fsync (adaptive group commit:
    /// fewer, fuller fsyncs under load, no wait when load is light). Zero
    /// turns it off.
    pub group_commit_delay: Duration,
    /// What opening does with a torn tail of the last journal file.
    pub recovery: RecoveryMode,
    /// A group's appends to one partition under [`FsyncPolicy::Always`] of
    /// this many bytes or more skip the journal: they are written to the
    /// partition's segment and synced there (one fsync more for the group,
    /// half the bytes written). `usize::MAX` journals everything.
    pub direct_write_bytes: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            journal_file_bytes: 256 * 1024 * 1024,
            max_group_bytes: 8 * 1024 * 1024,
            group_commit_delay: Duration::from_micros(200),
            recovery: RecoveryMode::TolerateCorruptTail,
            direct_write_bytes: 64 * 1024,
        }
    }
}

impl LogConfig {
    /// Checks the values.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the first bad value.
    pub fn validate(&self) -> Result<()> {
        let bad = |name, reason: String| Err(Error::InvalidParameter { name, reason });
        if self.journal_file_bytes < 4096 || self.journal_file_bytes > MAX_SEGMENT_BYTES {
            return bad(
                "journal_file_bytes",
                format!(
                    "{} is not between 4096 and {MAX_SEGMENT_BYTES}",
                    self.journal_file_bytes
                ),
            );
        }
        if self.max_group_bytes as u64 > MAX_SEGMENT_BYTES {
            return bad("max_group_bytes", format!("at most {MAX_SEGMENT_BYTES}"));
        }
        if self.group_commit_delay > Duration::from_secs(1) {
            return bad("group_commit_delay", "at most 1s".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        PartitionConfig::default().validate().unwrap();
        LogConfig::default().validate().unwrap();
    }

    #[test]
    fn bad_values_are_named() {
        let c = PartitionConfig {
            segment_bytes: 10,
            ..Default::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("segment_bytes"), "{e}");
        let c = PartitionConfig {
            fsync: FsyncPolicy::Interval(Duration::ZERO),
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("fsync"));
    }
}
