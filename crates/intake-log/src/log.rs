//! A [`Log`]: the journal and the commit thread that every partition opened
//! on it shares, the checkpoints that empty the journal, and recovery.
//!
//! The commit thread takes whatever appends are waiting, from any
//! partition (up to `max_group_bytes`), assigns offsets, writes each
//! partition's batches to its active segment (page cache only), writes the
//! same bytes as journal entries with one positional write, and, when any
//! of them is under [`FsyncPolicy::Always`], makes them durable with one
//! fdatasync of the journal: thousands of partitions share each fsync.
//! Only then are the appends visible to readers and answered.
//!
//! Segments are synced later, by a checkpoint: once a journal file is full
//! the thread starts the next one and hands the checkpoint thread the
//! sequence number; it syncs every partition written since the last
//! checkpoint and deletes the journal files before that number. A restart
//! after a crash replays the journal files left into the segments.
//!
//! A failed journal write or fsync poisons the whole log (the page cache can
//! no longer be trusted to match the disk); a failed segment write poisons
//! its partition. A write refused for lack of space is undone and answered
//! [`Error::NoSpace`]; writes resume once space returns.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SendError, Sender};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::batch::{BatchHeader, EncodedBatch};
use crate::config::{FsyncPolicy, LogConfig, PartitionConfig, RecoveryMode};
use crate::error::{Error, Result};
use crate::fs::{FileHandle, Filesystem, read_whole};
use crate::journal::{
    EntryKind, EntryWriter, JOURNAL_HEADER_LEN, MAX_PATH_LEN, header_bytes, journal_path,
    parse_journal_name, read_file,
};
use crate::metrics::LogMetrics;
use crate::partition::{Appended, Partition, Shared};
use crate::segment::SegmentEnd;

/// A request to the commit thread.
#[derive(Debug)]
pub(crate) enum Command {
    Append {
        partition: Arc<Shared>,
        batch: EncodedBatch,
        reply: oneshot::Sender<Result<Appended>>,
    },
    /// Sync the journal, and `segment`'s active segment if given.
    Sync {
        segment: Option<Arc<Shared>>,
        reply: oneshot::Sender<Result<()>>,
    },
    /// Sync the partition's segments and let it go; with `forget`, also
    /// write (and sync) a journal entry saying it is gone.
    Close {
        partition: Arc<Shared>,
        forget: bool,
        reply: oneshot::Sender<Result<()>>,
    },
    /// Sync everything and empty the journal.
    Checkpoint { reply: oneshot::Sender<Result<()>> },
}

/// What the handles, the commit thread and the checkpoint thread share.
#[derive(Debug)]
pub(crate) struct LogCore {
    pub(crate) fs: Arc<dyn Filesystem>,
    /// Partitions are named in the journal by their path relative to this.
    root: PathBuf,
    journal_dir: PathBuf,
    config: LogConfig,
    /// Set after a failed journal write or fsync; every partition refuses
    /// writes from then on.
    poisoned: Mutex<Option<String>>,
    /// Open partitions by journal path.
    partitions: Mutex<HashMap<String, Arc<Shared>>>,
    /// The first journal file this process writes: files before it are
    /// replayed (and then deleted) by recovery, never by a checkpoint.
    first_sequence: u64,
    /// One checkpoint at a time.
    checkpointing: Mutex<()>,
    metrics: OnceLock<LogMetrics>,
}

impl LogCore {
    pub(crate) fn register(&self, partition: &Arc<Shared>) -> Result<()> {
        let mut partitions = self.partitions.lock();
        if partitions.contains_key(&partition.journal_path) {
            return Err(Error::InvalidParameter {
                name: "dir",
                reason: format!("{} is open already", partition.dir.display()),
            });
        }
        partitions.insert(partition.journal_path.clone(), Arc::clone(partition));
        Ok(())
    }

    fn poison(&self, cause: String) {
        tracing::error!(journal = %self.journal_dir.display(), cause, "log poisoned: writes refused until restart");
        let mut p = self.poisoned.lock();
        if p.is_none() {
            *p = Some(cause);
        }
    }

    pub(crate) fn poisoned_cause(&self) -> Option<String> {
        self.poisoned.lock().clone()
    }

    /// The log's poison as an error of the partition in `dir`.
    pub(crate) fn poisoned_error(&self, dir: &Path) -> Option<Error> {
        self.poisoned_cause().map(|cause| Error::Poisoned {
            dir: dir.to_path_buf(),
            cause,
        })
    }

    fn metrics(&self) -> Option<&LogMetrics> {
        self.metrics.get()
    }

