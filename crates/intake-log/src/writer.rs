//! The writer thread of a partition: group commit, segment rolls, fsync
//! policy and poisoning.
//!
//! The thread takes whatever appends are waiting (up to
//! `max_group_bytes`), assigns offsets, writes them with one positional
//! write and, under [`FsyncPolicy::Always`], one fdatasync, and only then
//! makes them visible to readers and answers the appenders. A failed fsync
//! poisons the partition: the page cache can no longer be trusted to match
//! the disk, so nothing more is acknowledged until a restart has recovered
//! from what is really on disk. A write refused for lack of space is undone
//! (the file is truncated back) and answered with [`Error::NoSpace`]; writes
//! resume once space returns.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::batch::EncodedBatch;
use crate::config::{FsyncPolicy, PersistMode};
use crate::error::{Error, Result};
use crate::fs::write_atomic;
use crate::partition::{Appended, Shared};
use crate::segment::{SEGMENT_HEADER_LEN, Segment, SegmentEnd, index_path};

/// A request to the writer thread.
#[derive(Debug)]
pub(crate) enum Command {
    Append {
        batch: EncodedBatch,
        reply: oneshot::Sender<Result<Appended>>,
    },
    Persist {
        mode: PersistMode,
        reply: oneshot::Sender<Result<()>>,
    },
    Close {
        reply: oneshot::Sender<Result<()>>,
    },
}

type Pending = (EncodedBatch, oneshot::Sender<Result<Appended>>);

pub(crate) struct Writer {
    shared: Arc<Shared>,
    rx: Receiver<Command>,
    active: Arc<Segment>,
    end: SegmentEnd,
    /// Data written but not yet fdatasynced.
    dirty: bool,
    last_sync: Instant,
    buf: Vec<u8>,
    /// Appends in the previous group.
    last_group: usize,
}

