//! Segment files: creation, the header, walking batches, and the checks run
//! when a partition is opened.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;

use crate::batch::{BATCH_HEADER_LEN, BatchHeader};
use crate::coding::Reader;
use crate::config::{PartitionConfig, RecoveryMode};
use crate::error::{Error, Result};
use crate::fs::{FileHandle, Filesystem, read_whole, write_atomic};
use crate::index::Index;

/// Magic bytes at the start of every segment file.
const SEGMENT_MAGIC: &[u8; 4] = b"INTK";
/// Version of the segment format.
const SEGMENT_VERSION: u8 = 1;
/// Size of the segment file header.
pub(crate) const SEGMENT_HEADER_LEN: u64 = 16;
/// How much a batch walk reads at once.
const SCAN_CHUNK: usize = 1 << 20;

pub(crate) fn segment_path(dir: &Path, base_offset: u64) -> PathBuf {
    dir.join(format!("{base_offset:020}.log"))
}

pub(crate) fn index_path(dir: &Path, base_offset: u64) -> PathBuf {
    dir.join(format!("{base_offset:020}.index"))
}

/// The base offset encoded in a segment or index file name, and whether it
/// is a segment (`.log`).
pub(crate) fn parse_file_name(path: &Path) -> Option<(u64, bool)> {
    let name = path.file_name()?.to_str()?;
    let (stem, ext) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let base = stem.parse().ok()?;
    match ext {
        "log" => Some((base, true)),
        "index" => Some((base, false)),
        _ => None,
    }
}

fn header_bytes(base_offset: u64) -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    let (magic, rest) = h.split_at_mut(4);
    magic.copy_from_slice(SEGMENT_MAGIC);
    let (version, rest) = rest.split_at_mut(1);
    version.copy_from_slice(&[SEGMENT_VERSION]);
    let (_reserved, base) = rest.split_at_mut(3);
    base.copy_from_slice(&base_offset.to_le_bytes());
    h
}

fn check_header(file: &dyn FileHandle, path: &Path, base_offset: u64) -> Result<()> {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    file.read_exact_at(&mut h, 0)
        .map_err(Error::io("read header of", path))?;
    let mut r = Reader::new(&h);
    let corrupt = |position: u64, reason: String| Error::Corrupt {
        path: path.to_path_buf(),
        position,
        reason,
    };
    let magic = r.bytes(4).unwrap_or_default();
    if magic != SEGMENT_MAGIC {
        return Err(corrupt(
            0,
            format!("segment magic is {magic:02x?}, expected \"INTK\""),
        ));
    }
    let version = r.u8().unwrap_or_default();
    if version != SEGMENT_VERSION {
        return Err(corrupt(4, format!("unsupported segment version {version}")));
    }
    r.bytes(3).ok();
    let base = r.u64().unwrap_or_default();
    if base != base_offset {
        return Err(corrupt(
            8,
            format!("header says base offset {base}, file name says {base_offset}"),
        ));
    }
    Ok(())
}

/// Where the readable part of a segment ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentEnd {
    /// Byte position just past the last visible batch.
    pub(crate) position: u64,
    /// Offset the next record after the segment's last one gets.
    pub(crate) next_offset: u64,
}

/// One segment file and what is known about it.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base_offset: u64,
    pub(crate) path: PathBuf,
    pub(crate) file: Arc<dyn FileHandle>,
    pub(crate) index: RwLock<Index>,
    end: RwLock<SegmentEnd>,
}

impl Segment {
    pub(crate) fn end(&self) -> SegmentEnd {
        *self.end.read()
    }

    pub(crate) fn set_end(&self, end: SegmentEnd) {
        *self.end.write() = end;
    }

    /// Creates a new, empty segment with its header. With `durable`, the
    /// header and the directory are synced, so the segment exists after a
    /// crash; without, the caller makes sure of that before it matters (a
    /// new partition's first segment: the journal holds its data until a
    /// checkpoint syncs it, directories included).
    pub(crate) fn create(
        fs: &dyn Filesystem,
        dir: &Path,
        base_offset: u64,
        config: &PartitionConfig,
        durable: bool,
    ) -> Result<Self> {
        let path = segment_path(dir, base_offset);
        let file = fs.create_new(&path).map_err(Error::io("create", &path))?;
        let made = file
            .write_all_at(&header_bytes(base_offset), 0)
            .map_err(Error::io("write header of", &path))
            .and_then(|()| {
                if durable {
                    file.sync_data().map_err(Error::io("fsync", &path))?;
                    fs.sync_dir(dir)
                        .map_err(Error::io("fsync directory", dir))?;
                }
                Ok(())
            });
        if let Err(e) = made {
            // Not left half made (a full disk): the next try starts afresh.
            let _ = fs.remove_file(&path);
            return Err(e);
        }
        Ok(Self::with_end(
            base_offset,
            path,
            file,
            Index::new(base_offset, config.index_interval_bytes),
            SegmentEnd {
                position: SEGMENT_HEADER_LEN,
                next_offset: base_offset,
            },
        ))
    }

