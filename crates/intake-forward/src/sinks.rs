//! The sinks of one stream: a worker per sink and partition that reads the
//! log from the sink's committed cursor, sends a batch, waits for the
//! broker's acknowledgement, commits the cursor, and on failure retries the
//! same batch with exponential backoff. Delivery is at least once: a crash
//! between the broker's ack and the cursor commit sends the batch again
//! (NATS drops it by `Nats-Msg-Id`; Kafka counts it as a duplicate).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use intake_format::api::{SinkDefinition, SinkPartitionStatus, SinkState, SinkStatus};
use intake_log::Partition;
use parking_lot::Mutex;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::{Broker, BrokerPosition};
use crate::clients::BrokerClients;
use crate::cursor::CursorFile;
use crate::error::ForwardError;

/// Records per send unless the sink says otherwise.
pub const DEFAULT_BATCH_RECORDS: usize = 1000;
/// Payload bytes per send, at most (at least one record is sent).
const BATCH_BYTES: usize = 4 << 20;
/// Backoff after a failed send: doubled from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_LAST: Duration = Duration::from_secs(10);
/// Broker positions kept per partition for `ack = "sink"` answers.
const RECENT_POSITIONS: usize = 65_536;

/// One sink's progress in one partition.
#[derive(Debug)]
struct PartitionProgress {
    cursor_file: CursorFile,
    /// The committed cursor; waiters for `ack = "sink"` watch it.
    committed: watch::Sender<u64>,
    /// Broker positions of recently forwarded records, by offset.
    recent: Mutex<VecDeque<(u64, BrokerPosition)>>,
}

/// One sink of a stream.
#[derive(Debug)]
struct Sink {
    definition: SinkDefinition,
    dir: PathBuf,
    partitions: Vec<PartitionProgress>,
    paused: AtomicBool,
    /// Wakes the workers on pause, resume and reset.
    control: Notify,
    sent: AtomicU64,
    errors: AtomicU64,
    skipped: AtomicU64,
    lag_limit_exceeded: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl Sink {
    fn paused_marker(&self) -> PathBuf {
        self.dir.join("paused")
    }

    fn commit(&self, partition: usize, offset: u64) {
        let progress = &self.partitions[partition];
        if let Err(e) = progress.cursor_file.store(offset) {
            // The cursor stays correct in memory; after a crash the batch
            // is sent again, which at-least-once allows.
            tracing::error!(sink = %self.definition.name, partition, error = %e, "cannot persist the sink cursor");
        }
        progress.committed.send_replace(offset);
    }
}

/// The running sinks of one stream.
#[derive(Debug)]
pub struct StreamSinks {
    stream: String,
    sinks: Vec<Arc<Sink>>,
    logs: Vec<Arc<Partition>>,
    stop: CancellationToken,
}

/// What the sinks of a node share: the broker clients (see
/// [`BrokerClients`]), the tracker their workers run on, and the node's id
/// (the prefix of message ids).
#[derive(Debug)]
pub struct SinkRuntime {
    /// Kafka producers and NATS connections.
    pub clients: BrokerClients,
    /// Where the workers run (waited for at shutdown).
    pub tasks: TaskTracker,
    /// `[cluster] node_id`, when set.
    pub node_id: Option<String>,
}

impl StreamSinks {
    /// Starts a worker per sink and partition on `tasks`, each resuming
    /// from its cursor under `dir/<sink>/` (a new sink starts at the oldest
    /// retained record). The workers stop when `stop` is cancelled.
    ///
    /// Sent records are identified as `STREAM/PARTITION/OFFSET`, or
    /// `NODE/STREAM/PARTITION/OFFSET` with a `node_id` (nodes of a cluster
    /// hold the same stream names, and a broker dropping duplicates by id
    /// must not drop one node's records as another's).
    ///
    /// # Errors
    /// A damaged cursor file, a sink kind this build lacks.
    pub async fn start(
        stream: &str,
        dir: &Path,
        definitions: &[SinkDefinition],
        logs: &[Arc<Partition>],
        runtime: &SinkRuntime,
        stop: CancellationToken,
    ) -> Result<Self, ForwardError> {
        let (node_id, tasks) = (runtime.node_id.as_deref(), &runtime.tasks);
        let mut sinks = Vec::with_capacity(definitions.len());
        let mut brokers = Vec::with_capacity(definitions.len());
        for def in definitions {
            let sink_dir = dir.join(&def.name);
            let mut partitions = Vec::with_capacity(logs.len());
            for (p, log) in logs.iter().enumerate() {
                let cursor_file = CursorFile::new(&sink_dir, p as u32)?;
                let start = cursor_file
                    .load()?
                    .unwrap_or_else(|| log.start_offset())
                    .clamp(log.start_offset(), log.next_offset());
                partitions.push(PartitionProgress {
                    cursor_file,
                    committed: watch::Sender::new(start),
                    recent: Mutex::new(VecDeque::new()),
                });
            }
            let sink = Sink {
                definition: def.clone(),
                paused: AtomicBool::new(sink_dir.join("paused").exists()),
                dir: sink_dir,
                partitions,
                control: Notify::new(),
                sent: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                skipped: AtomicU64::new(0),
                lag_limit_exceeded: AtomicBool::new(false),
                last_error: Mutex::new(None),
            };
            brokers.push(Arc::new(Broker::connect(def, &runtime.clients).await?));
            sinks.push(Arc::new(sink));
        }
        let source = match node_id {
            Some(node) => format!("{node}/{stream}"),
            None => stream.to_owned(),
        };
        for (sink, broker) in sinks.iter().zip(brokers) {
            for (p, log) in logs.iter().enumerate() {
                let worker = Worker {
                    source: source.clone(),
                    partition: p,
                    log: Arc::clone(log),
                    sink: Arc::clone(sink),
                    broker: Arc::clone(&broker),
                    stop: stop.clone(),
                };
                tasks.spawn(worker.run());
            }
        }
        Ok(Self {
            stream: stream.to_owned(),
            sinks,
            logs: logs.to_vec(),
            stop,
        })
    }

