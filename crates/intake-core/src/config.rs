//! Settings of the core: where data lives, the catalog, log tuning and
//! ingest limits. Part of `intake.toml`.

use std::path::PathBuf;
use std::time::Duration;

use intake_format::api::StreamDefinition;
use intake_log::{LogConfig, PartitionConfig, RecoveryMode};
use serde::{Deserialize, Serialize};

/// Log tuning shared by every partition (`[log]` in `intake.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// Roll to a new segment file once one reaches this many bytes
    /// (default 128 MiB, at most 1 GiB).
    pub segment_bytes: u64,
    /// One sparse index entry per this many bytes of log (default 4096).
    pub index_interval_bytes: u32,
    /// Appends to one partition are refused (503 + Retry-After) while this
    /// many bytes wait to be written (default 256 MiB).
    pub max_pending_bytes: u64,
    /// One group commit coalesces waiting appends, of every stream, up to
    /// this many bytes (default 8 MiB).
    pub max_group_bytes: usize,
    /// Under fsync = "always", a group of appends much smaller than the
    /// previous one waits up to this long for more before its fsync
    /// (default "200us"; "0s" turns it off).
    #[serde(with = "humantime_serde")]
    pub group_commit_delay: Duration,
    /// On start, verify the checksum of every batch of sealed segments, not
    /// only their tails (slower start; default false).
    pub verify_on_open: bool,
    /// On start, refuse to open a partition whose active segment has a torn
    /// tail instead of truncating it (default false: truncate, since a torn
    /// tail was never acknowledged).
    pub refuse_torn_tail: bool,
    /// The journal every partition's appends go through starts a new file
    /// at this size; full files are deleted once the segments they cover
    /// are synced. A restart after a crash replays at most about two
    /// files (default 256 MiB).
    pub journal_file_bytes: u64,
    /// Under fsync = "always", a group's appends to one partition of this
    /// many bytes or more skip the journal: written once, to the
    /// partition's segment, and synced there (one fsync more for the group,
    /// half the bytes written). Above `max_group_bytes` everything goes
    /// through the journal (default 65536).
    pub direct_write_bytes: usize,
    /// How often retention runs (default "30s").
    #[serde(with = "humantime_serde")]
    pub retention_check_interval: Duration,
}

impl Default for LogSettings {
    fn default() -> Self {
        let p = PartitionConfig::default();
        let log = LogConfig::default();
        Self {
            segment_bytes: p.segment_bytes,
            index_interval_bytes: p.index_interval_bytes,
            max_pending_bytes: p.max_pending_bytes,
            max_group_bytes: log.max_group_bytes,
            group_commit_delay: log.group_commit_delay,
            journal_file_bytes: log.journal_file_bytes,
            direct_write_bytes: log.direct_write_bytes,
            verify_on_open: false,
            refuse_torn_tail: false,
            retention_check_interval: Duration::from_secs(30),
        }
    }
}

impl LogSettings {
    /// The partition config these settings give, before per-stream choices.
    pub fn partition_config(&self) -> PartitionConfig {
        PartitionConfig {
            segment_bytes: self.segment_bytes,
            index_interval_bytes: self.index_interval_bytes,
            max_pending_bytes: self.max_pending_bytes,
            verify_on_open: self.verify_on_open,
            recovery: self.recovery(),
            ..PartitionConfig::default()
        }
    }

    /// The config of the node's log (its journal and commit thread).
    pub fn log_config(&self) -> LogConfig {
        LogConfig {
            journal_file_bytes: self.journal_file_bytes,
            max_group_bytes: self.max_group_bytes,
            group_commit_delay: self.group_commit_delay,
            recovery: self.recovery(),
            direct_write_bytes: self.direct_write_bytes,
        }
    }

    fn recovery(&self) -> RecoveryMode {
        if self.refuse_torn_tail {
            RecoveryMode::AbsoluteConsistency
        } else {
            RecoveryMode::TolerateCorruptTail
        }
    }
}

/// Limits every push is held to, whatever the face (`[limits]`, shared with
/// the HTTP limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestLimits {
    /// Most records one request may carry (default 100000).
    pub max_records_per_request: usize,
    /// Largest single record, in bytes (default 1 MiB).
    pub max_record_bytes: usize,
    /// Deepest nesting of JSON arrays and objects in a record of a JSON
    /// stream (default 64, at most 128); deeper is refused with 400 before
    /// any parser runs.
    pub max_json_depth: usize,
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self {
            max_records_per_request: 100_000,
            max_record_bytes: 1024 * 1024,
            max_json_depth: 64,
        }
    }
}

