//! The sinks of one stream: a worker per sink and partition reads the log
//! from the sink's cursor and keeps several batches in flight to the
//! broker (bounded by count and bytes); acknowledgements commit the cursor
//! in order, and the cursor file is written behind them.
//!
//! Delivery is exactly once. Each committed cursor carries a fence (see
//! [`crate::cursor::Fence`]): where on the broker anything sent past the
//! cursor can be. When a worker starts, and after any failed send, it
//! reads back from the fence to the broker's end, collects the ids of its
//! own records there, and skips those instead of sending them again.
//! Batches that failed are sent again only once every batch in flight has
//! settled, so nothing still on its way is missed by the read-back.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use intake_format::api::{SinkDefinition, SinkPartitionStatus, SinkState, SinkStatus};
use intake_log::Partition;
use parking_lot::Mutex;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::{Broker, BrokerPosition, Delivery};
use crate::clients::BrokerClients;
use crate::cursor::{Cursor, CursorFile, Fence};
use crate::error::{ForwardError, SendError};

/// Records per send unless the sink says otherwise.
pub const DEFAULT_BATCH_RECORDS: usize = 1000;
/// Batches in flight per partition unless the sink says otherwise.
pub const DEFAULT_IN_FLIGHT_BATCHES: usize = 8;
/// Payload bytes in flight per partition unless the sink says otherwise.
pub const DEFAULT_IN_FLIGHT_BYTES: u64 = 16 << 20;
/// Payload bytes per send, at most (at least one record is sent).
const BATCH_BYTES: usize = 4 << 20;
/// Backoff after a failed send: doubled from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_LAST: Duration = Duration::from_secs(10);
/// How often a partition's cursor file is written while the sink sends:
/// each write costs two fsyncs, which would otherwise hold up every
/// acknowledgement (and the log's own writes).
const CURSOR_WRITE_INTERVAL: Duration = Duration::from_secs(1);
/// Cursor files written at once, process-wide: each write holds a
/// blocking thread for two fsyncs, and thousands of sink partitions
/// starting together must not each take one.
static CURSOR_WRITES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);
/// How long a stopping worker lets its batches in flight settle.
const STOP_SETTLE: Duration = Duration::from_secs(5);
/// Broker positions kept per partition for `ack = "sink"` answers.
const RECENT_POSITIONS: usize = 65_536;

/// One sink's progress in one partition.
#[derive(Debug)]
struct PartitionProgress {
    writer: Arc<CursorWriter>,
    /// The committed cursor (acknowledged by the broker; its file is
    /// written behind it); waiters for `ack = "sink"` watch it.
    committed: watch::Sender<u64>,
    /// Bumped by every reset: the worker drops what it has in flight and
    /// starts over from the new cursor with a new fence.
    resets: AtomicU64,
    /// Broker positions of recently forwarded records, by offset.
    recent: Mutex<VecDeque<(u64, BrokerPosition)>>,
}

/// Writes one partition's cursor file off the async workers: one write at
/// a time, and the newest cursor wins over those still waiting.
#[derive(Debug)]
struct CursorWriter {
    file: CursorFile,
    /// The cursor waiting to be written behind the worker.
    latest: Mutex<Option<Cursor>>,
    /// True while a background writer runs (it writes, then waits out the
    /// interval before looking at `latest` again).
    scheduled: AtomicBool,
    /// Held for each write, so an older cursor never lands over a newer.
    writing: Mutex<()>,
    tasks: TaskTracker,
}

impl CursorWriter {
    /// Writes `cursor` now and returns once it is durable; a cursor
    /// waiting to be written behind is dropped (this one is newer).
    async fn store_now(self: &Arc<Self>, cursor: Cursor) -> Result<(), ForwardError> {
        let _turn = CURSOR_WRITES.acquire().await;
        let this = Arc::clone(self);
        self.tasks
            .spawn_blocking(move || this.store_blocking(&cursor))
            .await
            .unwrap_or_else(|e| {
                Err(ForwardError::io("write", self.file.path())(
                    std::io::Error::other(e.to_string()),
                ))
            })
    }