    /// Stops every worker (they finish the send in flight, uncommitted).
    pub fn stop(&self) {
        self.stop.cancel();
    }

    fn sink(&self, name: &str) -> Result<&Arc<Sink>, ForwardError> {
        self.sinks
            .iter()
            .find(|s| s.definition.name == name)
            .ok_or_else(|| ForwardError::SinkNotFound {
                name: name.to_owned(),
            })
    }

    /// Every sink's progress now.
    pub fn status(&self) -> Vec<SinkStatus> {
        self.sinks
            .iter()
            .map(|sink| {
                let partitions: Vec<SinkPartitionStatus> = self
                    .logs
                    .iter()
                    .enumerate()
                    .map(|(p, log)| {
                        let cursor = *sink.partitions[p].committed.borrow();
                        let next_offset = log.next_offset();
                        let lag_records = next_offset.saturating_sub(cursor);
                        SinkPartitionStatus {
                            partition: p as u32,
                            cursor,
                            next_offset,
                            lag_records,
                            lag_bytes: estimated_bytes(log, lag_records),
                        }
                    })
                    .collect();
                SinkStatus {
                    name: sink.definition.name.clone(),
                    kind: sink.definition.target.kind().to_owned(),
                    state: if sink.paused.load(Ordering::Acquire) {
                        SinkState::Paused
                    } else {
                        SinkState::Running
                    },
                    lag_records: partitions.iter().map(|p| p.lag_records).sum(),
                    lag_bytes: partitions.iter().map(|p| p.lag_bytes).sum(),
                    sent: sink.sent.load(Ordering::Relaxed),
                    errors: sink.errors.load(Ordering::Relaxed),
                    skipped_records: sink.skipped.load(Ordering::Relaxed),
                    lag_limit_exceeded: sink.lag_limit_exceeded.load(Ordering::Relaxed),
                    last_error: sink.last_error.lock().clone(),
                    partitions,
                }
            })
            .collect()
    }