    fn with_end(
        base_offset: u64,
        path: PathBuf,
        file: Arc<dyn FileHandle>,
        index: Index,
        end: SegmentEnd,
    ) -> Self {
        Self {
            base_offset,
            path,
            file,
            index: RwLock::new(index),
            end: RwLock::new(end),
        }
    }

    /// Opens a sealed segment. Its index file is trusted if it checks out
    /// (else rebuilt by a full scan); the batches after the last index entry
    /// are verified and must end exactly at the end of the file. With
    /// `verify_on_open` every batch is verified.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the file and position of any damage.
    pub(crate) fn open_sealed(
        fs: &dyn Filesystem,
        dir: &Path,
        base_offset: u64,
        config: &PartitionConfig,
    ) -> Result<Self> {
        let path = segment_path(dir, base_offset);
        let file = fs.open(&path).map_err(Error::io("open", &path))?;
        let len = file.len().map_err(Error::io("stat", &path))?;
        check_header(&*file, &path, base_offset)?;
        let ipath = index_path(dir, base_offset);
        let loaded = match read_whole(fs, &ipath) {
            Ok(bytes) => match Index::decode(&bytes, base_offset, config.index_interval_bytes, len)
            {
                Ok(index) => Some(index),
                Err(e) => {
                    tracing::warn!(path = %ipath.display(), error = %e, "index file is damaged; rebuilding it from the segment");
                    None
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("read", &ipath)(e)),
        };
        let (index, start) = match loaded {
            Some(index) if !config.verify_on_open => {
                let start = index.last().unwrap_or((base_offset, SEGMENT_HEADER_LEN));
                (Some(index), start)
            }
            _ => (None, (base_offset, SEGMENT_HEADER_LEN)),
        };
        let rebuild = index.is_none();
        let mut index =
            index.unwrap_or_else(|| Index::new(base_offset, config.index_interval_bytes));
        let mut scan_index = Index::new(base_offset, config.index_interval_bytes);
        let outcome = walk(
            &*file,
            start.1,
            len,
            start.0,
            config.max_batch_bytes,
            &mut scan_index,
        )
        .map_err(Error::io("read", &path))?;
        if let Some((position, reason)) = outcome.damage {
            return Err(Error::Corrupt {
                path,
                position,
                reason,
            });
        }
        if rebuild {
            index = scan_index;
            write_atomic(fs, &ipath, &index.encode()).map_err(Error::io("write", &ipath))?;
        }
        Ok(Self::with_end(base_offset, path, file, index, outcome.end))
    }

    /// Opens the active (last) segment: every batch is verified, and a torn
    /// or corrupt tail is cut off (or refused, per the recovery mode).
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a bad header, or for a damaged tail under
    /// [`RecoveryMode::AbsoluteConsistency`].
    pub(crate) fn open_active(
        fs: &dyn Filesystem,
        dir: &Path,
        base_offset: u64,
        config: &PartitionConfig,
    ) -> Result<Self> {
        let path = segment_path(dir, base_offset);
        let file = fs.open(&path).map_err(Error::io("open", &path))?;
        let len = file.len().map_err(Error::io("stat", &path))?;
        if len < SEGMENT_HEADER_LEN {
            // Created, but the crash came before its header was synced: it
            // never held a record.
            tracing::warn!(path = %path.display(), len, "re-initialising a segment whose header was never completed");
            file.set_len(0).map_err(Error::io("truncate", &path))?;
            file.write_all_at(&header_bytes(base_offset), 0)
                .map_err(Error::io("write header of", &path))?;
            file.sync_all().map_err(Error::io("fsync", &path))?;
        } else {
            check_header(&*file, &path, base_offset)?;
        }
        let len = len.max(SEGMENT_HEADER_LEN);
        let mut index = Index::new(base_offset, config.index_interval_bytes);
        let outcome = walk(
            &*file,
            SEGMENT_HEADER_LEN,
            len,
            base_offset,
            config.max_batch_bytes,
            &mut index,
        )
        .map_err(Error::io("read", &path))?;
        if let Some((position, reason)) = outcome.damage {
            if config.recovery == RecoveryMode::AbsoluteConsistency {
                return Err(Error::Corrupt {
                    path,
                    position,
                    reason,
                });
            }
            tracing::warn!(
                path = %path.display(), position, reason, discarded_bytes = len - position,
                "truncating the torn tail of the active segment (never acknowledged)"
            );
            file.set_len(position)
                .map_err(Error::io("truncate", &path))?;
            file.sync_all().map_err(Error::io("fsync", &path))?;
        }
        // A stale index of the active segment is of no use: it is rebuilt
        // in memory and written when the segment is sealed.
        let ipath = index_path(dir, base_offset);
        match fs.remove_file(&ipath) {
            Ok(()) => fs
                .sync_dir(dir)
                .map_err(Error::io("fsync directory", dir))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &ipath)(e)),
        }
        Ok(Self::with_end(base_offset, path, file, index, outcome.end))
    }
}