    /// Syncs the segments of every partition written since the last
    /// checkpoint, then deletes the journal files this process wrote
    /// before `up_to`. A partition whose sync fails is poisoned and the
    /// files stay (the next restart replays them).
    fn checkpoint(&self, up_to: u64) -> Result<()> {
        let _one = self.checkpointing.lock();
        let partitions: Vec<Arc<Shared>> = self.partitions.lock().values().cloned().collect();
        let mut synced_dirs = std::collections::HashSet::new();
        let mut failed = None;
        for partition in partitions {
            if let Err(e) = partition.sync_to_disk(&self.root, &mut synced_dirs) {
                failed = Some(e);
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        let dir = &self.journal_dir;
        let mut removed = false;
        for path in self.fs.list_dir(dir).map_err(Error::io("list", dir))? {
            if let Some(sequence) = parse_journal_name(&path)
                && (self.first_sequence..up_to).contains(&sequence)
            {
                self.fs
                    .remove_file(&path)
                    .map_err(Error::io("remove", &path))?;
                removed = true;
            }
        }
        if removed {
            self.fs
                .sync_dir(dir)
                .map_err(Error::io("fsync directory", dir))?;
        }
        Ok(())
    }
}

/// What [`Log`] handles and [`Partition`]s hold: the core and the way to
/// the commit thread, which stops once every holder is gone.
#[derive(Debug)]
pub(crate) struct LogInner {
    pub(crate) core: Arc<LogCore>,
    commands: Sender<Command>,
}

impl LogInner {
    pub(crate) fn send(&self, command: Command) -> Result<(), SendError<Command>> {
        self.commands.send(command)
    }

    /// `dir`'s name in the journal: its path relative to the root.
    pub(crate) fn journal_path_of(&self, dir: &Path) -> Result<String> {
        let bad = |reason: String| Error::InvalidParameter {
            name: "dir",
            reason,
        };
        let relative = dir.strip_prefix(&self.core.root).map_err(|_| {
            bad(format!(
                "{} is not under the log's root {}",
                dir.display(),
                self.core.root.display()
            ))
        })?;
        let text = relative
            .to_str()
            .ok_or_else(|| bad(format!("{} is not UTF-8", dir.display())))?;
        if text.len() > MAX_PATH_LEN {
            return Err(bad(format!("{} is too long", dir.display())));
        }
        Ok(text.to_owned())
    }
}

/// The log of a data directory: partitions opened on it share one
/// write-ahead journal and one commit thread, so one fdatasync makes the
/// appends of all of them durable.
///
/// Open it, open every partition that exists, then [`Log::replay`] the
/// journal into them before the first append; partitions opened later are
/// new.
#[derive(Debug, Clone)]
pub struct Log {
    inner: Arc<LogInner>,
}

impl Log {
    /// Opens the log whose partitions live under `root` and whose journal is
    /// `root/journal`, and starts its commit thread on a new journal file.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a bad config, I/O errors.
    pub fn open(
        fs: Arc<dyn Filesystem>,
        root: impl Into<PathBuf>,
        config: LogConfig,
    ) -> Result<Self> {
        config.validate()?;
        let root = root.into();
        let journal_dir = root.join("journal");
        let existing = match fs.list_dir(&journal_dir) {
            Ok(paths) => paths,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs.create_dir_all(&journal_dir)
                    .map_err(Error::io("create directory", &journal_dir))?;
                for dir in [&root, root.parent().unwrap_or(&root)] {
                    fs.sync_dir(dir)
                        .map_err(Error::io("fsync directory", dir))?;
                }
                Vec::new()
            }
            Err(e) => return Err(Error::io("list", &journal_dir)(e)),
        };
        let first_sequence = existing
            .iter()
            .filter_map(|p| parse_journal_name(p))
            .max()
            .map_or(0, |last| last + 1);
        let journal = create_journal_file(&*fs, &journal_dir, first_sequence)?;
        let core = Arc::new(LogCore {
            fs,
            root,
            journal_dir,
            config,
            poisoned: Mutex::new(None),
            partitions: Mutex::new(HashMap::new()),
            first_sequence,
            checkpointing: Mutex::new(()),
            metrics: OnceLock::new(),
        });
        let (commands, rx) = std::sync::mpsc::channel();
        let (checkpoints, checkpoint_rx) = std::sync::mpsc::channel();
        let committer = Committer {
            core: Arc::clone(&core),
            rx,
            journal,
            sequence: first_sequence,
            journal_end: JOURNAL_HEADER_LEN,
            dirty: false,
            sync_due: None,
            entries: EntryWriter::default(),
            last_group: 0,
            checkpoints,
            tails: std::collections::VecDeque::new(),
            tail_bytes: 0,
            scratch: Vec::new(),
        };
        std::thread::Builder::new()
            .name("intake-log-commit".into())
            .spawn(move || committer.run())
            .map_err(Error::io("spawn the commit thread of", &core.journal_dir))?;
        let checkpointer = Arc::clone(&core);
        std::thread::Builder::new()
            .name("intake-log-checkpoint".into())
            .spawn(move || run_checkpoints(&checkpointer, &checkpoint_rx))
            .map_err(Error::io(
                "spawn the checkpoint thread of",
                &core.journal_dir,
            ))?;
        Ok(Self {
            inner: Arc::new(LogInner { core, commands }),
        })
    }

    /// Opens (or creates) the partition in `dir`, which must be under the
    /// log's root, recovering its segments (see [`Partition::open`]).
    ///
    /// # Errors
    /// As [`Partition::open`]; [`Error::InvalidParameter`] for a directory
    /// outside the root or open already.
    pub fn open_partition(
        &self,
        dir: impl AsRef<Path>,
        config: PartitionConfig,
    ) -> Result<Partition> {
        Partition::open_in(&self.inner, dir.as_ref().to_path_buf(), config)
    }

    /// Replays the journal files a crash left into the partitions open now
    /// (entries of partitions not open, or forgotten, are skipped), syncs
    /// what it wrote, and deletes those files. Call it once, after opening
    /// every partition and before the first append.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for damage before the tail of the last journal
    /// file (or in its tail under [`RecoveryMode::AbsoluteConsistency`]),
    /// or for a journal entry that does not continue its partition; I/O
    /// errors.
    pub fn replay(&self) -> Result<ReplayReport> {
        replay(&self.inner.core)
    }

    /// Syncs every partition's segments and empties the journal (a clean
    /// shutdown leaves nothing to replay).
    ///
    /// # Errors
    /// [`Error::Poisoned`], I/O errors of the syncs.
    pub async fn checkpoint(&self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        let closed = || Error::Closed {
            dir: self.inner.core.journal_dir.clone(),
        };
        self.inner
            .send(Command::Checkpoint { reply })
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    /// Hands the log the handles to record its journal's figures into
    /// (fsync latency, group-commit sizes). Only the first call takes
    /// effect.
    pub fn set_metrics(&self, metrics: LogMetrics) {
        if self.inner.core.metrics.set(metrics).is_err() {
            tracing::debug!("log metrics were already set");
        }
    }

    /// Why writes are refused, if the whole log refuses them.
    pub fn poisoned(&self) -> Option<String> {
        self.inner.core.poisoned_cause()
    }

    /// Partitions open on the log.
    pub fn partition_count(&self) -> usize {
        self.inner.core.partitions.lock().len()
    }
}

/// What [`Log::replay`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Journal files read.
    pub files: usize,
    /// Batches written back into segments.
    pub batches: usize,
    /// Partitions they went to.
    pub partitions: usize,
}

/// Creates journal file `sequence` with its header, synced, and syncs the
/// directory.
fn create_journal_file(
    fs: &dyn Filesystem,
    dir: &Path,
    sequence: u64,
) -> Result<Arc<dyn FileHandle>> {
    let path = journal_path(dir, sequence);
    let file = fs.create_new(&path).map_err(Error::io("create", &path))?;
    file.write_all_at(&header_bytes(sequence), 0)
        .map_err(Error::io("write header of", &path))?;
    file.sync_data().map_err(Error::io("fsync", &path))?;
    fs.sync_dir(dir)
        .map_err(Error::io("fsync directory", dir))?;
    Ok(file)
}

fn run_checkpoints(core: &LogCore, requests: &Receiver<u64>) {
    while let Ok(mut up_to) = requests.recv() {
        // Only the newest request matters.
        while let Ok(later) = requests.try_recv() {
            up_to = later;
        }
        if let Err(e) = core.checkpoint(up_to) {
            tracing::error!(error = %e, "checkpoint failed; the journal keeps its files");
        }
    }
}

type Reply = oneshot::Sender<Result<Appended>>;
/// An append waiting for its group.
type Pending = (Arc<Shared>, EncodedBatch, Reply);
/// One partition's appends in a group, in order.
type Items = Vec<(EncodedBatch, Reply)>;

/// One partition's part of a group, written to its segment and waiting
/// for the journal.
struct Staged {
    partition: Arc<Shared>,
    /// Where the partition's batches end in its segment once written.
    end: SegmentEnd,
    /// (base offset, next offset, bytes) of each batch, for the tail.
    batches: Vec<(u64, u64, Bytes)>,
    replies: Vec<(u64, Reply, Appended)>,
}

/// A partition's tail is written to its segment once it holds this much.
const FLUSH_BYTES: usize = 64 * 1024;
/// ... or once its oldest batch is this old.
const FLUSH_DELAY: Duration = Duration::from_secs(1);
/// ... or once all tails together hold this much.
const MAX_TAIL_BYTES: usize = 64 * 1024 * 1024;

/// When a partition's tail began, and its first offset: once that tail is
/// written (it filled up), its entry no longer makes a later tail early.
struct TailStart {
    since: Instant,
    partition: Arc<Shared>,
    first_offset: u64,
}

/// The commit thread.
struct Committer {
    core: Arc<LogCore>,
    rx: Receiver<Command>,
    journal: Arc<dyn FileHandle>,
    sequence: u64,
    journal_end: u64,
    /// Journal bytes written but not yet synced.
    dirty: bool,
    /// When an append under [`FsyncPolicy::Interval`] needs the journal
    /// synced.
    sync_due: Option<Instant>,
    entries: EntryWriter,
    /// Appends in the previous group.
    last_group: usize,
    checkpoints: Sender<u64>,
    /// Partitions with a tail to write, by when it began.
    tails: std::collections::VecDeque<TailStart>,
    /// Bytes in all tails, about.
    tail_bytes: usize,
    /// The buffer tails are written through.
    scratch: Vec<u8>,
}

impl Committer {
    fn run(mut self) {
        loop {
            let first = match self.next_command() {
                Ok(Some(command)) => command,
                Ok(None) => {
                    if self.sync_due.is_some_and(|due| Instant::now() >= due) {
                        self.sync_if_dirty();
                    }
                    self.flush_due_tails();
                    continue;
                }
                Err(()) => {
                    self.flush_all_tails();
                    self.sync_if_dirty();
                    return;
                }
            };
            let mut appends = Vec::new();
            let mut controls = Vec::new();
            let mut group_bytes = 0usize;
            let mut wants_sync = false;
            let mut take = |command: Command,
                            appends: &mut Vec<Pending>,
                            group_bytes: &mut usize,
                            wants_sync: &mut bool| match command {
                Command::Append {
                    partition,
                    batch,
                    reply,
                } => {
                    *group_bytes += batch.len();
                    *wants_sync |= partition.config.fsync == FsyncPolicy::Always;
                    appends.push((partition, batch, reply));
                }
                other => controls.push(other),
            };
            take(first, &mut appends, &mut group_bytes, &mut wants_sync);
            let started = Instant::now();
            let delay = self.core.config.group_commit_delay;
            while group_bytes < self.core.config.max_group_bytes {
                match self.rx.try_recv() {
                    Ok(command) => take(command, &mut appends, &mut group_bytes, &mut wants_sync),
                    Err(_) => {
                        // Adaptive group commit: while this group is much
                        // smaller than the last one, the rest of that crowd is
                        // likely on its way; wait a little for it rather than
                        // spend a whole fsync on a few appends.
                        let waited = started.elapsed();
                        if !wants_sync
                            || delay.is_zero()
                            || appends.len() * 2 > self.last_group
                            || waited >= delay
                        {
                            break;
                        }
                        match self.rx.recv_timeout(delay - waited) {
                            Ok(command) => {
                                take(command, &mut appends, &mut group_bytes, &mut wants_sync);
                            }
                            Err(_) => break,
                        }
                    }
                }
            }
            self.last_group = appends.len();
            if !appends.is_empty() {
                self.commit(appends);
            }
            for control in controls {
                self.control(control);
            }
            if self.sync_due.is_some_and(|due| Instant::now() >= due) {
                self.sync_if_dirty();
            }
            self.flush_due_tails();
        }
    }