    /// The oldest offset of `partition` that retention must keep: the
    /// lowest cursor among the sinks, leaving out (with a warning) a sink
    /// whose lag is over its `max_lag_bytes`.
    pub fn retention_floor(&self, partition: u32) -> Option<u64> {
        let log = self.logs.get(partition as usize)?;
        let mut floor: Option<u64> = None;
        for sink in &self.sinks {
            let cursor = *sink.partitions[partition as usize].committed.borrow();
            let lag_bytes = estimated_bytes(log, log.next_offset().saturating_sub(cursor));
            let over = sink
                .definition
                .max_lag_bytes
                .is_some_and(|max| lag_bytes > max);
            sink.lag_limit_exceeded.store(over, Ordering::Relaxed);
            if over {
                tracing::warn!(
                    stream = %self.stream, sink = %sink.definition.name, partition, lag_bytes,
                    max_lag_bytes = sink.definition.max_lag_bytes,
                    "sink is over its max_lag_bytes: retention may delete records it has not forwarded"
                );
                continue;
            }
            floor = Some(floor.map_or(cursor, |f| f.min(cursor)));
        }
        floor
    }

    /// Pauses a sink (kept across restarts); records wait in the log.
    ///
    /// # Errors
    /// [`ForwardError::SinkNotFound`], or the marker file cannot be made.
    pub fn pause(&self, name: &str) -> Result<(), ForwardError> {
        let sink = self.sink(name)?;
        let marker = sink.paused_marker();
        std::fs::write(&marker, b"").map_err(ForwardError::io("create", &marker))?;
        sink.paused.store(true, Ordering::Release);
        sink.control.notify_waiters();
        Ok(())
    }

    /// Resumes a paused sink.
    ///
    /// # Errors
    /// [`ForwardError::SinkNotFound`], or the marker file cannot be removed.
    pub fn resume(&self, name: &str) -> Result<(), ForwardError> {
        let sink = self.sink(name)?;
        let marker = sink.paused_marker();
        match std::fs::remove_file(&marker) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ForwardError::io("remove", &marker)(e)),
        }
        sink.paused.store(false, Ordering::Release);
        sink.control.notify_waiters();
        Ok(())
    }

    /// Moves a sink's cursor in every partition to `offset` (clamped to
    /// what each partition retains): forward again, or skip ahead. Pause
    /// the sink first so no batch in flight commits over it.
    ///
    /// # Errors
    /// [`ForwardError::SinkNotFound`].
    pub fn reset(&self, name: &str, offset: u64) -> Result<(), ForwardError> {
        let sink = self.sink(name)?;
        for (p, log) in self.logs.iter().enumerate() {
            let to = offset.clamp(log.start_offset(), log.next_offset());
            sink.commit(p, to);
        }
        sink.control.notify_waiters();
        tracing::info!(stream = %self.stream, sink = name, offset, "sink cursor reset");
        Ok(())
    }

    /// Waits until sink `name` has forwarded `partition` up to `through`
    /// (exclusive), for at most `timeout`; returns the broker positions of
    /// the offsets from `from` on that are still remembered.
    ///
    /// # Errors
    /// [`ForwardError::AckTimeout`], [`ForwardError::Stopped`],
    /// [`ForwardError::SinkNotFound`].
    pub async fn wait_forwarded(
        &self,
        name: &str,
        partition: u32,
        from: u64,
        through: u64,
        timeout: Duration,
    ) -> Result<Vec<(u64, BrokerPosition)>, ForwardError> {
        let sink = self.sink(name)?;
        let progress =
            sink.partitions
                .get(partition as usize)
                .ok_or_else(|| ForwardError::SinkNotFound {
                    name: format!("{name} (partition {partition})"),
                })?;
        let mut committed = progress.committed.subscribe();
        // The cursor's sender lives as long as these sinks, which the
        // waiting request holds: a stop (the stream deleted, the node
        // shutting down) ends the wait through the stop token instead.
        let reached = tokio::select! {
            reached = tokio::time::timeout(timeout, committed.wait_for(|c| *c >= through)) => reached,
            () = self.stop.cancelled() => {
                return Err(ForwardError::Stopped {
                    sink: name.to_owned(),
                });
            }
        };
        match reached {
            Err(_) => {
                return Err(ForwardError::AckTimeout {
                    sink: name.to_owned(),
                    waited: timeout,
                });
            }
            Ok(Err(_)) => {
                return Err(ForwardError::Stopped {
                    sink: name.to_owned(),
                });
            }
            Ok(Ok(_)) => {}
        }
        let recent = progress.recent.lock();
        Ok(recent
            .iter()
            .filter(|(o, _)| (from..through).contains(o))
            .cloned()
            .collect())
    }
}

