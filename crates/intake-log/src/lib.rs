//! intake's partitioned segment log.
//!
//! A [`Partition`] is a directory of segment files holding batches of
//! records with opaque keys, values and headers. Partitions are opened on a
//! [`Log`], which owns one write-ahead journal and one commit thread for all
//! of them: the thread coalesces concurrent appends, of every partition,
//! into one journal write and one fdatasync (group commit across
//! partitions), so a node with thousands of streams pays one fsync for a
//! group of appends whatever streams they go to. An append is answered only
//! once its batch is persisted per the partition's [`FsyncPolicy`]. Readers
//! fetch by offset from the segment files and never see records that are
//! not yet persisted; [`Partition::subscribe`] tells live readers when more
//! arrive.
//!
//! # Why one journal
//!
//! Measured on a 2-core machine with durable single-record pushes: with a
//! writer thread and an fsync per partition, the same load spread at random
//! over 500 one-partition streams ran at 0.31–0.34 of one stream's rate
//! (each fsync carried a few records, not hundreds), and the thread and
//! 1 MiB queue per partition cost 4,005 threads and ~5 GiB for 4,000
//! partitions. Issuing those fsyncs in parallel from a pool does not help:
//! the 500 threads already did. One commit point for the data directory,
//! as RocksDB's WAL, BookKeeper's journal and PostgreSQL's WAL have, makes
//! the fsyncs independent of the number of partitions, and a partition
//! costs its open files and a few structs. The figures of this layout are
//! in docs/benchmarks.md.
//!
//! The commit thread writes a group's batches to the journal, syncs it, and
//! only then publishes them: they wait in their partition's tail, where
//! readers find them, and go to the partition's active segment (page cache
//! only) in pieces of 64 KiB, or after 1 s, rather than one write per
//! partition per group (spread over 500 streams, those writes cost more
//! than the group's fsync). Segments are synced later, by a checkpoint:
//! when a journal file is full, the thread writes every tail, starts the
//! next file, and the checkpoint thread syncs every partition written
//! since the last checkpoint, then deletes the full files. Recovery opens every partition
//! (cutting torn segment tails as before), then replays the journal files
//! left into them: batches a segment lacks are written back, those it has
//! are skipped. A clean shutdown checkpoints, leaving nothing to replay.
//!
//! One exception: a group's appends to one partition under `fsync =
//! always` of `LogConfig::direct_write_bytes` (64 KiB) or more skip the
//! journal. The partition's tail is written, then they are, and the
//! segment (and, for a new partition, its directories) is synced before
//! they are answered; the journal never holds them, and replay finds them
//! in the segment already. Measured on one stream of 100-record arrays,
//! journaling them made the node write ~600 MB/s where it had written
//! ~440 MB/s, and it reached 0.7 of the build before the journal while
//! short of neither fsyncs nor CPU (1.1 of 2 cores); written directly it
//! is 0.93-0.97.
//!
//! What this layout costs: spread over many partitions, batches below
//! that size are written twice (journal, then segment). For 100-record
//! arrays over 500 streams the disk then carries twice the bytes of one
//! stream's direct writes, and on a shared disk the spread fell to
//! 0.69-0.84 of one stream after a first round at 0.96-0.99. Writing the
//! journal with O_DIRECT, syncing it on a second thread, and fsyncing the
//! segments of a group in parallel instead of journaling (each byte once)
//! were each measured and were no better (docs/benchmarks.md). Writing each
//! byte once with one fsync per group needs the journal to be the
//! partitions' storage (an interleaved entry log with an index per
//! partition, as BookKeeper's), a later change of layout.
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
//! <root>/journal/<sequence:020>.journal   the log's journal, in order
//! <dir>/<base_offset:020>.log     segment: header, then batches back to back
//! <dir>/<base_offset:020>.index   sparse index of a sealed segment
//!
//! journal file header (16 bytes)
//!   0   8  magic "INTKJRNL"
//!   8   1  version = 1
//!   9   3  reserved, zero
//!  12   4  low 32 bits of the sequence number, u32 LE (equals the name)
//!
//! journal entry (all integers little-endian)
//!   0   4  length       u32  bytes after the CRC
//!   4   4  crc32c       u32  CRC-32C of the `length` bytes that follow
//!   8   1  kind         u8   1 = append, 2 = forget
//!   9   2  path length  u16, then the partition's directory relative to
//!                            <root>, UTF-8
//!   ..     append: the partition's batches of the group, back to back,
//!          exactly as written to its segment (base offsets included);
//!          forget: nothing (the partition is gone; its earlier entries
//!          must never reach a partition opened later at that path)
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
//!  37   2  flags        u16  0x0002: a request tag follows (below);
//!                            other bits reserved (compression), refused
//!  39   ..  records, each:
//!        varint  length of the rest of the record
//!        varint  offset delta (0, 1, 2, ... in order)
//!        varint  timestamp delta from first_ts, zigzag
//!        varint  key length + 1, 0 for no key; then the key
//!        varint  value length; then the value
//!        varint  header count; then per header:
//!                varint name length, UTF-8 name, varint value length, value
//!
//! request tag: a batch whose flags have bit 1 (0x0002) set carries
//! opaque bytes about the request that wrote it between the header and the
//! records, under the same CRC, so they are durable in the same journal
//! entry (or direct write) and fsync as the records
//! ([`EncodedBatch::encode_tagged`], found again by
//! [`Partition::request_tags`]):
//!        varint  tag length (at most 16 MiB); then the tag
//! intake-core keeps a push's idempotency key or producer sequence there,
//! with the request's fingerprint and partitions (its layout is in
//! intake-core's `dedup` module); readers of records skip it. A batch with
//! any other flag bit set is refused as damaged.
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
//! - A batch is published (visible, answered) only after the journal entry
//!   that holds it is persisted per the policies of its group: under
//!   [`FsyncPolicy::Always`] after the journal's fdatasync. It is written
//!   to its segment afterwards, in offset order, and always before the
//!   journal file holding it is closed, before its segment is sealed, and
//!   before its partition is closed.
//! - A journal file is synced before the next one is started, so only the
//!   last file can end torn; damage in an earlier one is an
//!   [`Error::Corrupt`]. Recovery skips the batches a segment holds and
//!   writes the ones it lacks; an entry that would leave a gap in its
//!   partition's offsets is an [`Error::Corrupt`].
//! - A journal file is deleted only after every partition written while it
//!   was current has synced its segments (or was closed, which syncs).
//! - Only the last (active) segment is ever written. A segment is sealed by
//!   fdatasync, then its index is written atomically (temporary file, fsync,
//!   rename, directory fsync), then the next segment is created with its
//!   header synced and the directory synced.
//! - Recovery ([`RecoveryMode::TolerateCorruptTail`]) verifies every batch of
//!   the active segment and cuts it at the first torn or corrupt one (it was
//!   never acknowledged). Damage in a sealed segment, a gap between segments,
//!   or a bad header is an [`Error::Corrupt`] naming the file and position.
//! - After a failed segment write the partition, after a failed journal
//!   write or fsync the whole log, is poisoned and refuses appends until
//!   restart; a write refused for lack of space is rolled back and may be
//!   retried.

mod batch;
mod coding;
mod config;
mod error;
mod fs;
mod index;
mod journal;
mod log;
mod metrics;
mod partition;
mod record;
mod segment;

pub use batch::{BATCH_HEADER_LEN, EncodedBatch, MAX_REQUEST_TAG_BYTES};
pub use config::{FsyncPolicy, LogConfig, PartitionConfig, PersistMode, RecoveryMode, Retention};
pub use error::{Error, Result};
pub use fs::{FileHandle, Filesystem, MemoryFilesystem, StdFilesystem};
pub use log::{Log, ReplayReport};
pub use metrics::LogMetrics;
pub use partition::{
    Appended, Partition, ReadBatch, RetentionReport, SEGMENT_HEADER_BYTES, TaggedBatch,
};
pub use record::{Header, NewRecord, Record};