    /// Writes the tails that are old enough (or all, past
    /// [`MAX_TAIL_BYTES`]).
    fn flush_due_tails(&mut self) {
        if self.tail_bytes > MAX_TAIL_BYTES {
            self.flush_all_tails();
            return;
        }
        let now = Instant::now();
        while let Some(start) = self.tails.front()
            && start.since + FLUSH_DELAY <= now
        {
            if let Some(start) = self.tails.pop_front()
                && start.partition.tail_first_offset() == Some(start.first_offset)
            {
                self.flush(&start.partition);
            }
        }
    }

    /// Writes every tail; false when one could not be written (it stays).
    fn flush_all_tails(&mut self) -> bool {
        let mut all = true;
        for start in std::mem::take(&mut self.tails) {
            all &= self.flush(&start.partition);
        }
        all
    }

    /// Writes `partition`'s tail; false (and the partition queued again)
    /// when it could not be.
    fn flush(&mut self, partition: &Arc<Shared>) -> bool {
        let len = partition.tail_len();
        match partition.flush_tail(&mut self.scratch) {
            Ok(()) => {
                self.tail_bytes = self.tail_bytes.saturating_sub(len);
                true
            }
            Err(e) => {
                tracing::warn!(dir = %partition.dir.display(), error = %e, "cannot write a partition's tail to its segment; the journal keeps it");
                if let Some(first_offset) = partition.tail_first_offset()
                    && partition.poisoned_error().is_none()
                {
                    self.tails.push_back(TailStart {
                        since: Instant::now(),
                        partition: Arc::clone(partition),
                        first_offset,
                    });
                }
                false
            }
        }
    }

