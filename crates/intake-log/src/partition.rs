//! A partition: a directory of segments, written by its log's commit
//! thread, read by many.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{oneshot, watch};

use crate::batch::{BatchHeader, EncodedBatch, decode_records, request_tag};
use crate::config::{LogConfig, PartitionConfig, PersistMode, Retention};
use crate::error::{Error, Result};
use crate::fs::{Filesystem, write_atomic};
use crate::log::{Command, Log, LogInner};
use crate::metrics::LogMetrics;
use crate::record::Record;
use crate::segment::{
    BatchCursor, SEGMENT_HEADER_LEN, Segment, SegmentEnd, Step, index_path, parse_file_name,
};

/// How much a read fetches from a segment at once.
const READ_CHUNK: usize = 256 * 1024;

/// Offsets given to an appended batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Offset of the batch's first record.
    pub first_offset: u64,
    /// Offset of the batch's last record.
    pub last_offset: u64,
}

/// Records read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBatch {
    /// Records in offset order.
    pub records: Vec<Record>,
    /// Where the next read should start.
    pub next_offset: u64,
}

/// A stored batch that carries a request tag
/// ([`EncodedBatch::encode_tagged`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedBatch {
    /// Offset of the batch's first record.
    pub base_offset: u64,
    /// Records in the batch.
    pub count: u32,
    /// The newest timestamp of its records.
    pub max_timestamp: i64,
    /// The tag, as it was given.
    pub tag: Bytes,
}

/// What a retention pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Whole segments deleted.
    pub segments: usize,
    /// Their total size.
    pub bytes: u64,
    /// The partition's oldest offset afterwards.
    pub start_offset: u64,
}

/// Batches published but not yet written to the active segment. The commit
/// thread writes a partition's batches in bigger pieces than one group's
/// ([`Shared::flush_tail`]): with thousands of partitions a group holds a
/// batch or two of each, and a write per partition per group cost more
/// than the group's fsync. Readers read them from here meanwhile; the
/// journal holds them durably.
#[derive(Debug, Default)]
pub(crate) struct Tail {
    /// (base offset, next offset, the batch with its base offset set), in
    /// offset order, following the active segment's written end.
    batches: Vec<(u64, u64, Bytes)>,
    /// Their bytes.
    len: usize,
}

/// State shared by the handle, the log's commit thread and readers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    /// `dir` relative to the log's root: how the journal names it.
    pub(crate) journal_path: String,
    pub(crate) fs: Arc<dyn Filesystem>,
    pub(crate) config: PartitionConfig,
    /// Segments by base offset; the last is the active one.
    pub(crate) segments: RwLock<BTreeMap<u64, Arc<Segment>>>,
    /// Offset the next record will get, once visible to readers.
    pub(crate) high_watermark: watch::Sender<u64>,
    /// Set after a failed write or fsync; writes are refused from then on.
    pub(crate) poisoned: Mutex<Option<String>>,
    pub(crate) pending_bytes: AtomicU64,
    pub(crate) closed: AtomicBool,
    /// Set by the commit thread once it closed the partition: appends that
    /// raced the close and arrive later are refused.
    pub(crate) detached: AtomicBool,
    /// Where the next batch goes in the active segment, counting the tail
    /// and a group waiting for its journal fsync. Only the commit thread
    /// (and recovery, before it runs) uses it.
    pub(crate) write_end: Mutex<SegmentEnd>,
    /// Published batches the active segment does not hold yet.
    pub(crate) tail: RwLock<Tail>,
    /// Written since the last checkpoint synced the segments: the journal
    /// still holds the only durable copy of some of it.
    pub(crate) unsynced: AtomicBool,
    /// The partition's first segment, and maybe its directory, were made
    /// without syncing them or their directories: until a checkpoint or a
    /// close does, a crash may lose them, and recovery makes them again
    /// from the journal.
    pub(crate) new_files: AtomicBool,
    /// Held through [`Shared::sync_to_disk`]: a second caller (the
    /// checkpoint thread beside the commit thread) waits for the fsync the
    /// first one started rather than take the partition for synced before
    /// it is.
    sync_lock: Mutex<()>,
    /// Where the partition reports its figures, once someone asks.
    pub(crate) metrics: OnceLock<LogMetrics>,
}