/// `records` of `log`'s size on disk, from its average record size.
fn estimated_bytes(log: &Partition, records: u64) -> u64 {
    let stored = log.next_offset().saturating_sub(log.start_offset());
    if stored == 0 || records == 0 {
        return 0;
    }
    let per_record = log.size_bytes() as f64 / stored as f64;
    (per_record * records as f64) as u64
}

/// Forwards one partition to one sink.
struct Worker {
    /// `[NODE/]STREAM`: the stream, as sent records name it.
    source: String,
    partition: usize,
    log: Arc<Partition>,
    sink: Arc<Sink>,
    broker: Arc<Broker>,
    stop: CancellationToken,
}

impl Worker {
    async fn run(self) {
        let mut appended = self.log.subscribe();
        let mut backoff = BACKOFF_FIRST;
        let batch_records = self
            .sink
            .definition
            .batch_records
            .unwrap_or(DEFAULT_BATCH_RECORDS)
            .max(1);
        let name = self.sink.definition.name.clone();
        let progress = &self.sink.partitions[self.partition];
        loop {
            if self.stop.is_cancelled() {
                return;
            }
            let control = self.sink.control.notified();
            tokio::pin!(control);
            control.as_mut().enable();
            let cursor = *progress.committed.borrow();
            if self.sink.paused.load(Ordering::Acquire) || cursor >= self.log.next_offset() {
                tokio::select! {
                    () = self.stop.cancelled() => return,
                    () = &mut control => {}
                    changed = appended.changed() => if changed.is_err() { return },
                }
                continue;
            }
            let batch = match self.log.read(cursor, batch_records, BATCH_BYTES) {
                Ok(batch) => batch,
                Err(intake_log::Error::OffsetOutOfRange { earliest, .. }) if cursor < earliest => {
                    let skipped = earliest - cursor;
                    self.sink.skipped.fetch_add(skipped, Ordering::Relaxed);
                    tracing::error!(
                        stream = %self.source, sink = %name, partition = self.partition,
                        from = cursor, to = earliest, skipped,
                        "retention deleted records this sink had not forwarded (max_lag_bytes); skipping them"
                    );
                    self.sink.commit(self.partition, earliest);
                    continue;
                }
                Err(e) => {
                    self.failed(&name, &e.to_string());
                    if self.pause(&mut backoff).await {
                        return;
                    }
                    continue;
                }
            };
            let sent = tokio::select! {
                () = self.stop.cancelled() => return,
                sent = self.broker.send(&self.source, self.partition as u32, &batch.records) => sent,
            };
            match sent {
                Ok(deliveries) => {
                    // A reset while the batch was in flight wins.
                    if *progress.committed.borrow() != cursor {
                        continue;
                    }
                    {
                        let mut recent = progress.recent.lock();
                        for d in deliveries {
                            if recent.len() == RECENT_POSITIONS {
                                recent.pop_front();
                            }
                            recent.push_back((d.offset, d.position));
                        }
                    }
                    self.sink
                        .sent
                        .fetch_add(batch.records.len() as u64, Ordering::Relaxed);
                    self.sink.commit(self.partition, batch.next_offset);
                    *self.sink.last_error.lock() = None;
                    backoff = BACKOFF_FIRST;
                }
                Err(e) => {
                    self.failed(&name, &e.0);
                    if self.pause(&mut backoff).await {
                        return;
                    }
                }
            }
        }
    }

    fn failed(&self, name: &str, error: &str) {
        self.sink.errors.fetch_add(1, Ordering::Relaxed);
        *self.sink.last_error.lock() = Some(error.to_owned());
        tracing::warn!(stream = %self.source, sink = name, partition = self.partition, error, "send failed; retrying");
    }

    /// Sleeps `backoff` (cut short when a lost broker connection comes
    /// back) and doubles it; true when the worker must stop.
    async fn pause(&self, backoff: &mut Duration) -> bool {
        let wait = *backoff;
        *backoff = (*backoff * 2).min(BACKOFF_LAST);
        tokio::select! {
            () = self.stop.cancelled() => true,
            () = tokio::time::sleep(wait) => false,
            () = self.broker.reconnected() => false,
        }
    }
}