/// Settings of a node's core.
#[derive(Debug, Clone, PartialEq)]
pub struct CoreConfig {
    /// Root of the data directory.
    pub data_dir: PathBuf,
    /// Catalog URL; `None` for the embedded SQLite file in `data_dir`.
    pub catalog: Option<String>,
    /// With a shared catalog (not SQLite), how often to re-read it for
    /// streams created, paused or deleted by other nodes.
    pub catalog_poll_interval: std::time::Duration,
    /// Create a schemaless JSON stream when a push names an unknown one.
    pub auto_create_streams: bool,
    /// Log tuning.
    pub log: LogSettings,
    /// Ingest limits.
    pub limits: IngestLimits,
    /// Streams declared in the config file; created or updated at start.
    pub streams: Vec<StreamDefinition>,
    /// This node's name among nodes sharing streams (a cluster): sinks
    /// prefix the ids of what they send with it (`NODE/STREAM/P/O`), so
    /// that brokers that drop duplicates by id never take one node's
    /// records for another's. `None` on a standalone node.
    pub node_id: Option<String>,
    /// Where `protobuf` streams find their `.proto` files; `None` for
    /// `<data_dir>/schemas`.
    pub schemas_dir: Option<PathBuf>,
}

impl CoreConfig {
    /// Defaults rooted at `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            catalog: None,
            catalog_poll_interval: std::time::Duration::from_secs(2),
            auto_create_streams: false,
            log: LogSettings::default(),
            limits: IngestLimits::default(),
            streams: Vec::new(),
            node_id: None,
            schemas_dir: None,
        }
    }

    /// The directory of `.proto` files.
    pub fn schemas_dir(&self) -> PathBuf {
        self.schemas_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("schemas"))
    }

    /// True when the catalog is a server other nodes may share (not the
    /// embedded SQLite file).
    pub fn shares_catalog(&self) -> bool {
        !self.catalog_url().starts_with("sqlite:")
    }

    /// The catalog URL to connect to.
    pub fn catalog_url(&self) -> String {
        self.catalog.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("catalog.db").display()
            )
        })
    }
}

/// Checks a node id: 1 to 64 of `A-Z a-z 0-9 . _ -`.
///
/// # Errors
/// A message saying what is accepted.
pub fn check_node_id(id: &str) -> Result<(), String> {
    let valid = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{id:?} is not a node id: use 1 to 64 of A-Z a-z 0-9 . _ -"
        ))
    }
}

/// The node id kept in `DATA_DIR/node_id`, made (16 random hex digits)
/// and written atomically the first time, so it survives restarts.
///
/// # Errors
/// The file cannot be read or written, or holds an invalid id.
pub fn stored_node_id(data_dir: &std::path::Path) -> std::io::Result<String> {
    let path = data_dir.join("node_id");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim().to_owned();
            check_node_id(&id).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?;
            Ok(id)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir)?;
            let id = format!("{:016x}", rand::random::<u64>());
            let tmp = data_dir.join("node_id.tmp");
            std::fs::write(&tmp, format!("{id}\n"))?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(data_dir)?.sync_all()?;
            Ok(id)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_node_id_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = stored_node_id(dir.path()).unwrap();
        assert_eq!(first.len(), 16);
        assert_eq!(stored_node_id(dir.path()).unwrap(), first);
        std::fs::write(dir.path().join("node_id"), "bad id!\n").unwrap();
        let e = stored_node_id(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not a node id"), "{e}");
        assert!(check_node_id("node-1.a_b").is_ok());
        assert!(check_node_id("").is_err() && check_node_id(&"x".repeat(65)).is_err());
    }

    #[test]
    fn default_log_settings_roundtrip_and_are_valid() {
        let s = LogSettings::default();
        let text = serde_json::to_string(&s).unwrap();
        assert!(
            text.contains("\"retention_check_interval\":\"30s\""),
            "{text}"
        );
        let back: LogSettings = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
        s.partition_config().validate().unwrap();
        s.log_config().validate().unwrap();
        let l: IngestLimits = serde_json::from_str("{}").unwrap();
        assert_eq!(l, IngestLimits::default());
    }
}