impl Shared {
    pub(crate) fn poison(&self, cause: String) {
        tracing::error!(dir = %self.dir.display(), cause, "partition poisoned: writes refused until restart");
        let mut p = self.poisoned.lock();
        if p.is_none() {
            *p = Some(cause);
        }
    }

    pub(crate) fn poisoned_error(&self) -> Option<Error> {
        self.poisoned.lock().as_ref().map(|cause| Error::Poisoned {
            dir: self.dir.clone(),
            cause: cause.clone(),
        })
    }

    /// The segment appends go to.
    pub(crate) fn active(&self) -> Arc<Segment> {
        let segments = self.segments.read();
        let active = segments.values().next_back();
        // A partition always has a segment: open makes one if none is there.
        Arc::clone(active.unwrap_or_else(|| unreachable!("a partition without segments")))
    }

    /// Seals the active segment and starts a new one if it holds data and
    /// `incoming` more bytes would take it past `segment_bytes` (a group is
    /// never split). Called with everything written also visible.
    pub(crate) fn roll_if_full(&self, incoming: u64) -> Result<()> {
        let end = *self.write_end.lock();
        let has_data = end.position > SEGMENT_HEADER_LEN;
        if !has_data || end.position + incoming <= self.config.segment_bytes {
            return Ok(());
        }
        // The tail goes to the segment it belongs to before it is sealed.
        self.flush_tail(&mut Vec::new())?;
        let old = self.active();
        // Sealed segments never depend on the journal.
        old.file
            .sync_data()
            .map_err(Error::io("fsync", &old.path))?;
        let ipath = index_path(&self.dir, old.base_offset);
        let encoded = old.index.read().encode();
        write_atomic(&*self.fs, &ipath, &encoded).map_err(Error::io("write", &ipath))?;
        let segment = Arc::new(Segment::create(
            &*self.fs,
            &self.dir,
            end.next_offset,
            &self.config,
            true,
        )?);
        *self.write_end.lock() = segment.end();
        self.segments
            .write()
            .insert(segment.base_offset, Arc::clone(&segment));
        tracing::debug!(path = %segment.path.display(), "rolled to a new segment");
        Ok(())
    }

    /// Syncs the active segment and, for a new partition, the directories
    /// that name it up to `root` (each once, across calls sharing
    /// `synced_dirs`): afterwards nothing of the partition written so far
    /// depends on the journal (the tail is not written: flush it first).
    /// On failure the partition is poisoned and still unsynced.
    pub(crate) fn sync_to_disk(
        &self,
        root: &Path,
        synced_dirs: &mut std::collections::HashSet<PathBuf>,
    ) -> Result<()> {
        let _one = self.sync_lock.lock();
        let unsynced = self.unsynced.swap(false, Ordering::AcqRel);
        let new_files = self.new_files.swap(false, Ordering::AcqRel);
        let result: Result<()> = (|| {
            if unsynced || new_files {
                let active = self.active();
                active
                    .file
                    .sync_data()
                    .map_err(Error::io("fsync", &active.path))?;
            }
            if new_files {
                for dir in self.dir.ancestors().take_while(|d| d.starts_with(root)) {
                    if synced_dirs.insert(dir.to_path_buf()) {
                        self.fs
                            .sync_dir(dir)
                            .map_err(Error::io("fsync directory", dir))?;
                    }
                }
            }
            Ok(())
        })();
        if let Err(e) = &result {
            self.unsynced.fetch_or(unsynced, Ordering::AcqRel);
            self.new_files.fetch_or(new_files, Ordering::AcqRel);
            self.poison(e.to_string());
        }
        result
    }

    /// Makes what was written up to `end` of `active` visible: its index,
    /// its end, and the high watermark live readers watch (recovery, which
    /// writes batches straight to the segment).
    pub(crate) fn publish_written(
        &self,
        active: &Segment,
        batches: &[(u64, u64, usize)],
        end: SegmentEnd,
    ) {
        {
            let mut index = active.index.write();
            for &(offset, position, len) in batches {
                index.on_batch(offset, position, len);
            }
        }
        active.set_end(end);
        *self.write_end.lock() = end;
        self.high_watermark.send_replace(end.next_offset);
    }

