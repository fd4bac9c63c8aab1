//! intake's partitioned segment log.
//!
//! A [`Partition`] is a directory of segment files holding batches of
//! records with opaque keys, values and headers. One writer thread per
//! partition coalesces concurrent appends into one write and one fdatasync
//! (group commit); an append is answered only once its batch is persisted per
//! the partition's [`FsyncPolicy`]. Readers fetch by offset and never see
//! records that are not yet persisted; [`Partition::subscribe`] tells live
//! readers when more arrive.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), intake_log::Error> {
//! use std::sync::Arc;
//! use intake_log::{EncodedBatch, NewRecord, Partition, PartitionConfig, StdFilesystem};
//!
//! let dir = tempfile::tempdir().expect("tempdir");
//! let partition = Partition::open(Arc::new(StdFilesystem), dir.path().join("0"), PartitionConfig::default())?;
//! let batch = EncodedBatch::encode(&[NewRecord::new(1_700_000_000_000, "hello"), NewRecord::new(1_700_000_000_001, "world")])?;
//! let appended = partition.append(batch).await?; // durable once this returns
//! assert_eq!((appended.first_offset, appended.last_offset), (0, 1));
//! let read = partition.read(1, 10, 1 << 20)?;
//! assert_eq!(read.records[0].value, "world");
//! assert_eq!(read.next_offset, 2);
//! # Ok(()) }
//! ```
//!
//! # On-disk format
//!
//! ```text
//! <dir>/<base_offset:020>.log     segment: header, then batches back to back
//! <dir>/<base_offset:020>.index   sparse index of a sealed segment
//!
//! segment header (16 bytes)
//!   0   4  magic "INTK"
//!   4   1  version = 1
//!   5   3  reserved, zero
//!   8   8  base offset, u64 LE (equals the file name)
//!
//! batch (all integers little-endian)
//!   0   8  base_offset  u64  offset of the first record (NOT under the CRC:
//!                            the writer assigns it; recovery checks that it
//!                            continues the previous batch exactly)
//!   8   4  length       u32  bytes after this field
//!  12   4  crc32c       u32  CRC-32C (Castagnoli) of bytes 16..end
//!  16   1  magic        u8   batch format version = 1
//!  17   4  count        u32  records in the batch, >= 1
//!  21   8  first_ts     i64  timestamp of the first record, ms since epoch
//!  29   8  max_ts       i64  largest timestamp in the batch
//!  37   2  flags        u16  0 (reserved for compression)
//!  39   ..  records, each:
//!        varint  length of the rest of the record
//!        varint  offset delta (0, 1, 2, ... in order)
//!        varint  timestamp delta from first_ts, zigzag
//!        varint  key length + 1, 0 for no key; then the key
//!        varint  value length; then the value
//!        varint  header count; then per header:
//!                varint name length, UTF-8 name, varint value length, value
//!
//! index file
//!   0   8  magic "INTKIDX\x01"
//!   8  8n  n entries: relative offset u32 LE, byte position u32 LE
//!  end  4  CRC-32C of everything before it
//! ```
//!
//! # Invariants
//!
//! - Offsets are dense: each batch starts where the previous one ended,
//!   across segment boundaries too.
//! - Only the last (active) segment is ever written. A segment is sealed by
//!   fdatasync, then its index is written atomically (temporary file, fsync,
//!   rename, directory fsync), then the next segment is created with its
//!   header synced and the directory synced.
//! - Under [`FsyncPolicy::Always`] a batch is acknowledged and visible to
//!   readers only after the fdatasync that covers it.
//! - Recovery ([`RecoveryMode::TolerateCorruptTail`]) verifies every batch of
//!   the active segment and cuts it at the first torn or corrupt one (it was
//!   never acknowledged). Damage in a sealed segment, a gap between segments,
//!   or a bad header is an [`Error::Corrupt`] naming the file and position.
//! - After a failed write or fsync the partition is poisoned and refuses
//!   appends until restart; a write refused for lack of space is rolled
//!   back and may be retried.

mod batch;
mod coding;
mod config;
mod error;
mod fs;
mod index;
mod metrics;
mod partition;
mod record;
mod segment;
mod writer;

pub use batch::{BATCH_HEADER_LEN, EncodedBatch};
pub use config::{FsyncPolicy, PartitionConfig, PersistMode, RecoveryMode, Retention};
pub use error::{Error, Result};
pub use fs::{FileHandle, Filesystem, MemoryFilesystem, StdFilesystem};
pub use metrics::LogMetrics;
pub use partition::{Appended, Partition, ReadBatch, RetentionReport, SEGMENT_HEADER_BYTES};
pub use record::{Header, NewRecord, Record};