/// What a walk over a segment's batches found.
#[derive(Debug)]
pub(crate) struct WalkOutcome {
    /// End of the last valid batch.
    pub(crate) end: SegmentEnd,
    /// Position and description of the first invalid batch, if any.
    pub(crate) damage: Option<(u64, String)>,
}

/// Walks and verifies batches from `position` (where a batch starting at
/// `offset` must be) to `len`, noting each in `index`.
pub(crate) fn walk(
    file: &dyn FileHandle,
    position: u64,
    len: u64,
    offset: u64,
    max_batch_bytes: u32,
    index: &mut Index,
) -> std::io::Result<WalkOutcome> {
    let mut cursor = BatchCursor::new(file, position, len, max_batch_bytes, SCAN_CHUNK);
    let mut end = SegmentEnd {
        position,
        next_offset: offset,
    };
    loop {
        match cursor.next_batch()? {
            Step::End => return Ok(WalkOutcome { end, damage: None }),
            Step::Invalid { position, reason } => {
                return Ok(WalkOutcome {
                    end,
                    damage: Some((position, reason)),
                });
            }
            Step::Batch {
                position,
                header,
                bytes,
            } => {
                if header.base_offset != end.next_offset {
                    return Ok(WalkOutcome {
                        end,
                        damage: Some((
                            position,
                            format!(
                                "batch base offset {} where {} was expected",
                                header.base_offset, end.next_offset
                            ),
                        )),
                    });
                }
                index.on_batch(header.base_offset, position, bytes.len());
                end = SegmentEnd {
                    position: position + bytes.len() as u64,
                    next_offset: header.next_offset(),
                };
            }
        }
    }
}

/// One step of a [`BatchCursor`].
#[derive(Debug)]
pub(crate) enum Step {
    /// A whole batch whose CRC checked out.
    Batch {
        position: u64,
        header: BatchHeader,
        bytes: Bytes,
    },
    /// The end was reached cleanly.
    End,
    /// The bytes at `position` are not a valid batch.
    Invalid { position: u64, reason: String },
}

/// Reads consecutive batches from a segment, a chunk at a time.
pub(crate) struct BatchCursor<'a> {
    file: &'a dyn FileHandle,
    position: u64,
    end: u64,
    max_batch_bytes: u32,
    chunk_size: usize,
    chunk: Bytes,
    chunk_start: u64,
}

impl<'a> BatchCursor<'a> {
    pub(crate) fn new(
        file: &'a dyn FileHandle,
        position: u64,
        end: u64,
        max_batch_bytes: u32,
        chunk_size: usize,
    ) -> Self {
        Self {
            file,
            position,
            end,
            max_batch_bytes,
            chunk_size,
            chunk: Bytes::new(),
            chunk_start: position,
        }
    }

    /// The bytes `[position, position + len)`, from the chunk or a new read.
    fn bytes(&mut self, len: usize) -> std::io::Result<Bytes> {
        let rel = (self.position - self.chunk_start) as usize;
        if self.position >= self.chunk_start && rel + len <= self.chunk.len() {
            return Ok(self.chunk.slice(rel..rel + len));
        }
        let available = (self.end - self.position) as usize;
        let size = len.max(self.chunk_size.min(available));
        let mut buf = vec![0u8; size];
        self.file.read_exact_at(&mut buf, self.position)?;
        self.chunk = Bytes::from(buf);
        self.chunk_start = self.position;
        Ok(self.chunk.slice(0..len))
    }

    pub(crate) fn next_batch(&mut self) -> std::io::Result<Step> {
        let position = self.position;
        let left = self.end.saturating_sub(position);
        if left == 0 {
            return Ok(Step::End);
        }
        let invalid = |reason: String| Ok(Step::Invalid { position, reason });
        if left < BATCH_HEADER_LEN as u64 {
            return invalid(format!("{left} bytes left, too few for a batch header"));
        }
        let head = self.bytes(BATCH_HEADER_LEN)?;
        let header = match BatchHeader::parse(&head, self.max_batch_bytes) {
            Ok(h) => h,
            Err(e) => return invalid(format!("bad batch header: {e}")),
        };
        let total = header.total_len();
        if total as u64 > left {
            return invalid(format!("batch of {total} bytes but only {left} bytes left"));
        }
        let bytes = self.bytes(total)?;
        if let Err(e) = header.verify_crc(&bytes) {
            return invalid(format!("batch checksum mismatch ({e})"));
        }
        self.position += total as u64;
        Ok(Step::Batch {
            position,
            header,
            bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_parse() {
        assert_eq!(
            parse_file_name(Path::new("/x/00000000000000000042.log")),
            Some((42, true))
        );
        assert_eq!(
            parse_file_name(Path::new("00000000000000000042.index")),
            Some((42, false))
        );
        assert_eq!(parse_file_name(Path::new("42.log")), None);
        assert_eq!(parse_file_name(Path::new("0000000000000000004x.log")), None);
        assert_eq!(
            parse_file_name(Path::new("00000000000000000042.log.tmp")),
            None
        );
        assert_eq!(
            segment_path(Path::new("/d"), 7),
            Path::new("/d/00000000000000000007.log")
        );
    }
}
