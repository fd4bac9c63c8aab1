//! A sink's committed cursor for one partition: the offset of the next
//! record to forward, kept in a small text file that is replaced atomically
//! (write a temporary file, fsync it, rename it over the old one, fsync the
//! directory), so a crash leaves either the old or the new cursor.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::ForwardError;

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

    /// The committed offset, or `None` before the first commit.
    pub(crate) fn load(&self) -> Result<Option<u64>, ForwardError> {
        match fs::read_to_string(&self.path) {
            Ok(text) => {
                text.trim()
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|e| ForwardError::CorruptCursor {
                        path: self.path.display().to_string(),
                        reason: format!("{:?} is not an offset: {e}", text.trim()),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ForwardError::io("read", &self.path)(e)),
        }
    }

    /// Replaces the committed offset with `offset`, durably.
    pub(crate) fn store(&self, offset: u64) -> Result<(), ForwardError> {
        let tmp = self.path.with_extension("cursor.tmp");
        let mut file = File::create(&tmp).map_err(ForwardError::io("create", &tmp))?;
        writeln!(file, "{offset}").map_err(ForwardError::io("write", &tmp))?;
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
        cursor.store(42).unwrap();
        assert_eq!(cursor.load().unwrap(), Some(42));
        cursor.store(7).unwrap();
        assert_eq!(cursor.load().unwrap(), Some(7));
        std::fs::write(dir.path().join("k1/3.cursor"), "x\n").unwrap();
        let err = cursor.load().unwrap_err().to_string();
        assert!(
            err.contains("3.cursor") && err.contains("not an offset"),
            "{err}"
        );
    }
}