    /// Makes `batches` (base offset, next offset, bytes), durable in the
    /// journal, visible from the tail; `end` is where they end in the
    /// active segment once written. The tail's size afterwards.
    pub(crate) fn publish_tail(&self, batches: Vec<(u64, u64, Bytes)>, end: SegmentEnd) -> usize {
        let len = {
            let mut tail = self.tail.write();
            for batch in batches {
                tail.len += batch.2.len();
                tail.batches.push(batch);
            }
            tail.len
        };
        *self.write_end.lock() = end;
        self.high_watermark.send_replace(end.next_offset);
        len
    }

    /// Writes the tail to the active segment with one write (through
    /// `scratch`) and moves the segment's end past it. Commit thread only.
    /// A write refused for lack of space is undone and the tail kept, to be
    /// written later; another failure poisons the partition (the journal
    /// still holds the batches, and readers the tail).
    pub(crate) fn flush_tail(&self, scratch: &mut Vec<u8>) -> Result<()> {
        let batches = {
            let tail = self.tail.read();
            if tail.batches.is_empty() {
                return Ok(());
            }
            tail.batches.clone()
        };
        let active = self.active();
        let index = self.write_batches(&active, &batches, scratch)?;
        {
            let mut segment_index = active.index.write();
            for &(offset, position, len) in &index {
                segment_index.on_batch(offset, position, len);
            }
        }
        let start = active.end();
        let next_offset = batches.last().map_or(start.next_offset, |b| b.1);
        active.set_end(SegmentEnd {
            position: start.position + scratch.len() as u64,
            next_offset,
        });
        {
            let mut tail = self.tail.write();
            tail.batches.drain(..batches.len());
            tail.len = tail.batches.iter().map(|b| b.2.len()).sum();
        }
        self.unsynced.store(true, Ordering::Release);
        Ok(())
    }

    /// Writes `batches` (base offset, next offset, bytes), which follow the
    /// tail, straight to the active segment and syncs it (and, for a new
    /// partition, its directories up to `root`), then makes them visible
    /// up to `end`: they never go to the journal. The tail must be written
    /// first. Commit thread only; failures as [`Shared::flush_tail`]'s,
    /// and a failed sync poisons the partition.
    pub(crate) fn write_durably(
        &self,
        batches: &[(u64, u64, Bytes)],
        end: SegmentEnd,
        root: &Path,
        scratch: &mut Vec<u8>,
    ) -> Result<()> {
        let active = self.active();
        let index = self.write_batches(&active, batches, scratch)?;
        self.unsynced.store(true, Ordering::Release);
        self.sync_to_disk(root, &mut std::collections::HashSet::new())?;
        self.publish_written(&active, &index, end);
        Ok(())
    }

    /// Writes `batches` at the active segment's end with one write (through
    /// `scratch`); the (offset, position, length) of each for the index.
    /// A write refused for lack of space is undone; another failure
    /// poisons the partition.
    fn write_batches(
        &self,
        active: &Segment,
        batches: &[(u64, u64, Bytes)],
        scratch: &mut Vec<u8>,
    ) -> Result<Vec<(u64, u64, usize)>> {
        let start = active.end();
        scratch.clear();
        let mut index = Vec::with_capacity(batches.len());
        for (base, _, bytes) in batches {
            index.push((*base, start.position + scratch.len() as u64, bytes.len()));
            scratch.extend_from_slice(bytes);
        }
        if let Err(e) = active.file.write_all_at(scratch, start.position) {
            let undone = active.file.set_len(start.position);
            if e.kind() == std::io::ErrorKind::StorageFull && undone.is_ok() {
                return Err(Error::NoSpace {
                    path: active.path.clone(),
                });
            }
            self.poison(format!("write {}: {e}", active.path.display()));
            return Err(Error::io("write", &active.path)(e));
        }
        Ok(index)
    }

    /// Bytes in the tail.
    pub(crate) fn tail_len(&self) -> usize {
        self.tail.read().len
    }

    /// The offset of the tail's first record, if it holds any.
    pub(crate) fn tail_first_offset(&self) -> Option<u64> {
        self.tail.read().batches.first().map(|b| b.0)
    }