    /// Writes `cursor` now, on this thread.
    fn store_blocking(&self, cursor: &Cursor) -> Result<(), ForwardError> {
        let _turn = self.writing.lock();
        self.latest.lock().take();
        self.file.store(cursor)
    }

    /// Writes `cursor` in the background, unless a newer one comes first;
    /// at most one write per [`CURSOR_WRITE_INTERVAL`]. The file may trail
    /// the broker's acknowledgements: after a crash the read-back finds
    /// what was acknowledged and not yet written here.
    fn store_soon(self: &Arc<Self>, cursor: Cursor) {
        *self.latest.lock() = Some(cursor);
        if self.scheduled.swap(true, Ordering::AcqRel) {
            return; // the running writer takes the newest in its turn
        }
        let this = Arc::clone(self);
        // Not on the tracker: shutdown need not sit out the interval (the
        // worker writes its cursor as it stops, and writes are tracked).
        tokio::spawn(async move {
            loop {
                let turn = CURSOR_WRITES.acquire().await;
                let writer = Arc::clone(&this);
                let wrote = this
                    .tasks
                    .spawn_blocking(move || {
                        // Taken under the lock, so a cursor written now
                        // (a reset, a stop) is never followed by an older.
                        let _turn = writer.writing.lock();
                        let Some(cursor) = writer.latest.lock().take() else {
                            return Ok(false);
                        };
                        writer.file.store(&cursor).map(|()| true)
                    })
                    .await;
                drop(turn);
                match wrote {
                    Ok(Ok(true)) => {}
                    Ok(Ok(false)) | Err(_) => {
                        this.scheduled.store(false, Ordering::Release);
                        // A cursor that came after the look and before the
                        // flag was cleared would wait for the next commit;
                        // take it now.
                        if this.latest.lock().is_some()
                            && !this.scheduled.swap(true, Ordering::AcqRel)
                        {
                            continue;
                        }
                        return;
                    }
                    Ok(Err(e)) => {
                        // The cursor stays right in memory; after a crash
                        // an older cursor costs a longer read-back.
                        tracing::error!(error = %e, "cannot persist the sink cursor");
                    }
                }
                tokio::time::sleep(CURSOR_WRITE_INTERVAL).await;
            }
        });
    }
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
}

