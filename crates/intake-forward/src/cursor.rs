//! A sink's committed cursor for one partition, kept in a small text file
//! that is replaced atomically (write a temporary file, fsync it, rename it
//! over the old one, fsync the directory), so a crash leaves either the old
//! or the new cursor.
//!
//! The file's first line is the offset of the next record to forward. Each
//! further line is `BROKER_PARTITION POSITION`, the sink's fence (see
//! [`Fence`]). A file of one line (written before fences existed) loads
//! with no fence.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::ForwardError;

/// Per broker partition (a Kafka topic partition; 0 for the JetStream
/// stream), the position from which any record the sink sent and has not
/// committed is to be found: the broker stores one sink partition's
/// records in the order they were sent, so everything after the committed
/// cursor lies at or past the fence. A broker partition missing from the
/// fence is read from its start.
pub(crate) type Fence = BTreeMap<i32, u64>;

/// The line of a fence with no broker partition (a topic not made yet).
const EMPTY_FENCE: &str = "-";

/// What a cursor file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// The offset of the next record to forward.
    pub(crate) offset: u64,
    /// Where the records past `offset` may already be; `None` in a file
    /// written before fences existed.
    pub(crate) fence: Option<Fence>,
}

/// The cursor file of one sink and partition.
#[derive(Debug)]
pub(crate) struct CursorFile {
    path: PathBuf,
}

impl CursorFile {
    /// The cursor of `partition` under `dir` (created when missing).
    pub(crate) fn new(dir: &Path, partition: u32) -> Result<Self, ForwardError> {
        fs::create_dir_all(dir).map_err(ForwardError::io("create", dir))?;
        Ok(Self {
            path: dir.join(format!("{partition}.cursor")),
        })
    }

    /// The file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The committed cursor, or `None` before the first commit.
    pub(crate) fn load(&self) -> Result<Option<Cursor>, ForwardError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ForwardError::io("read", &self.path)(e)),
        };
        let corrupt = |reason: String| ForwardError::CorruptCursor {
            path: self.path.display().to_string(),
            reason,
        };
        let mut lines = text.lines();
        let first = lines.next().unwrap_or_default().trim();
        let offset = first
            .parse::<u64>()
            .map_err(|e| corrupt(format!("{first:?} is not an offset: {e}")))?;
        let mut fence = None;
        for line in lines.map(str::trim).filter(|l| !l.is_empty()) {
            let fence = fence.get_or_insert_with(Fence::new);
            if line == EMPTY_FENCE {
                continue;
            }
            let parsed = line
                .split_once(' ')
                .and_then(|(p, at)| Some((p.parse::<i32>().ok()?, at.parse::<u64>().ok()?)));
            let Some((partition, position)) = parsed else {
                return Err(corrupt(format!(
                    "{line:?} is not a broker partition and position"
                )));
            };
            fence.insert(partition, position);
        }
        Ok(Some(Cursor { offset, fence }))
    }

    /// Replaces the committed cursor with `cursor`, durably.
    pub(crate) fn store(&self, cursor: &Cursor) -> Result<(), ForwardError> {
        let mut text = format!("{}\n", cursor.offset);
        if let Some(fence) = &cursor.fence {
            if fence.is_empty() {
                text.push_str(EMPTY_FENCE);
                text.push('\n');
            }
            for (partition, position) in fence {
                let _ = writeln!(text, "{partition} {position}");
            }
        }
        let tmp = self.path.with_extension("cursor.tmp");
        let mut file = File::create(&tmp).map_err(ForwardError::io("create", &tmp))?;
        file.write_all(text.as_bytes())
            .map_err(ForwardError::io("write", &tmp))?;
        file.sync_data().map_err(ForwardError::io("fsync", &tmp))?;
        drop(file);
        fs::rename(&tmp, &self.path).map_err(ForwardError::io("rename", &tmp))?;
        if let Some(dir) = self.path.parent() {
            // The parent of a one-part relative path is empty: the current directory.
            let dir = if dir.as_os_str().is_empty() {
                std::path::Path::new(".")
            } else {
                dir
            };
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(ForwardError::io("fsync", dir))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_and_loads_and_names_a_corrupt_file() {
        let dir = tempfile::tempdir().unwrap();
        let cursor = CursorFile::new(&dir.path().join("k1"), 3).unwrap();
        assert_eq!(cursor.load().unwrap(), None);
        let plain = Cursor {
            offset: 42,
            fence: None,
        };
        cursor.store(&plain).unwrap();
        assert_eq!(cursor.load().unwrap(), Some(plain));
        let fenced = Cursor {
            offset: 7,
            fence: Some(Fence::from([(0, 10), (3, u64::MAX)])),
        };
        cursor.store(&fenced).unwrap();
        assert_eq!(cursor.load().unwrap(), Some(fenced));
        let empty = Cursor {
            offset: 8,
            fence: Some(Fence::new()),
        };
        cursor.store(&empty).unwrap();
        assert_eq!(cursor.load().unwrap(), Some(empty));
        std::fs::write(dir.path().join("k1/3.cursor"), "x\n").unwrap();
        let err = cursor.load().unwrap_err().to_string();
        assert!(
            err.contains("3.cursor") && err.contains("not an offset"),
            "{err}"
        );
        std::fs::write(dir.path().join("k1/3.cursor"), "5\n0 x\n").unwrap();
        let err = cursor.load().unwrap_err().to_string();
        assert!(err.contains("not a broker partition"), "{err}");
    }
}