    /// The next command; `Ok(None)` when an interval sync is due first;
    /// `Err` when every handle is gone.
    fn next_command(&self) -> Result<Option<Command>, ()> {
        let flush_due = self.tails.front().map(|start| start.since + FLUSH_DELAY);
        let due = match (self.sync_due, flush_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match due {
            Some(due) => {
                let wait = due.saturating_duration_since(Instant::now());
                match self.rx.recv_timeout(wait.max(Duration::from_micros(100))) {
                    Ok(command) => Ok(Some(command)),
                    Err(RecvTimeoutError::Timeout) => Ok(None),
                    Err(RecvTimeoutError::Disconnected) => Err(()),
                }
            }
            None => self.rx.recv().map(Some).map_err(|_| ()),
        }
    }

    fn journal_path(&self) -> PathBuf {
        journal_path(&self.core.journal_dir, self.sequence)
    }

    /// fdatasync of the journal, timed.
    fn sync_journal(&mut self) -> std::io::Result<()> {
        let started = Instant::now();
        let result = self.journal.sync_data();
        if let Some(metrics) = self.core.metrics() {
            metrics.fsync_took(started.elapsed());
        }
        if result.is_ok() {
            self.dirty = false;
            self.sync_due = None;
        }
        result
    }

    fn sync_if_dirty(&mut self) {
        if self.dirty
            && self.core.poisoned_cause().is_none()
            && let Err(e) = self.sync_journal()
        {
            self.core
                .poison(format!("fdatasync {}: {e}", self.journal_path().display()));
        }
        self.sync_due = None;
    }

    fn commit(&mut self, appends: Vec<Pending>) {
        let appends_len = appends.len();
        // Each partition's appends, in order; partitions in order of arrival.
        let mut by_partition: Vec<(Arc<Shared>, Items)> = Vec::new();
        let mut slots: HashMap<*const Shared, usize> = HashMap::new();
        let mut group_bytes = 0u64;
        for (partition, batch, reply) in appends {
            group_bytes += batch.len() as u64;
            let slot = *slots.entry(Arc::as_ptr(&partition)).or_insert_with(|| {
                by_partition.push((Arc::clone(&partition), Vec::new()));
                by_partition.len() - 1
            });
            if let Some((_, items)) = by_partition.get_mut(slot) {
                items.push((batch, reply));
            }
        }
        if let Some(metrics) = self.core.metrics() {
            metrics.group_appends.record(appends_len as f64);
            metrics.group_bytes.record(group_bytes as f64);
        }
        self.entries.clear(self.core.config.max_group_bytes);
        let mut staged = Vec::with_capacity(by_partition.len());
        let mut wants_sync = false;
        for (partition, items) in by_partition {
            let bytes: usize = items.iter().map(|(batch, _)| batch.len()).sum();
            // Written twice, a hot partition's large batches cost the disk
            // twice the bandwidth, and that, not the fsync, is then the
            // limit (LogConfig::direct_write_bytes).
            let direct = partition.config.fsync == FsyncPolicy::Always
                && bytes >= self.core.config.direct_write_bytes;
            let Some(s) = self.stage(&partition, items, !direct) else {
                continue;
            };
            if direct {
                self.write_direct(s);
                continue;
            }
            match partition.config.fsync {
                FsyncPolicy::Always => wants_sync = true,
                FsyncPolicy::Interval(every) => {
                    let due = Instant::now() + every;
                    self.sync_due = Some(self.sync_due.map_or(due, |d| d.min(due)));
                }
                FsyncPolicy::Never => {}
            }
            staged.push(s);
        }
        if staged.is_empty() {
            return;
        }
        let path = self.journal_path();
        if let Err(e) = self
            .journal
            .write_all_at(self.entries.bytes(), self.journal_end)
        {
            // Nothing of the group may survive: undo the journal and the
            // segments (their bytes were never acknowledged).
            let undone = self.journal.set_len(self.journal_end);
            if e.kind() == std::io::ErrorKind::StorageFull && undone.is_ok() {
                tracing::warn!(path = %path.display(), "disk full: appends refused, nothing written");
                return fail_staged(staged, || Error::NoSpace { path: path.clone() });
            }
            self.core.poison(format!("write {}: {e}", path.display()));
            let core = Arc::clone(&self.core);
            return fail_staged(staged, || poisoned_or_closed(&core, &path));
        }
        self.journal_end += self.entries.len() as u64;
        self.dirty = true;
        if wants_sync && let Err(e) = self.sync_journal() {
            self.core
                .poison(format!("fdatasync {}: {e}", path.display()));
            let core = Arc::clone(&self.core);
            return fail_staged(staged, || poisoned_or_closed(&core, &path));
        }
        for s in staged {
            let added: usize = s.batches.iter().map(|b| b.2.len()).sum();
            let first_offset = s.batches.first().map_or(0, |b| b.0);
            let tail = s.partition.publish_tail(s.batches, s.end);
            self.tail_bytes += added;
            for (len, reply, appended) in s.replies {
                s.partition.pending_bytes.fetch_sub(len, Ordering::AcqRel);
                let _ = reply.send(Ok(appended));
            }
            if tail >= FLUSH_BYTES {
                self.flush(&s.partition);
            } else if tail == added {
                self.tails.push_back(TailStart {
                    since: Instant::now(),
                    partition: s.partition,
                    first_offset,
                });
            }
        }
        if self.journal_end >= self.core.config.journal_file_bytes {
            self.roll_journal();
        }
    }

    /// Gives `items` their offsets after `partition`'s tail (rolling the
    /// active segment first if full) and, when `journaled`, adds them to
    /// the group's journal entries; `None` when they were refused (and
    /// answered).
    fn stage(&mut self, partition: &Arc<Shared>, items: Items, journaled: bool) -> Option<Staged> {
        let fail = |items: Items, error: &dyn Fn() -> Error| {
            for (batch, reply) in items {
                partition
                    .pending_bytes
                    .fetch_sub(batch.len() as u64, Ordering::AcqRel);
                let _ = reply.send(Err(error()));
            }
        };
        let refused = partition.poisoned_error().is_some()
            || self.core.poisoned_cause().is_some()
            || partition.detached.load(Ordering::Acquire);
        if refused {
            let core = Arc::clone(&self.core);
            fail(items, &|| {
                partition
                    .poisoned_error()
                    .or_else(|| core.poisoned_error(&partition.dir))
                    .unwrap_or_else(|| Error::Closed {
                        dir: partition.dir.clone(),
                    })
            });
            return None;
        }
        let incoming: u64 = items.iter().map(|(b, _)| b.len() as u64).sum();
        if let Err(e) = partition.roll_if_full(incoming) {
            if e.is_no_space() {
                // Nothing was lost: the roll is tried again with the next
                // append, once there is space.
                tracing::warn!(dir = %partition.dir.display(), error = %e, "disk full: cannot roll the segment; append refused");
                let path = partition.dir.clone();
                fail(items, &|| Error::NoSpace { path: path.clone() });
            } else {
                partition.poison(e.to_string());
                fail(items, &|| {
                    partition.poisoned_error().unwrap_or(Error::Closed {
                        dir: partition.dir.clone(),
                    })
                });
            }
            return None;
        }
        let start = *partition.write_end.lock();
        if journaled {
            self.entries
                .begin(EntryKind::Append, &partition.journal_path);
        }
        let mut offset = start.next_offset;
        let mut position = start.position;
        let mut batches = Vec::with_capacity(items.len());
        let mut replies = Vec::with_capacity(items.len());
        for (mut batch, reply) in items {
            let len = batch.len();
            let count = u64::from(batch.count());
            let bytes = batch.with_base_offset(offset);
            if journaled {
                self.entries.payload().extend_from_slice(bytes);
            }
            batches.push((offset, offset + count, batch.into_bytes()));
            replies.push((
                len as u64,
                reply,
                Appended {
                    first_offset: offset,
                    last_offset: offset + count - 1,
                },
            ));
            offset += count;
            position += len as u64;
        }
        if journaled {
            self.entries.finish();
        }
        Some(Staged {
            partition: Arc::clone(partition),
            end: SegmentEnd {
                position,
                next_offset: offset,
            },
            batches,
            replies,
        })
    }

    /// Writes `s` past its partition's tail straight to the segment, synced
    /// there ([`LogConfig::direct_write_bytes`]), and answers its appends.
    fn write_direct(&mut self, s: Staged) {
        let partition = Arc::clone(&s.partition);
        let tail = partition.tail_len();
        let started = Instant::now();
        let written = partition.flush_tail(&mut self.scratch).and_then(|()| {
            self.tail_bytes = self.tail_bytes.saturating_sub(tail);
            partition.write_durably(&s.batches, s.end, &self.core.root, &mut self.scratch)
        });
        match written {
            Ok(()) => {
                if let Some(metrics) = self.core.metrics() {
                    metrics.fsync_took(started.elapsed());
                }
                for (len, reply, appended) in s.replies {
                    partition.pending_bytes.fetch_sub(len, Ordering::AcqRel);
                    let _ = reply.send(Ok(appended));
                }
            }
            Err(e) => {
                let no_space = e.is_no_space();
                tracing::warn!(dir = %partition.dir.display(), error = %e, "append refused");
                fail_staged(vec![s], || {
                    if no_space {
                        Error::NoSpace {
                            path: partition.dir.clone(),
                        }
                    } else {
                        partition.poisoned_error().unwrap_or_else(|| Error::Closed {
                            dir: partition.dir.clone(),
                        })
                    }
                });
            }
        }
    }

    /// Closes the current journal file (synced) and starts the next; the
    /// checkpoint thread may then delete the files before it. A failure
    /// keeps the current file (it grows) and is retried after the next
    /// group.
    fn roll_journal(&mut self) {
        // Everything in the files before the next one must be in segments
        // before a checkpoint syncs them and deletes those files.
        if !self.flush_all_tails() {
            return;
        }
        if self.dirty {
            let path = self.journal_path();
            if let Err(e) = self.sync_journal() {
                self.core
                    .poison(format!("fdatasync {}: {e}", path.display()));
                return;
            }
        }
        let next = self.sequence + 1;
        match create_journal_file(&*self.core.fs, &self.core.journal_dir, next) {
            Ok(file) => {
                self.journal = file;
                self.sequence = next;
                self.journal_end = JOURNAL_HEADER_LEN;
                let _ = self.checkpoints.send(next);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the next journal file; keeping the current one")
            }
        }
    }

    fn control(&mut self, command: Command) {
        match command {
            Command::Append { .. } => {}
            Command::Sync { segment, reply } => {
                let _ = reply.send(self.sync(segment.as_deref()));
            }
            Command::Close {
                partition,
                forget,
                reply,
            } => {
                let _ = reply.send(self.close(&partition, forget));
            }
            Command::Checkpoint { reply } => {
                let _ = reply.send(self.full_checkpoint());
            }
        }
    }

    fn sync(&mut self, segment: Option<&Shared>) -> Result<()> {
        if let Some(e) = self.core.poisoned_error(&self.core.journal_dir) {
            return Err(e);
        }
        if self.dirty {
            let path = self.journal_path();
            self.sync_journal().map_err(|e| {
                self.core
                    .poison(format!("fdatasync {}: {e}", path.display()));
                Error::io("fsync", &path)(e)
            })?;
        }
        if let Some(partition) = segment {
            partition.flush_tail(&mut self.scratch)?;
            let active = partition.active();
            active.file.sync_all().map_err(|e| {
                partition.poison(format!("fsync {}: {e}", active.path.display()));
                Error::io("fsync", &active.path)(e)
            })?;
        }
        Ok(())
    }

    fn close(&mut self, partition: &Arc<Shared>, forget: bool) -> Result<()> {
        partition.detached.store(true, Ordering::Release);
        // Synced before it leaves the checkpoints' list: a checkpoint
        // meanwhile waits for this sync rather than delete journal files
        // the partition still needs.
        let synced = match partition.poisoned_error() {
            Some(e) => Err(e),
            None => partition.flush_tail(&mut self.scratch).and_then(|()| {
                partition.sync_to_disk(&self.core.root, &mut std::collections::HashSet::new())
            }),
        };
        self.core.partitions.lock().remove(&partition.journal_path);
        synced?;
        if forget {
            self.entries.clear(self.core.config.max_group_bytes);
            self.entries
                .begin(EntryKind::Forget, &partition.journal_path);
            self.entries.finish();
            let path = self.journal_path();
            let written = self
                .journal
                .write_all_at(self.entries.bytes(), self.journal_end);
            if let Err(e) = written.and_then(|()| {
                self.journal_end += self.entries.len() as u64;
                self.dirty = true;
                self.sync_journal()
            }) {
                self.core.poison(format!("write {}: {e}", path.display()));
                return Err(Error::io("write", &path)(e));
            }
        }
        Ok(())
    }

    /// Syncs everything and deletes every journal file of this process but
    /// a new, empty one.
    fn full_checkpoint(&mut self) -> Result<()> {
        if let Some(e) = self.core.poisoned_error(&self.core.journal_dir) {
            return Err(e);
        }
        let before = self.sequence;
        self.roll_journal();
        if self.sequence == before {
            return Err(self
                .core
                .poisoned_error(&self.core.journal_dir)
                .unwrap_or_else(|| Error::Io {
                    op: "start the next journal file in",
                    path: self.core.journal_dir.clone(),
                    source: std::io::Error::other("see the log"),
                }));
        }
        self.core.checkpoint(self.sequence)
    }
}

fn poisoned_or_closed(core: &LogCore, path: &Path) -> Error {
    core.poisoned_error(path).unwrap_or_else(|| Error::Closed {
        dir: path.to_path_buf(),
    })
}

fn fail_staged(staged: Vec<Staged>, error: impl Fn() -> Error) {
    for s in staged {
        for (len, reply, _) in s.replies {
            s.partition.pending_bytes.fetch_sub(len, Ordering::AcqRel);
            let _ = reply.send(Err(error()));
        }
    }
}

/// Recovery: replays the journal files before `core.first_sequence`.
fn replay(core: &LogCore) -> Result<ReplayReport> {
    let dir = &core.journal_dir;
    let mut files: Vec<u64> = core
        .fs
        .list_dir(dir)
        .map_err(Error::io("list", dir))?
        .iter()
        .filter_map(|p| parse_journal_name(p))
        .filter(|&s| s < core.first_sequence)
        .collect();
    files.sort_unstable();
    let mut report = ReplayReport {
        files: files.len(),
        ..ReplayReport::default()
    };
    let contents: Vec<(u64, Vec<u8>)> = files
        .iter()
        .map(|&sequence| {
            let path = journal_path(dir, sequence);
            read_whole(&*core.fs, &path)
                .map(|bytes| (sequence, bytes))
                .map_err(Error::io("read", &path))
        })
        .collect::<Result<_>>()?;
    let parsed: Vec<_> = contents
        .iter()
        .map(|(sequence, bytes)| (*sequence, read_file(bytes, *sequence)))
        .collect();
    // Where each forgotten path was last forgotten: its entries before
    // that describe a partition that is gone.
    let mut forgotten: HashMap<&str, (u64, u64)> = HashMap::new();
    for (i, (sequence, file)) in parsed.iter().enumerate() {
        if let Some((position, reason)) = &file.damage {
            let last = i + 1 == parsed.len();
            if !last || core.config.recovery == RecoveryMode::AbsoluteConsistency {
                return Err(Error::Corrupt {
                    path: journal_path(dir, *sequence),
                    position: *position,
                    reason: reason.clone(),
                });
            }
            tracing::warn!(
                path = %journal_path(dir, *sequence).display(), position, reason,
                "ignoring the torn tail of the journal (never acknowledged)"
            );
        }
        for entry in &file.entries {
            if entry.kind == EntryKind::Forget {
                forgotten.insert(entry.path, (*sequence, entry.position));
            }
        }
    }
    let partitions = core.partitions.lock().clone();
    let mut touched: HashMap<&str, Arc<Shared>> = HashMap::new();
    for (sequence, file) in &parsed {
        for entry in &file.entries {
            if entry.kind != EntryKind::Append
                || forgotten
                    .get(entry.path)
                    .is_some_and(|&at| at > (*sequence, entry.position))
            {
                continue;
            }
            let Some(partition) = partitions.get(entry.path) else {
                continue;
            };
            let written =
                replay_entry(partition, entry.payload).map_err(|reason| Error::Corrupt {
                    path: journal_path(dir, *sequence),
                    position: entry.position,
                    reason: format!("entry of {}: {reason}", partition.dir.display()),
                })?;
            if written > 0 {
                report.batches += written;
                touched.insert(entry.path, Arc::clone(partition));
            }
        }
    }
    report.partitions = touched.len();
    let mut synced_dirs = std::collections::HashSet::new();
    for partition in touched.values() {
        partition.unsynced.store(true, Ordering::Release);
        partition.sync_to_disk(&core.root, &mut synced_dirs)?;
    }
    for &sequence in &files {
        let path = journal_path(dir, sequence);
        core.fs
            .remove_file(&path)
            .map_err(Error::io("remove", &path))?;
    }
    if !files.is_empty() {
        core.fs
            .sync_dir(dir)
            .map_err(Error::io("fsync directory", dir))?;
        tracing::info!(
            files = report.files,
            batches = report.batches,
            partitions = report.partitions,
            "journal replayed"
        );
    }
    Ok(report)
}

/// Writes the batches of one journal entry that its partition lacks;
/// how many. Batches it holds already are skipped; one past its end is
/// damage (the journal never skips offsets).
fn replay_entry(partition: &Shared, payload: &[u8]) -> std::result::Result<usize, String> {
    let mut written = 0;
    let mut at = 0usize;
    while at < payload.len() {
        let rest = payload.get(at..).unwrap_or_default();
        let header = BatchHeader::parse(rest, partition.config.max_batch_bytes)
            .map_err(|e| format!("bad batch header at {at}: {e}"))?;
        let len = header.total_len();
        let batch = rest
            .get(..len)
            .ok_or_else(|| format!("batch at {at} runs past the entry"))?;
        at += len;
        let end = *partition.write_end.lock();
        if header.next_offset() <= end.next_offset {
            continue; // in the segment already
        }
        if header.base_offset != end.next_offset {
            return Err(format!(
                "batch at offset {} where the partition ends at offset {}",
                header.base_offset, end.next_offset
            ));
        }
        partition
            .roll_if_full(len as u64)
            .map_err(|e| e.to_string())?;
        let end = *partition.write_end.lock();
        let active = partition.active();
        active
            .file
            .write_all_at(batch, end.position)
            .map_err(|e| format!("write {}: {e}", active.path.display()))?;
        let new_end = SegmentEnd {
            position: end.position + len as u64,
            next_offset: header.next_offset(),
        };
        partition.publish_written(&active, &[(header.base_offset, end.position, len)], new_end);
        written += 1;
    }
    Ok(written)
}