/// The running sinks of one stream.
#[derive(Debug)]
pub struct StreamSinks {
    stream: String,
    sinks: Vec<Arc<Sink>>,
    logs: Vec<Arc<Partition>>,
    stop: CancellationToken,
    /// This stream's workers, for [`StreamSinks::stopped`].
    workers: TaskTracker,
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
        let mut fences = Vec::with_capacity(definitions.len());
        for def in definitions {
            let sink_dir = dir.join(&def.name);
            let mut partitions = Vec::with_capacity(logs.len());
            let mut sink_fences = Vec::with_capacity(logs.len());
            for (p, log) in logs.iter().enumerate() {
                let file = CursorFile::new(&sink_dir, p as u32)?;
                let stored = file.load()?;
                if stored.as_ref().is_some_and(|c| c.fence.is_none()) {
                    tracing::info!(stream, sink = %def.name, partition = p,
                        "sink cursor has no fence (written by an older intake or by a reset): what was in flight before may be sent again, once");
                }
                let start = stored
                    .as_ref()
                    .map_or_else(|| log.start_offset(), |c| c.offset)
                    .clamp(log.start_offset(), log.next_offset());
                sink_fences.push(stored.and_then(|c| c.fence));
                partitions.push(PartitionProgress {
                    writer: Arc::new(CursorWriter {
                        file,
                        latest: Mutex::new(None),
                        scheduled: AtomicBool::new(false),
                        writing: Mutex::new(()),
                        tasks: tasks.clone(),
                    }),
                    committed: watch::Sender::new(start),
                    resets: AtomicU64::new(0),
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
            fences.push(sink_fences);
        }
        let workers = TaskTracker::new();
        let source = match node_id {
            Some(node) => format!("{node}/{stream}"),
            None => stream.to_owned(),
        };
        for ((sink, broker), sink_fences) in sinks.iter().zip(brokers).zip(fences) {
            for ((p, log), fence) in logs.iter().enumerate().zip(sink_fences) {
                let worker = Worker {
                    source: source.clone(),
                    id_prefix: format!("{source}/{p}/"),
                    partition: p,
                    log: Arc::clone(log),
                    sink: Arc::clone(sink),
                    broker: Arc::clone(&broker),
                    stop: stop.clone(),
                };
                tasks.spawn(workers.track_future(worker.run(fence)));
            }
        }
        Ok(Self {
            stream: stream.to_owned(),
            sinks,
            logs: logs.to_vec(),
            stop,
            workers,
        })
    }

    /// Tells every worker to stop; see [`StreamSinks::stopped`].
    pub fn stop(&self) {
        self.stop.cancel();
        self.workers.close();
    }

    /// Resolves once every worker stopped (after [`StreamSinks::stop`]):
    /// each lets its batches in flight settle (for a few seconds at most),
    /// commits what was acknowledged and writes its cursor, so that sinks
    /// started next on the same cursors (a new definition) neither send
    /// those again nor race the files.
    pub async fn stopped(&self) {
        self.workers.wait().await;
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
    /// what each partition retains): forward again (records already at
    /// the broker are sent again: a reset is an operator's choice), or
    /// skip ahead. Batches in flight are dropped uncommitted.
    ///
    /// # Errors
    /// [`ForwardError::SinkNotFound`].
    pub fn reset(&self, name: &str, offset: u64) -> Result<(), ForwardError> {
        let sink = self.sink(name)?;
        for (progress, log) in sink.partitions.iter().zip(&self.logs) {
            let to = offset.clamp(log.start_offset(), log.next_offset());
            // Without a fence: what follows is sent again, not read back.
            progress.writer.store_blocking(&Cursor {
                offset: to,
                fence: None,
            })?;
            // Under the watch's lock, as commits check the count, so that
            // no commit lands over the reset.
            progress.committed.send_modify(|cursor| {
                progress.resets.fetch_add(1, Ordering::AcqRel);
                *cursor = to;
            });
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

/// Bounds of one worker, from its sink's definition.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Most records per batch.
    records: usize,
    /// Most batches in flight.
    batches: usize,
    /// Most payload bytes in flight (one batch always goes).
    bytes: u64,
}

impl Limits {
    fn of(def: &SinkDefinition) -> Self {
        Self {
            records: def.batch_records.unwrap_or(DEFAULT_BATCH_RECORDS).max(1),
            batches: def
                .max_in_flight_batches
                .unwrap_or(DEFAULT_IN_FLIGHT_BATCHES)
                .max(1),
            bytes: def.max_in_flight_bytes.unwrap_or(DEFAULT_IN_FLIGHT_BYTES),
        }
    }
}

/// A batch handed to the broker: resolves to where the next batch starts,
/// the batch's payload bytes, and its deliveries or first failure.
type InFlight = BoxFuture<'static, (u64, u64, Result<Vec<Delivery>, SendError>)>;

/// Where a worker stands between its committed cursor and what it sent.
struct Flow {
    /// The offset the next batch is read from.
    send_from: u64,
    /// Past every committed record's broker position, and at least the
    /// broker's end when the flow began.
    fence: Fence,
    /// Records past the committed cursor that a read-back found at the
    /// broker: committed in their turn, not sent again.
    found: BTreeMap<u64, BrokerPosition>,
    /// Batches handed to the broker, in offset order.
    in_flight: FuturesOrdered<InFlight>,
    /// Payload bytes of the batches in flight.
    in_flight_bytes: u64,
    /// The partition's reset count when the flow began.
    resets: u64,
    /// Set when the client refused a batch outright: nothing more is
    /// handed over until the flow starts over.
    halted: bool,
}

impl Flow {
    /// The cursor to store for `committed`: the fence, lowered to every
    /// found record not committed yet, so that a later read-back finds it
    /// again.
    fn cursor(&self, committed: u64) -> Cursor {
        let mut fence = self.fence.clone();
        for position in self.found.values() {
            let (partition, past) = position.past();
            let at = past.saturating_sub(1);
            fence
                .entry(partition)
                .and_modify(|f| *f = (*f).min(at))
                .or_insert(at);
        }
        Cursor {
            offset: committed,
            fence: Some(fence),
        }
    }
}

/// Forwards one partition to one sink.
struct Worker {
    /// `[NODE/]STREAM`: the stream, as sent records name it.
    source: String,
    /// `[NODE/]STREAM/PARTITION/`: how this partition's record ids begin.
    id_prefix: String,
    partition: usize,
    log: Arc<Partition>,
    sink: Arc<Sink>,
    broker: Arc<Broker>,
    stop: CancellationToken,
}

impl Worker {
    /// Forwards from the committed cursor, whose stored fence is `fence`,
    /// until stopped.
    async fn run(self, fence: Option<Fence>) {
        let mut appended = self.log.subscribe();
        let mut backoff = BACKOFF_FIRST;
        let limits = Limits::of(&self.sink.definition);
        let progress = &self.sink.partitions[self.partition];
        let Some(mut flow) = self.begin(fence, &mut backoff).await else {
            return;
        };
        loop {
            if self.stop.is_cancelled() {
                break;
            }
            let control = self.sink.control.notified();
            tokio::pin!(control);
            control.as_mut().enable();
            if progress.resets.load(Ordering::Acquire) != flow.resets {
                // What was in flight settles uncommitted first, so that it
                // cannot land past the new fence; then the records from the
                // reset cursor are sent afresh.
                if !self.settle(&mut flow).await {
                    return;
                }
                let Some(next) = self.begin(None, &mut backoff).await else {
                    return;
                };
                flow = next;
                continue;
            }
            if let Err(e) = self.fill(&mut flow, limits).await {
                self.failed(&e);
                if self.back_off(&mut backoff).await {
                    break;
                }
                continue;
            }
            tokio::select! {
                () = self.stop.cancelled() => break,
                settled = flow.in_flight.next(), if !flow.in_flight.is_empty() => {
                    let Some((next_offset, bytes, result)) = settled else { continue };
                    flow.in_flight_bytes -= bytes;
                    match result {
                        Ok(deliveries) => {
                            if self.commit(&mut flow, next_offset, deliveries) {
                                *self.sink.last_error.lock() = None;
                                backoff = BACKOFF_FIRST;
                            }
                        }
                        Err(e) => {
                            self.failed(&e.0);
                            let Some(next) = self.start_over(flow, &mut backoff).await else {
                                return;
                            };
                            flow = next;
                        }
                    }
                }
                () = &mut control => {}
                changed = appended.changed() => if changed.is_err() { break },
            }
        }
        self.wind_down(flow).await;
    }

    /// On stop: lets the batches in flight settle for a few seconds,
    /// commits those acknowledged in order, and writes the cursor now (it
    /// trails while sending), so that whatever starts next on this cursor
    /// has little to read back and nothing of ours still on its way.
    async fn wind_down(&self, mut flow: Flow) {
        let progress = &self.sink.partitions[self.partition];
        let deadline = tokio::time::Instant::now() + STOP_SETTLE;
        while let Ok(Some((next_offset, _, result))) =
            tokio::time::timeout_at(deadline, flow.in_flight.next()).await
        {
            match result {
                Ok(deliveries) => {
                    self.commit(&mut flow, next_offset, deliveries);
                }
                Err(_) => break,
            }
        }
        if progress.resets.load(Ordering::Acquire) != flow.resets {
            return; // the reset wrote its cursor
        }
        let cursor = flow.cursor(*progress.committed.borrow());
        drop(flow);
        if let Err(e) = progress.writer.store_now(cursor).await {
            // A deleted stream takes its cursor files with it.
            tracing::debug!(stream = %self.source, partition = self.partition, error = %e, "sink cursor not written at stop");
        }
    }

    /// Waits until every batch in flight settled; false when the worker
    /// must stop first.
    async fn settle(&self, flow: &mut Flow) -> bool {
        let settled = async { while flow.in_flight.next().await.is_some() {} };
        tokio::select! {
            () = self.stop.cancelled() => false,
            () = settled => true,
        }
    }

    /// Finds where the broker stands before sending: its end now (the new
    /// fence) and, when the committed cursor has a fence, which records
    /// past the cursor are there already (read back from that fence).
    /// Stores the cursor with the new fence before anything is sent, and
    /// retries until all of this succeeds; `None` once the worker must stop.
    async fn begin(&self, from: Option<Fence>, backoff: &mut Duration) -> Option<Flow> {
        let progress = &self.sink.partitions[self.partition];
        loop {
            let resets = progress.resets.load(Ordering::Acquire);
            let committed = *progress.committed.borrow();
            let look = async {
                let to = self.broker.end().await?;
                let found = match &from {
                    Some(from) => self.broker.read_back(&self.id_prefix, from, &to).await?,
                    None => Vec::new(),
                };
                tracing::debug!(
                    stream = %self.source, sink = %self.sink.definition.name, partition = self.partition,
                    committed, ?from, ?to, found = found.len(), "read back the broker before sending"
                );
                Ok::<_, SendError>((to, found))
            };
            let looked = tokio::select! {
                () = self.stop.cancelled() => return None,
                looked = look => looked,
            };
            if progress.resets.load(Ordering::Acquire) != resets {
                // A reset meanwhile: what was found may be from before it.
                return Box::pin(self.begin(None, backoff)).await;
            }
            let error = match looked {
                Ok((fence, found)) => {
                    let found: BTreeMap<u64, BrokerPosition> = found
                        .into_iter()
                        .filter(|d| d.offset >= committed)
                        .map(|d| (d.offset, d.position))
                        .collect();
                    if !found.is_empty() {
                        tracing::info!(
                            stream = %self.source, sink = %self.sink.definition.name,
                            partition = self.partition, records = found.len(), from = committed,
                            "records sent before were found at the broker; they are not sent again"
                        );
                    }
                    let flow = Flow {
                        send_from: committed,
                        fence,
                        found,
                        in_flight: FuturesOrdered::new(),
                        in_flight_bytes: 0,
                        resets,
                        halted: false,
                    };
                    match progress.writer.store_now(flow.cursor(committed)).await {
                        Ok(()) => return Some(flow),
                        Err(e) => e.to_string(),
                    }
                }
                Err(e) => e.0,
            };
            self.failed(&error);
            if self.back_off(backoff).await {
                return None;
            }
        }
    }

    /// After a failed batch: lets every batch still in flight settle (the
    /// read-back must see all of them), waits out the backoff, and begins
    /// again from the committed cursor.
    async fn start_over(&self, mut flow: Flow, backoff: &mut Duration) -> Option<Flow> {
        if !self.settle(&mut flow).await {
            return None;
        }
        if self.back_off(backoff).await {
            return None;
        }
        let committed = *self.sink.partitions[self.partition].committed.borrow();
        self.begin(flow.cursor(committed).fence, backoff).await
    }

    /// Hands batches to the broker while records wait and the bounds
    /// allow. With batches in flight, a batch smaller than the limit waits
    /// for an acknowledgement or for more records: batches fill while the
    /// broker is behind, and go at once when it is idle.
    async fn fill(&self, flow: &mut Flow, limits: Limits) -> Result<(), String> {
        loop {
            if flow.halted || self.sink.paused.load(Ordering::Acquire) || self.stop.is_cancelled() {
                return Ok(());
            }
            let waiting = self.log.next_offset().saturating_sub(flow.send_from);
            let busy = !flow.in_flight.is_empty();
            if waiting == 0
                || flow.in_flight.len() >= limits.batches
                || (busy && flow.in_flight_bytes >= limits.bytes)
                || (busy && waiting < limits.records as u64)
            {
                return Ok(());
            }
            let batch = match self.log.read(flow.send_from, limits.records, BATCH_BYTES) {
                Ok(batch) => batch,
                Err(intake_log::Error::OffsetOutOfRange { earliest, .. })
                    if flow.send_from < earliest =>
                {
                    if busy {
                        return Ok(()); // skipped once what is in flight is committed
                    }
                    let skipped = earliest - flow.send_from;
                    self.sink.skipped.fetch_add(skipped, Ordering::Relaxed);
                    tracing::error!(
                        stream = %self.source, sink = %self.sink.definition.name, partition = self.partition,
                        from = flow.send_from, to = earliest, skipped,
                        "retention deleted records this sink had not forwarded (max_lag_bytes); skipping them"
                    );
                    self.commit(flow, earliest, Vec::new());
                    flow.send_from = earliest;
                    continue;
                }
                // Counted as a failed send and retried after the backoff.
                Err(e) => return Err(e.to_string()),
            };
            let bytes = batch
                .records
                .iter()
                .map(|r| r.payload_len() as u64)
                .sum::<u64>();
            let next_offset = batch.next_offset;
            let (records, found) = self.split_found(flow, batch.records, next_offset);
            let pending = if records.is_empty() {
                None
            } else {
                let handed = tokio::select! {
                    () = self.stop.cancelled() => return Ok(()),
                    handed = self.broker.publish(&self.id_prefix, self.partition as u32, &records) => handed,
                };
                // A refused record fails its batch; batches after it would
                // only go out of order.
                flow.halted = handed.refused;
                Some(handed.settled)
            };
            // The acknowledgements are awaited on a task of their own, so
            // they settle (and free the client's ack permits) even while
            // this worker waits to hand over the next batch.
            let settled = tokio::spawn(async move {
                match pending {
                    None => Ok(found),
                    Some(pending) => pending.await.map(|mut sent| {
                        sent.extend(found);
                        sent
                    }),
                }
            });
            flow.in_flight.push_back(Box::pin(async move {
                let result = settled
                    .await
                    .unwrap_or_else(|e| Err(SendError(format!("a send task failed: {e}"))));
                (next_offset, bytes, result)
            }));
            flow.in_flight_bytes += bytes;
            flow.send_from = next_offset;
        }
    }

    /// Splits a batch into the records to send and, as deliveries, those a
    /// read-back found at the broker already.
    fn split_found(
        &self,
        flow: &Flow,
        records: Vec<intake_log::Record>,
        next_offset: u64,
    ) -> (Vec<intake_log::Record>, Vec<Delivery>) {
        let first = records.first().map_or(next_offset, |r| r.offset);
        if flow.found.range(first..next_offset).next().is_none() {
            return (records, Vec::new());
        }
        let mut found = Vec::new();
        let mut to_send = Vec::with_capacity(records.len());
        for record in records {
            match flow.found.get(&record.offset) {
                Some(position) => found.push(Delivery {
                    offset: record.offset,
                    position: position.clone(),
                }),
                None => to_send.push(record),
            }
        }
        (to_send, found)
    }

    /// Commits everything before `next_offset`, which the broker
    /// acknowledged (`deliveries`): the cursor moves in memory at once, and
    /// its file is written behind. False (nothing committed) when a reset
    /// came since the flow began.
    fn commit(&self, flow: &mut Flow, next_offset: u64, deliveries: Vec<Delivery>) -> bool {
        let progress = &self.sink.partitions[self.partition];
        // Checked under the watch's lock, which a reset holds to count.
        let committed = progress.committed.send_if_modified(|cursor| {
            let current = progress.resets.load(Ordering::Acquire) == flow.resets;
            if current {
                *cursor = next_offset;
            }
            current
        });
        if !committed {
            return false;
        }
        for d in &deliveries {
            let (partition, past) = d.position.past();
            let at = flow.fence.entry(partition).or_insert(past);
            *at = (*at).max(past);
        }
        // `sent` counts what this sink handed over, not what a read-back
        // found at the broker already.
        let found_here = flow.found.range(..next_offset).count();
        flow.found = flow.found.split_off(&next_offset);
        self.sink.sent.fetch_add(
            deliveries.len().saturating_sub(found_here) as u64,
            Ordering::Relaxed,
        );
        {
            let mut recent = progress.recent.lock();
            for d in deliveries {
                if recent.len() == RECENT_POSITIONS {
                    recent.pop_front();
                }
                recent.push_back((d.offset, d.position));
            }
        }
        progress.writer.store_soon(flow.cursor(next_offset));
        true
    }

    fn failed(&self, error: &str) {
        self.sink.errors.fetch_add(1, Ordering::Relaxed);
        *self.sink.last_error.lock() = Some(error.to_owned());
        tracing::warn!(stream = %self.source, sink = %self.sink.definition.name, partition = self.partition, error, "send failed; retrying");
    }

    /// Sleeps `backoff` (cut short when a lost broker connection comes
    /// back) and doubles it; true when the worker must stop.
    async fn back_off(&self, backoff: &mut Duration) -> bool {
        let wait = *backoff;
        *backoff = (*backoff * 2).min(BACKOFF_LAST);
        tokio::select! {
            () = self.stop.cancelled() => true,
            () = tokio::time::sleep(wait) => false,
            () = self.broker.reconnected() => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka(partition: i32, offset: i64) -> BrokerPosition {
        BrokerPosition::Kafka {
            topic: "t".into(),
            partition,
            offset,
            sent_at_ms: 0,
        }
    }

    #[test]
    fn a_stored_fence_stays_below_every_found_record_not_yet_committed() {
        let mut flow = Flow {
            send_from: 10,
            fence: Fence::from([(0, 100), (1, 50)]),
            found: BTreeMap::from([(12, kafka(0, 40)), (13, kafka(2, 7)), (20, kafka(1, 60))]),
            in_flight: FuturesOrdered::new(),
            in_flight_bytes: 0,
            resets: 0,
            halted: false,
        };
        let cursor = flow.cursor(10);
        assert_eq!(cursor.offset, 10);
        // Found at 0/40 (below the fence there) and 2/7 (no fence yet):
        // the read-back must start at them; 1/60 is past the fence already.
        assert_eq!(cursor.fence, Some(Fence::from([(0, 40), (1, 50), (2, 7)])));
        // Once those are committed, the fence is the committed one again.
        flow.found = flow.found.split_off(&14);
        assert_eq!(
            flow.cursor(14).fence,
            Some(Fence::from([(0, 100), (1, 50)]))
        );
    }

    #[test]
    fn a_position_is_fenced_just_past_itself() {
        assert_eq!(kafka(3, 41).past(), (3, 42));
        let nats = BrokerPosition::Nats {
            stream: "S".into(),
            sequence: 9,
            duplicate: false,
        };
        assert_eq!(nats.past(), (0, 10));
        assert_eq!(
            crate::broker::offset_in_id(b"node/orders/2/17", "node/orders/2/"),
            Some(17)
        );
        assert_eq!(
            crate::broker::offset_in_id(b"node/orders/21/17", "node/orders/2/"),
            None
        );
        assert_eq!(
            crate::broker::offset_in_id(b"orders/2/x", "orders/2/"),
            None
        );
    }
}