    /// Records of the tail from `cursor` on, within the limits; `false`
    /// when the tail no longer starts at or before `cursor` (it was just
    /// written to the segment: read there).
    fn read_tail(
        &self,
        cursor: &mut u64,
        high_watermark: u64,
        records: &mut Vec<Record>,
        bytes: &mut usize,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<bool> {
        let tail = self.tail.read();
        match tail.batches.first() {
            Some((base, _, _)) if *base <= *cursor => {}
            _ => return Ok(false),
        }
        for (base, next, batch) in &tail.batches {
            if *next <= *cursor {
                continue;
            }
            if *base >= high_watermark {
                break;
            }
            let corrupt = |reason: String| Error::Corrupt {
                path: self.dir.clone(),
                position: 0,
                reason: format!("unwritten batch at offset {base}: {reason}"),
            };
            let header = BatchHeader::parse(batch, self.config.max_batch_bytes)
                .map_err(|e| corrupt(e.to_string()))?;
            for record in decode_records(batch, &header).map_err(|e| corrupt(e.to_string()))? {
                if record.offset < *cursor {
                    continue;
                }
                if records.len() >= max_records || (*bytes >= max_bytes && !records.is_empty()) {
                    return Ok(true);
                }
                *bytes += record.payload_len();
                *cursor = record.offset + 1;
                records.push(record);
            }
        }
        Ok(true)
    }
}

/// A partition of the log.
///
/// Appends go to its [`Log`]'s commit thread, which coalesces whatever is
/// waiting, from every partition, into one journal write and one fdatasync
/// (group commit); reads go straight to the segment files and only see what
/// the commit thread has made visible (durable, under
/// [`crate::FsyncPolicy::Always`]).
#[derive(Debug)]
pub struct Partition {
    shared: Arc<Shared>,
    log: Arc<LogInner>,
}

impl Partition {
    /// Opens (or creates) the partition in `dir` on a log of its own, whose
    /// journal is `dir/journal`, recovering both first. A node with many
    /// partitions opens them on one [`Log`] instead, so that they share
    /// its journal and commit thread.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a bad config, [`Error::Io`] when the
    /// directory cannot be read, [`Error::Corrupt`] for damage outside the
    /// tail of the active segment or the journal (the message names file
    /// and position).
    pub fn open(
        fs: Arc<dyn Filesystem>,
        dir: impl Into<PathBuf>,
        config: PartitionConfig,
    ) -> Result<Self> {
        let dir = dir.into();
        let log = Log::open(fs, &dir, LogConfig::default())?;
        let partition = log.open_partition(&dir, config)?;
        log.replay()?;
        Ok(partition)
    }