impl Writer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        rx: Receiver<Command>,
        active: Arc<Segment>,
        end: SegmentEnd,
    ) -> Self {
        Self {
            shared,
            rx,
            active,
            end,
            dirty: false,
            last_sync: Instant::now(),
            buf: Vec::new(),
            last_group: 0,
        }
    }

    pub(crate) fn run(mut self) {
        loop {
            let first = match self.next_command() {
                Ok(Some(cmd)) => cmd,
                Ok(None) => {
                    // Interval elapsed with unsynced data.
                    self.sync_if_dirty();
                    continue;
                }
                Err(()) => {
                    self.sync_if_dirty();
                    return;
                }
            };
            let mut appends: Vec<Pending> = Vec::new();
            let mut controls = Vec::new();
            let mut group_bytes = 0usize;
            let mut take =
                |cmd: Command, appends: &mut Vec<Pending>, group_bytes: &mut usize| match cmd {
                    Command::Append { batch, reply } => {
                        *group_bytes += batch.len();
                        appends.push((batch, reply));
                    }
                    other => controls.push(other),
                };
            take(first, &mut appends, &mut group_bytes);
            let started = Instant::now();
            let delay = self.commit_delay();
            while group_bytes < self.shared.config.max_group_bytes {
                match self.rx.try_recv() {
                    Ok(cmd) => take(cmd, &mut appends, &mut group_bytes),
                    Err(_) => {
                        // Adaptive group commit: while this group is much
                        // smaller than the last one, the rest of that crowd is
                        // likely on its way; wait a little for it rather than
                        // spend a whole fsync on a few appends.
                        let waited = started.elapsed();
                        if delay.is_zero() || appends.len() * 2 > self.last_group || waited >= delay
                        {
                            break;
                        }
                        match self.rx.recv_timeout(delay - waited) {
                            Ok(cmd) => take(cmd, &mut appends, &mut group_bytes),
                            Err(_) => break,
                        }
                    }
                }
            }
            self.last_group = appends.len();
            if !appends.is_empty() {
                self.write_group(appends);
            }
            for control in controls {
                match control {
                    Command::Persist { mode, reply } => {
                        let _ = reply.send(self.persist(mode));
                    }
                    Command::Close { reply } => {
                        // Appends that raced the close flag are still served.
                        let mut late = Vec::new();
                        while let Ok(cmd) = self.rx.try_recv() {
                            if let Command::Append { batch, reply } = cmd {
                                late.push((batch, reply));
                            }
                        }
                        if !late.is_empty() {
                            self.write_group(late);
                        }
                        let _ = reply.send(self.persist(PersistMode::SyncData));
                        return;
                    }
                    Command::Append { .. } => {}
                }
            }
            if let FsyncPolicy::Interval(every) = self.shared.config.fsync
                && self.dirty
                && self.last_sync.elapsed() >= every
            {
                self.sync_if_dirty();
            }
        }
    }

    /// How long a small group may wait for more appends (only worth it
    /// when each group costs an fsync).
    fn commit_delay(&self) -> Duration {
        if self.shared.config.fsync == FsyncPolicy::Always {
            self.shared.config.group_commit_delay
        } else {
            Duration::ZERO
        }
    }

    /// The next command; `Ok(None)` when an fsync interval is due first;
    /// `Err` when every handle is gone.
    fn next_command(&self) -> Result<Option<Command>, ()> {
        match self.shared.config.fsync {
            FsyncPolicy::Interval(every) if self.dirty => {
                let wait = every.saturating_sub(self.last_sync.elapsed());
                match self.rx.recv_timeout(wait.max(Duration::from_micros(100))) {
                    Ok(cmd) => Ok(Some(cmd)),
                    Err(RecvTimeoutError::Timeout) => Ok(None),
                    Err(RecvTimeoutError::Disconnected) => Err(()),
                }
            }
            _ => self.rx.recv().map(Some).map_err(|_| ()),
        }
    }

    fn fail_all(&self, appends: Vec<Pending>, error: impl Fn() -> Error) {
        for (batch, reply) in appends {
            self.shared
                .pending_bytes
                .fetch_sub(batch.len() as u64, Ordering::AcqRel);
            let _ = reply.send(Err(error()));
        }
    }

    fn poisoned(&self) -> impl Fn() -> Error + '_ {
        || {
            self.shared
                .poisoned_error()
                .unwrap_or_else(|| Error::Closed {
                    dir: self.shared.dir.clone(),
                })
        }
    }

    fn write_group(&mut self, mut appends: Vec<Pending>) {
        if self.shared.poisoned_error().is_some() {
            return self.fail_all(appends, self.poisoned());
        }
        let group_bytes: u64 = appends.iter().map(|(b, _)| b.len() as u64).sum();
        if let Some(metrics) = self.shared.metrics.get() {
            metrics.group_appends.record(appends.len() as f64);
            metrics.group_bytes.record(group_bytes as f64);
        }
        let has_data = self.end.position > SEGMENT_HEADER_LEN;
        if has_data
            && self.end.position + group_bytes > self.shared.config.segment_bytes
            && let Err(e) = self.roll()
        {
            self.shared.poison(e.to_string());
            return self.fail_all(appends, self.poisoned());
        }

        let start = self.end.position;
        let mut offset = self.end.next_offset;
        let mut results = Vec::with_capacity(appends.len());
        let mut index_updates = Vec::new();
        self.buf.clear();
        for (batch, _) in &mut appends {
            let position = start + self.buf.len() as u64;
            index_updates.push((offset, position, batch.len()));
            let count = u64::from(batch.count());
            self.buf.extend_from_slice(batch.with_base_offset(offset));
            results.push(Appended {
                first_offset: offset,
                last_offset: offset + count - 1,
            });
            offset += count;
        }

        let path = &self.active.path;
        if let Err(e) = self.active.file.write_all_at(&self.buf, start) {
            // Undo whatever part of the write landed.
            let undone = self.active.file.set_len(start);
            if e.kind() == std::io::ErrorKind::StorageFull && undone.is_ok() {
                tracing::warn!(path = %path.display(), "disk full: append refused, nothing written");
                let path = path.clone();
                return self.fail_all(appends, || Error::NoSpace { path: path.clone() });
            }
            self.shared.poison(format!("write {}: {e}", path.display()));
            return self.fail_all(appends, self.poisoned());
        }
        if self.shared.config.fsync == FsyncPolicy::Always {
            if let Err(e) = self.sync_active() {
                self.shared
                    .poison(format!("fdatasync {}: {e}", path.display()));
                return self.fail_all(appends, self.poisoned());
            }
            self.last_sync = Instant::now();
        } else {
            self.dirty = true;
        }

        {
            let mut index = self.active.index.write();
            for (offset, position, len) in index_updates {
                index.on_batch(offset, position, len);
            }
        }
        self.end = SegmentEnd {
            position: start + self.buf.len() as u64,
            next_offset: offset,
        };
        self.active.set_end(self.end);
        self.shared.high_watermark.send_replace(offset);
        for ((batch, reply), appended) in appends.into_iter().zip(results) {
            self.shared
                .pending_bytes
                .fetch_sub(batch.len() as u64, Ordering::AcqRel);
            let _ = reply.send(Ok(appended));
        }
        if self.buf.capacity() > 4 * self.shared.config.max_group_bytes {
            self.buf = Vec::new();
        }
    }

    /// fdatasync of the active segment, timed.
    fn sync_active(&self) -> std::io::Result<()> {
        let started = Instant::now();
        let result = self.active.file.sync_data();
        if let Some(metrics) = self.shared.metrics.get() {
            metrics.fsync_took(started.elapsed());
        }
        result
    }

    /// Seals the active segment (data synced, index written) and starts a
    /// new one at the next offset.
    fn roll(&mut self) -> Result<()> {
        self.sync_active()
            .map_err(Error::io("fsync", &self.active.path))?;
        let old = &self.active;
        self.dirty = false;
        let ipath = index_path(&self.shared.dir, old.base_offset);
        let encoded = old.index.read().encode();
        write_atomic(&*self.shared.fs, &ipath, &encoded).map_err(Error::io("write", &ipath))?;
        let segment = Segment::create(
            &*self.shared.fs,
            &self.shared.dir,
            self.end.next_offset,
            &self.shared.config,
        )?;
        let segment = Arc::new(segment);
        self.shared
            .segments
            .write()
            .insert(segment.base_offset, Arc::clone(&segment));
        tracing::debug!(path = %segment.path.display(), "rolled to a new segment");
        self.end = segment.end();
        self.active = segment;
        Ok(())
    }

    fn sync_if_dirty(&mut self) {
        if self.dirty && self.shared.poisoned_error().is_none() {
            if let Err(e) = self.sync_active() {
                self.shared
                    .poison(format!("fdatasync {}: {e}", self.active.path.display()));
            }
            self.dirty = false;
            self.last_sync = Instant::now();
        }
    }

    fn persist(&mut self, mode: PersistMode) -> Result<()> {
        if let Some(e) = self.shared.poisoned_error() {
            return Err(e);
        }
        let file = &self.active.file;
        let result = match mode {
            PersistMode::Buffer => Ok(()),
            PersistMode::SyncData => self.sync_active(),
            PersistMode::SyncAll => file.sync_all(),
        };
        match result {
            Ok(()) => {
                if mode != PersistMode::Buffer {
                    self.dirty = false;
                    self.last_sync = Instant::now();
                }
                Ok(())
            }
            Err(e) => {
                self.shared
                    .poison(format!("fsync {}: {e}", self.active.path.display()));
                Err(self.poisoned()())
            }
        }
    }
}