    /// Opens the partition in `dir` on `log` (see [`Log::open_partition`]).
    pub(crate) fn open_in(
        log: &Arc<LogInner>,
        dir: PathBuf,
        config: PartitionConfig,
    ) -> Result<Self> {
        config.validate()?;
        let journal_path = log.journal_path_of(&dir)?;
        let fs = Arc::clone(&log.core.fs);
        let fresh = match fs.list_dir(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(Error::io("list", &dir)(e)),
            Ok(_) => false,
        };
        if fresh {
            // Not synced now: see `new_files` (thousands of streams are made
            // without an fsync each).
            fs.create_dir_all(&dir)
                .map_err(Error::io("create directory", &dir))?;
        }
        let mut bases = Vec::new();
        for path in fs.list_dir(&dir).map_err(Error::io("list", &dir))? {
            match parse_file_name(&path) {
                Some((base, true)) => bases.push(base),
                Some((_, false)) => {}
                None if path.extension().is_some_and(|e| e == "tmp") => {
                    // An atomic rewrite that never finished.
                    fs.remove_file(&path).map_err(Error::io("remove", &path))?;
                }
                None => {}
            }
        }
        bases.sort_unstable();
        // An index whose segment is gone (retention deletes the segment first).
        for path in fs.list_dir(&dir).map_err(Error::io("list", &dir))? {
            if let Some((base, false)) = parse_file_name(&path)
                && bases.binary_search(&base).is_err()
            {
                fs.remove_file(&path).map_err(Error::io("remove", &path))?;
            }
        }

        let mut segments = BTreeMap::new();
        let new_files = bases.is_empty();
        if new_files {
            let segment = Segment::create(&*fs, &dir, config.start_offset, &config, false)?;
            segments.insert(config.start_offset, Arc::new(segment));
        }
        let mut expected: Option<u64> = None;
        for (i, &base) in bases.iter().enumerate() {
            if let Some(expected) = expected
                && base != expected
            {
                return Err(Error::Corrupt {
                    path: crate::segment::segment_path(&dir, base),
                    position: 0,
                    reason: format!(
                        "segment starts at offset {base} but the one before it ends at offset {expected}"
                    ),
                });
            }
            let segment = if i + 1 == bases.len() {
                Segment::open_active(&*fs, &dir, base, &config)?
            } else {
                Segment::open_sealed(&*fs, &dir, base, &config)?
            };
            expected = Some(segment.end().next_offset);
            segments.insert(base, Arc::new(segment));
        }

        let active = segments
            .values()
            .next_back()
            .cloned()
            .ok_or_else(|| Error::io("open", &dir)(std::io::Error::other("no segment")))?;
        let end = active.end();
        let (high_watermark, _) = watch::channel(end.next_offset);
        let shared = Arc::new(Shared {
            dir,
            journal_path,
            fs,
            config,
            segments: RwLock::new(segments),
            high_watermark,
            poisoned: Mutex::new(None),
            pending_bytes: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            detached: AtomicBool::new(false),
            write_end: Mutex::new(end),
            tail: RwLock::new(Tail::default()),
            unsynced: AtomicBool::new(false),
            new_files: AtomicBool::new(new_files),
            sync_lock: Mutex::new(()),
            metrics: OnceLock::new(),
        });
        log.core.register(&shared)?;
        Ok(Self {
            shared,
            log: Arc::clone(log),
        })
    }

    /// The partition's directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Appends a batch and waits until it is persisted per the fsync policy.
    ///
    /// # Errors
    /// [`Error::Poisoned`] after an earlier I/O failure, [`Error::QueueFull`]
    /// when the writer is too far behind, [`Error::NoSpace`] when the disk is
    /// full, [`Error::BatchTooLarge`], [`Error::Closed`].
    pub async fn append(&self, batch: EncodedBatch) -> Result<Appended> {
        let started = Instant::now();
        let reply = self.enqueue(batch)?;
        let result = reply.await.map_err(|_| self.closed_or_poisoned())?;
        if let Some(metrics) = self.shared.metrics.get() {
            metrics
                .append_seconds
                .record(started.elapsed().as_secs_f64());
        }
        result
    }

    /// Hands the partition the handles to record its figures into (append
    /// and fsync latency, group-commit sizes). Only the first call takes
    /// effect; until then nothing is recorded.
    pub fn set_metrics(&self, metrics: LogMetrics) {
        if self.shared.metrics.set(metrics).is_err() {
            tracing::debug!(dir = %self.shared.dir.display(), "partition metrics were already set");
        }
    }

    /// Bytes of appends waiting for the writer (the queue the
    /// `max_pending_bytes` limit applies to).
    pub fn pending_bytes(&self) -> u64 {
        self.shared.pending_bytes.load(Ordering::Acquire)
    }

    /// Hands a batch to the commit thread; the receiver yields the outcome.
    fn enqueue(&self, batch: EncodedBatch) -> Result<oneshot::Receiver<Result<Appended>>> {
        if let Some(e) = self.poisoned_error() {
            return Err(e);
        }
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(Error::Closed {
                dir: self.shared.dir.clone(),
            });
        }
        let len = batch.len() as u64;
        let limit = u64::from(self.shared.config.max_batch_bytes);
        if len > limit {
            return Err(Error::BatchTooLarge { len, limit });
        }
        let pending = self.shared.pending_bytes.fetch_add(len, Ordering::AcqRel);
        let max_pending = self.shared.config.max_pending_bytes;
        if pending > 0 && pending + len > max_pending {
            self.shared.pending_bytes.fetch_sub(len, Ordering::AcqRel);
            return Err(Error::QueueFull {
                dir: self.shared.dir.clone(),
                pending_bytes: pending,
                limit: max_pending,
            });
        }
        let (reply, rx) = oneshot::channel();
        let append = Command::Append {
            partition: Arc::clone(&self.shared),
            batch,
            reply,
        };
        if self.log.send(append).is_err() {
            self.shared.pending_bytes.fetch_sub(len, Ordering::AcqRel);
            return Err(self.closed_or_poisoned());
        }
        Ok(rx)
    }

    /// Why writes are refused: this partition's poison, or its log's.
    fn poisoned_error(&self) -> Option<Error> {
        self.shared
            .poisoned_error()
            .or_else(|| self.log.core.poisoned_error(&self.shared.dir))
    }

    fn closed_or_poisoned(&self) -> Error {
        self.poisoned_error().unwrap_or_else(|| Error::Closed {
            dir: self.shared.dir.clone(),
        })
    }

    /// Pushes everything appended so far to `mode`: `SyncData` syncs the
    /// journal, `SyncAll` the partition's active segment too.
    ///
    /// # Errors
    /// [`Error::Poisoned`] if the fsync fails (or failed before).
    pub async fn persist(&self, mode: PersistMode) -> Result<()> {
        if mode == PersistMode::Buffer {
            return self.poisoned_error().map_or(Ok(()), Err);
        }
        let (reply, rx) = oneshot::channel();
        let segment = (mode == PersistMode::SyncAll).then(|| Arc::clone(&self.shared));
        self.log
            .send(Command::Sync { segment, reply })
            .map_err(|_| self.closed_or_poisoned())?;
        rx.await.map_err(|_| self.closed_or_poisoned())?
    }

    /// Stops accepting appends, writes what was queued, syncs the
    /// partition's segments (so its data no longer depends on the
    /// journal) and leaves the log. Reads keep working.
    ///
    /// # Errors
    /// [`Error::Poisoned`] if the final fsync fails.
    pub async fn close(&self) -> Result<()> {
        self.leave(false).await
    }

    /// [`Partition::close`], and tells the journal the partition is gone,
    /// so that a partition opened later at its path is never given its
    /// records: call it before deleting the directory.
    ///
    /// # Errors
    /// [`Error::Poisoned`] if a fsync fails.
    pub async fn forget(&self) -> Result<()> {
        self.leave(true).await
    }

    async fn leave(&self, forget: bool) -> Result<()> {
        self.shared.closed.store(true, Ordering::Release);
        let (reply, rx) = oneshot::channel();
        let close = Command::Close {
            partition: Arc::clone(&self.shared),
            forget,
            reply,
        };
        if self.log.send(close).is_err() {
            return Ok(()); // the log is gone
        }
        rx.await.unwrap_or(Ok(()))
    }

    /// Offset the next appended record will get (once visible).
    pub fn next_offset(&self) -> u64 {
        *self.shared.high_watermark.borrow()
    }

    /// The oldest offset still retained.
    pub fn start_offset(&self) -> u64 {
        self.shared
            .segments
            .read()
            .keys()
            .next()
            .copied()
            .unwrap_or(0)
    }

    /// Why writes are refused, if they are: the partition's own failure or
    /// its log's.
    pub fn poisoned(&self) -> Option<String> {
        self.shared
            .poisoned
            .lock()
            .clone()
            .or_else(|| self.log.core.poisoned_cause())
    }

    /// Watches the offset the next record will get: it changes whenever new
    /// records become visible. For live tails.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.high_watermark.subscribe()
    }

    /// Bytes in all segment files, counting the batches not written yet.
    pub fn size_bytes(&self) -> u64 {
        let written: u64 = self
            .shared
            .segments
            .read()
            .values()
            .map(|s| s.end().position)
            .sum();
        written + self.shared.tail_len() as u64
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.shared.segments.read().len()
    }

    /// Reads records from `offset` on: at most `max_records`, and stopping
    /// once `max_bytes` of payload are collected (at least one record is
    /// returned however large). Every batch's CRC is checked.
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] for an offset before the oldest retained
    /// or past the next one; [`Error::Corrupt`] naming file and position if
    /// stored bytes fail their checks.
    pub fn read(&self, offset: u64, max_records: usize, max_bytes: usize) -> Result<ReadBatch> {
        let high_watermark = self.next_offset();
        let out_of_range = || Error::OffsetOutOfRange {
            requested: offset,
            earliest: self.start_offset(),
            next: high_watermark,
        };
        if offset < self.start_offset() || offset > high_watermark {
            return Err(out_of_range());
        }
        let mut records = Vec::new();
        let mut bytes = 0usize;
        let mut cursor = offset;
        'segments: while cursor < high_watermark && records.len() < max_records {
            let segment = {
                let segments = self.shared.segments.read();
                segments
                    .range(..=cursor)
                    .next_back()
                    .map(|(_, s)| Arc::clone(s))
            };
            let Some(segment) = segment else {
                return Err(out_of_range());
            };
            let end = segment.end();
            if cursor >= end.next_offset {
                // Published but not written yet: in the tail (unless it
                // was written meanwhile, then the segment has it).
                if self.shared.read_tail(
                    &mut cursor,
                    high_watermark,
                    &mut records,
                    &mut bytes,
                    max_records,
                    max_bytes,
                )? {
                    break;
                }
                continue;
            }
            let position = segment.index.read().lookup(cursor);
            let mut batches = BatchCursor::new(
                &*segment.file,
                position,
                end.position,
                self.shared.config.max_batch_bytes,
                READ_CHUNK.min(max_bytes.saturating_add(4096)),
            );
            loop {
                let step = batches
                    .next_batch()
                    .map_err(Error::io("read", &segment.path))?;
                let (position, header, batch) = match step {
                    Step::End => break,
                    Step::Invalid { position, reason } => {
                        return Err(Error::Corrupt {
                            path: segment.path.clone(),
                            position,
                            reason,
                        });
                    }
                    Step::Batch {
                        position,
                        header,
                        bytes,
                    } => (position, header, bytes),
                };
                if header.next_offset() <= cursor {
                    continue;
                }
                let decoded = decode_records(&batch, &header).map_err(|e| Error::Corrupt {
                    path: segment.path.clone(),
                    position,
                    reason: e.to_string(),
                })?;
                for record in decoded {
                    if record.offset < cursor {
                        continue;
                    }
                    if records.len() >= max_records || (bytes >= max_bytes && !records.is_empty()) {
                        break 'segments;
                    }
                    bytes += record.payload_len();
                    cursor = record.offset + 1;
                    records.push(record);
                }
            }
            if cursor < end.next_offset {
                // The segment ended before its recorded end: impossible
                // unless the file changed under us.
                return Err(Error::Corrupt {
                    path: segment.path.clone(),
                    position: end.position,
                    reason: format!("segment ends before offset {}", end.next_offset),
                });
            }
        }
        Ok(ReadBatch {
            records,
            next_offset: cursor,
        })
    }

    /// The tagged batches of the partition, in offset order, from every
    /// segment written to at or after `since` (by its modification time: a
    /// segment last written earlier holds only batches written earlier)
    /// and from the batches not yet written to a segment. Every batch's
    /// CRC is checked.
    ///
    /// # Errors
    /// [`Error::Io`] when a segment cannot be read; [`Error::Corrupt`]
    /// naming file and position if stored bytes fail their checks.
    pub fn request_tags(&self, since: SystemTime) -> Result<Vec<TaggedBatch>> {
        let high_watermark = self.next_offset();
        let segments: Vec<Arc<Segment>> = self.shared.segments.read().values().cloned().collect();
        let active = segments.last().map(|s| s.base_offset);
        let mut tags = Vec::new();
        let mut scanned_to = 0u64;
        for segment in segments {
            let recent = Some(segment.base_offset) == active
                || self
                    .shared
                    .fs
                    .modified(&segment.path)
                    .map_or(true, |modified| modified >= since);
            let end = segment.end();
            if !recent {
                continue;
            }
            let mut batches = BatchCursor::new(
                &*segment.file,
                SEGMENT_HEADER_LEN,
                end.position,
                self.shared.config.max_batch_bytes,
                READ_CHUNK,
            );
            loop {
                let corrupt = |position: u64, reason: String| Error::Corrupt {
                    path: segment.path.clone(),
                    position,
                    reason,
                };
                match batches
                    .next_batch()
                    .map_err(Error::io("read", &segment.path))?
                {
                    Step::End => break,
                    Step::Invalid { position, reason } => return Err(corrupt(position, reason)),
                    Step::Batch {
                        position,
                        header,
                        bytes,
                    } => {
                        scanned_to = header.next_offset();
                        let tag = request_tag(&bytes, &header)
                            .map_err(|e| corrupt(position, e.to_string()))?;
                        if let Some(tag) = tag {
                            tags.push(TaggedBatch {
                                base_offset: header.base_offset,
                                count: header.count,
                                max_timestamp: header.max_ts,
                                // A copy: a slice would keep the whole
                                // read chunk alive.
                                tag: Bytes::copy_from_slice(&tag),
                            });
                        }
                    }
                }
            }
        }
        let tail = self.shared.tail.read();
        for (base, _, batch) in &tail.batches {
            if *base < scanned_to || *base >= high_watermark {
                continue;
            }
            let corrupt = |reason: String| Error::Corrupt {
                path: self.shared.dir.clone(),
                position: 0,
                reason: format!("unwritten batch at offset {base}: {reason}"),
            };
            let header = BatchHeader::parse(batch, self.shared.config.max_batch_bytes)
                .map_err(|e| corrupt(e.to_string()))?;
            if let Some(tag) = request_tag(batch, &header).map_err(|e| corrupt(e.to_string()))? {
                tags.push(TaggedBatch {
                    base_offset: header.base_offset,
                    count: header.count,
                    max_timestamp: header.max_ts,
                    tag,
                });
            }
        }
        Ok(tags)
    }

    /// Deletes sealed segments per `retention`, oldest first, never the
    /// active one and never one holding an offset at or after `keep_from`
    /// (the oldest offset a consumer still needs).
    ///
    /// # Errors
    /// [`Error::Io`] when a file cannot be removed.
    pub fn enforce_retention(
        &self,
        retention: &Retention,
        keep_from: Option<u64>,
        now: SystemTime,
    ) -> Result<RetentionReport> {
        let mut report = RetentionReport::default();
        loop {
            let candidate = {
                let segments = self.shared.segments.read();
                // The tail is part of the active segment's size.
                let total: u64 = segments.values().map(|s| s.end().position).sum::<u64>()
                    + self.shared.tail_len() as u64;
                let sealed = segments.len().saturating_sub(1);
                segments
                    .values()
                    .take(sealed)
                    .next()
                    .map(|s| (Arc::clone(s), total))
            };
            let Some((oldest, total)) = candidate else {
                break;
            };
            let end = oldest.end();
            if keep_from.is_some_and(|k| end.next_offset > k) {
                break;
            }
            let too_big = retention.max_bytes.is_some_and(|max| total > max);
            let too_old = retention.max_age.is_some_and(|age| {
                self.shared
                    .fs
                    .modified(&oldest.path)
                    .ok()
                    .and_then(|m| m.checked_add(age))
                    .is_some_and(|expiry| expiry <= now)
            });
            if !(too_big || too_old) {
                break;
            }
            self.delete_segment(&oldest)?;
            report.segments += 1;
            report.bytes += end.position;
        }
        report.start_offset = self.start_offset();
        Ok(report)
    }

    fn delete_segment(&self, segment: &Segment) -> Result<()> {
        self.shared.segments.write().remove(&segment.base_offset);
        let fs = &self.shared.fs;
        fs.remove_file(&segment.path)
            .map_err(Error::io("remove", &segment.path))?;
        let ipath = index_path(&self.shared.dir, segment.base_offset);
        match fs.remove_file(&ipath) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &ipath)(e)),
        }
        fs.sync_dir(&self.shared.dir)
            .map_err(Error::io("fsync directory", &self.shared.dir))?;
        tracing::info!(path = %segment.path.display(), "retention deleted segment");
        Ok(())
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        // Closed without waiting: the commit thread syncs the segments and
        // lets the partition go.
        if !self.shared.closed.swap(true, Ordering::AcqRel) {
            let (reply, _) = oneshot::channel();
            let _ = self.log.send(Command::Close {
                partition: Arc::clone(&self.shared),
                forget: false,
                reply,
            });
        }
    }
}

/// Bytes used by a segment header, exposed for tests that compute sizes.
pub const SEGMENT_HEADER_BYTES: u64 = SEGMENT_HEADER_LEN;
