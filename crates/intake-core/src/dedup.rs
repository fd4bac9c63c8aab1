//! Exactly-once push: the table of request keys a stream has seen.
//!
//! A request may carry an `Idempotency-Key` or a producer id and sequence
//! ([`RequestKey`]). Its batches then carry a request tag (opaque to the
//! log, laid out below) in the same write, CRC and fsync as its records,
//! so the table is rebuilt from the log after any stop, kill -9 included.
//! A request seen before, with the same fingerprint (a hash of everything
//! that decides its records), is answered from the table and writes
//! nothing; a request spread over partitions whose earlier attempt wrote
//! some of them writes only the others.
//!
//! # Request tag (intake-core's layout of the log's opaque tag)
//!
//! ```text
//! u8      kind: 1 = Idempotency-Key, 2 = producer sequence
//! varint  length, then the key (kind 1) or the producer id (kind 2)
//! u64 LE  sequence (kind 2 only)
//! 16      request fingerprint
//! i64 LE  when the request arrived, ms since the epoch
//! i64 LE  when this attempt wrote its batches (just before their fsync):
//!         the "durable at" time of the answer, so a replay repeats it
//! varint  n, then n varints: every partition the request writes, ascending
//! when n > 1:
//!   varint  records of this batch, then one varint each: the record's
//!           position in the request (so its answer can be rebuilt)
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use intake_log::Partition;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::ingest::{IngestOutcome, IngestRequest, Items};
use intake_format::api::PartitionOffsets;

/// Longest `Idempotency-Key`, in characters.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;
/// Longest `Intake-Producer-Id`, in characters.
pub const MAX_PRODUCER_ID_LEN: usize = 64;

const KIND_IDEMPOTENCY: u8 = 1;
const KIND_PRODUCER: u8 = 2;

/// What makes a request exactly-once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestKey {
    /// An `Idempotency-Key` header.
    Idempotency(String),
    /// A producer's `Intake-Producer-Id` and `Intake-Sequence`.
    Producer {
        /// The client-chosen producer id.
        id: String,
        /// Its sequence: +1 per request, per producer and stream.
        sequence: u64,
    },
}

impl RequestKey {
    /// An `Idempotency-Key`: 1 to 255 visible ASCII characters.
    ///
    /// # Errors
    /// [`Error::InvalidIdempotencyKey`] saying what is accepted.
    pub fn idempotency(key: &[u8]) -> Result<Self> {
        let text = visible_ascii(key, MAX_IDEMPOTENCY_KEY_LEN, "Idempotency-Key")?;
        Ok(Self::Idempotency(text))
    }

    /// A producer id (1 to 64 visible ASCII characters) and a sequence (a
    /// decimal u64).
    ///
    /// # Errors
    /// [`Error::InvalidIdempotencyKey`] saying what is accepted.
    pub fn producer(id: &[u8], sequence: &[u8]) -> Result<Self> {
        let id = visible_ascii(id, MAX_PRODUCER_ID_LEN, "Intake-Producer-Id")?;
        let sequence = std::str::from_utf8(sequence)
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| Error::InvalidIdempotencyKey {
                reason: "Intake-Sequence must be a decimal number from 0 to 18446744073709551615"
                    .into(),
            })?;
        Ok(Self::Producer { id, sequence })
    }

    /// The key as a client would recognise it, for messages.
    fn describe(&self) -> String {
        match self {
            Self::Idempotency(key) => format!("Idempotency-Key {key:?}"),
            Self::Producer { id, sequence } => format!("producer {id:?} sequence {sequence}"),
        }
    }

    /// A 128-bit digest naming the key in the table.
    pub(crate) fn id(&self) -> KeyId {
        let mut hash = Sha256::new();
        match self {
            Self::Idempotency(key) => {
                hash.update([KIND_IDEMPOTENCY]);
                hash.update(key.as_bytes());
            }
            Self::Producer { id, sequence } => {
                hash.update([KIND_PRODUCER]);
                hash.update((id.len() as u64).to_le_bytes());
                hash.update(id.as_bytes());
                hash.update(sequence.to_le_bytes());
            }
        }
        first_16(&hash.finalize())
    }
}

/// The `dedup_window` of a definition (checked by
/// [`crate::normalize_definition`]; the default if it does not parse).
pub(crate) fn window_of(def: &intake_format::api::StreamDefinition) -> Duration {
    parse_window(&def.dedup_window).unwrap_or(Duration::from_secs(24 * 3600))
}

/// Parses a `dedup_window` such as `24h`; at least 1 s.
pub(crate) fn parse_window(text: &str) -> std::result::Result<Duration, String> {
    let window = humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration such as \"24h\" or \"90m\": {e}"))?;
    if window < Duration::from_secs(1) {
        return Err(format!("{text:?} is shorter than the 1s minimum"));
    }
    if window > Duration::from_secs(365 * 24 * 3600) {
        return Err(format!("{text:?} is longer than the 365d maximum"));
    }
    Ok(window)
}

fn visible_ascii(bytes: &[u8], max: usize, what: &str) -> Result<String> {
    if bytes.is_empty() || bytes.len() > max || !bytes.iter().all(|b| b.is_ascii_graphic()) {
        return Err(Error::InvalidIdempotencyKey {
            reason: format!(
                "{what} must be 1 to {max} visible ASCII characters (no spaces), got {} bytes",
                bytes.len()
            ),
        });
    }
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

pub(crate) type KeyId = [u8; 16];
/// A hash of what decides a request's records.
pub(crate) type Fingerprint = [u8; 16];

fn first_16(digest: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, d) in out.iter_mut().zip(digest) {
        *o = *d;
    }
    out
}

/// The fingerprint of a request: its records' bytes, keys, partitions and
/// headers, its framing and its timestamp (not when it arrived).
pub(crate) fn fingerprint(request: &IngestRequest) -> Fingerprint {
    let mut hash = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    match &request.items {
        Items::Body { body, framing } => {
            field(b"body");
            field(format!("{framing:?}").as_bytes());
            field(body);
        }
        Items::Split(items) => {
            field(b"items");
            for item in items {
                field(&item.value);
                field(item.key.as_deref().unwrap_or(b"\xff-none"));
                field(&item.partition.map_or(u64::MAX, u64::from).to_le_bytes());
                for h in &item.headers {
                    field(h.key.as_bytes());
                    field(&h.value);
                }
                field(b"end");
            }
        }
    }
    field(&request.timestamp.unwrap_or(i64::MIN).to_le_bytes());
    for h in &request.headers {
        field(h.key.as_bytes());
        field(&h.value);
    }
    first_16(&hash.finalize())
}

/// One request's batch in one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Part {
    partition: u32,
    first_offset: u64,
    count: u32,
    /// Each record's position in the request (only for requests over
    /// several partitions).
    positions: Option<Box<[u32]>>,
}

/// A key the table holds.
#[derive(Debug)]
struct Entry {
    fingerprint: Fingerprint,
    received_at_ms: i64,
    durable_at_ms: i64,
    /// Every partition the request writes (empty until first prepared).
    partitions: Box<[u32]>,
    /// The parts written so far.
    written: Vec<Part>,
    /// Set while a request with this key is being written: dropped when it
    /// ends, which wakes the requests waiting for it.
    in_flight: Option<watch::Receiver<()>>,
}

impl Entry {
    fn complete(&self) -> bool {
        !self.partitions.is_empty() && self.written.len() == self.partitions.len()
    }
}

/// A producer's place in its sequence.
#[derive(Debug, Clone, Copy)]
struct ProducerState {
    next: u64,
    last_seen_ms: i64,
}

#[derive(Debug, Default)]
struct TableState {
    entries: HashMap<KeyId, Entry>,
    /// Keys in the order they were first seen, with that time.
    order: VecDeque<(i64, KeyId)>,
    producers: HashMap<String, ProducerState>,
    /// When idle producers were last dropped.
    producers_swept_ms: i64,
}

/// A stream's table of request keys, within its window.
#[derive(Debug)]
pub(crate) struct DedupTable {
    window_ms: i64,
    max_keys: usize,
    state: Mutex<TableState>,
    /// True once the table was rebuilt from the log.
    ready: watch::Receiver<bool>,
    ready_tx: watch::Sender<bool>,
    /// Keys dropped because the table was full.
    evicted: AtomicU64,
    /// Requests answered from the table.
    replayed: AtomicU64,
    /// Requests refused for reusing a key with another request.
    reused: AtomicU64,
}

/// What to do with a keyed request.
pub(crate) enum Begin {
    /// Seen and complete: answer this.
    Replay(IngestOutcome),
    /// A request with this key is being written: wait, then ask again.
    Wait(watch::Receiver<()>),
    /// Write it: the parts in `written` are there already.
    Write(WriteGuard),
}

/// The right to write a keyed request; dropping it without
/// [`DedupTable::finish`] forgets the key (nothing was written).
pub(crate) struct WriteGuard {
    id: KeyId,
    pub(crate) written: Vec<u32>,
    _done: watch::Sender<()>,
}

/// What a table holds, for the stream's view and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DedupCounts {
    /// Keys held (idempotency keys and producer sequences).
    pub keys: u64,
    /// Producers whose sequence is followed.
    pub producers: u64,
    /// Keys dropped since start because the table was full.
    pub evicted: u64,
    /// Approximate bytes the table holds.
    pub bytes: u64,
    /// Requests answered from the table since start.
    pub replayed: u64,
    /// Requests refused since start for reusing a key with another request.
    pub reused: u64,
}

/// Heap bytes of one held key besides its map and order slots: its list of
/// partitions and its written part, each a small allocation.
const HEAP_BYTES_PER_KEY: u64 = 80;

impl DedupTable {
    /// An empty table, not yet ready (see [`DedupTable::rebuild`]).
    pub(crate) fn new(window: Duration, max_keys: u64) -> Self {
        let (ready_tx, ready) = watch::channel(false);
        Self {
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
            max_keys: usize::try_from(max_keys).unwrap_or(usize::MAX),
            state: Mutex::new(TableState::default()),
            ready,
            ready_tx,
            evicted: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            reused: AtomicU64::new(0),
        }
    }

    /// Waits until the table was rebuilt from the log.
    pub(crate) async fn wait_ready(&self) {
        let mut ready = self.ready.clone();
        // The sender lives as long as the table.
        let _ = ready.wait_for(|r| *r).await;
    }

    /// The table's counts now.
    pub(crate) fn counts(&self) -> DedupCounts {
        let state = self.state.lock();
        let keys = state.entries.len() as u64;
        // What the map and the queue have allocated (they grow by
        // doubling), and each entry's own allocations.
        let slot = std::mem::size_of::<(KeyId, Entry)>() + 1;
        let allocated = state.entries.capacity() * slot
            + state.order.capacity() * std::mem::size_of::<(i64, KeyId)>();
        DedupCounts {
            keys,
            producers: state.producers.len() as u64,
            evicted: self.evicted.load(Ordering::Relaxed),
            bytes: allocated as u64 + keys * HEAP_BYTES_PER_KEY,
            replayed: self.replayed.load(Ordering::Relaxed),
            reused: self.reused.load(Ordering::Relaxed),
        }
    }

    /// Looks `key` up for a request with `fingerprint` arriving at `now_ms`.
    ///
    /// # Errors
    /// [`Error::IdempotencyKeyReused`] for a key seen with another
    /// fingerprint; [`Error::OutOfOrderSequence`] for a producer sequence
    /// that is not the next one and not held.
    pub(crate) fn begin(
        &self,
        key: &RequestKey,
        fingerprint: Fingerprint,
        now_ms: i64,
    ) -> Result<Begin> {
        let id = key.id();
        let mut state = self.state.lock();
        self.expire(&mut state, now_ms);
        if let Some(entry) = state.entries.get_mut(&id) {
            if entry.fingerprint != fingerprint {
                self.reused.fetch_add(1, Ordering::Relaxed);
                return Err(Error::IdempotencyKeyReused {
                    key: key.describe(),
                });
            }
            if let Some(waiting) = &entry.in_flight {
                // A writer that went away without finishing leaves a
                // closed channel: the key is free to write again.
                if waiting.has_changed().is_ok() {
                    return Ok(Begin::Wait(waiting.clone()));
                }
                entry.in_flight = None;
            }
            if entry.complete() {
                self.replayed.fetch_add(1, Ordering::Relaxed);
                return Ok(Begin::Replay(outcome_of(entry)));
            }
            let (done, waiting) = watch::channel(());
            entry.in_flight = Some(waiting);
            return Ok(Begin::Write(WriteGuard {
                id,
                written: entry.written.iter().map(|p| p.partition).collect(),
                _done: done,
            }));
        }
        if let RequestKey::Producer {
            id: producer,
            sequence,
        } = key
        {
            if let Some(known) = state.producers.get(producer)
                && known.next != *sequence
            {
                return Err(Error::OutOfOrderSequence {
                    producer: producer.clone(),
                    expected: known.next,
                    got: *sequence,
                });
            }
            state.producers.insert(
                producer.clone(),
                ProducerState {
                    next: sequence.saturating_add(1),
                    last_seen_ms: now_ms,
                },
            );
        }
        let (done, waiting) = watch::channel(());
        state.entries.insert(
            id,
            Entry {
                fingerprint,
                received_at_ms: now_ms,
                durable_at_ms: i64::MIN,
                partitions: Box::new([]),
                written: Vec::new(),
                in_flight: Some(waiting),
            },
        );
        state.order.push_back((now_ms, id));
        self.evict_over_limit(&mut state);
        Ok(Begin::Write(WriteGuard {
            id,
            written: Vec::new(),
            _done: done,
        }))
    }

    /// The time the request under `guard` first arrived (kept across its
    /// retries), and records the partitions it writes.
    pub(crate) fn prepared(&self, guard: &WriteGuard, partitions: &[u32]) -> i64 {
        let mut state = self.state.lock();
        match state.entries.get_mut(&guard.id) {
            Some(entry) => {
                if entry.partitions.is_empty() {
                    entry.partitions = partitions.into();
                }
                entry.received_at_ms
            }
            None => crate::ingest::now_ms(),
        }
    }

    /// Notes one part of the request under `guard` as written.
    pub(crate) fn part_written(
        &self,
        guard: &WriteGuard,
        partition: u32,
        first_offset: u64,
        count: u32,
        positions: Option<Box<[u32]>>,
        written_at_ms: i64,
    ) {
        let mut state = self.state.lock();
        if let Some(entry) = state.entries.get_mut(&guard.id)
            && !entry.written.iter().any(|p| p.partition == partition)
        {
            entry.durable_at_ms = entry.durable_at_ms.max(written_at_ms);
            entry.written.push(Part {
                partition,
                first_offset,
                count,
                positions,
            });
        }
    }

    /// Ends the write under `guard`: the answer when every part is written,
    /// else `None`; a key none of whose parts were written is forgotten
    /// (the client may fix the request and send it again with that key).
    pub(crate) fn finish(&self, guard: WriteGuard) -> Option<IngestOutcome> {
        let mut state = self.state.lock();
        let entry = state.entries.get_mut(&guard.id)?;
        entry.in_flight = None;
        if entry.written.is_empty() {
            state.entries.remove(&guard.id);
            return None;
        }
        if entry.complete() {
            return Some(outcome_of(entry));
        }
        None
    }

    /// Forgets a producer's advance when its request wrote nothing, so its
    /// next request may reuse the sequence.
    pub(crate) fn unwind_producer(&self, key: &RequestKey) {
        if let RequestKey::Producer { id, sequence } = key {
            let mut state = self.state.lock();
            let held = state.entries.contains_key(&key.id());
            if let Some(p) = state.producers.get_mut(id)
                && !held
                && p.next == sequence.saturating_add(1)
            {
                p.next = *sequence;
            }
        }
    }

    fn expire(&self, state: &mut TableState, now_ms: i64) {
        let horizon = now_ms.saturating_sub(self.window_ms);
        // Bounded: a slot of a key in flight goes back to the end.
        for _ in 0..state.order.len() {
            match state.order.front() {
                Some(&(seen, id)) if seen < horizon => {
                    state.order.pop_front();
                    remove_slot(state, seen, id);
                }
                _ => break,
            }
        }
        // Idle producers are swept at most once a second: a sweep visits
        // every producer.
        if now_ms.saturating_sub(state.producers_swept_ms) >= 1_000 {
            state.producers_swept_ms = now_ms;
            state.producers.retain(|_, p| p.last_seen_ms >= horizon);
        }
    }

    fn evict_over_limit(&self, state: &mut TableState) {
        let mut dropped = 0u64;
        for _ in 0..state.order.len() {
            if state.entries.len() <= self.max_keys {
                break;
            }
            let Some((seen, id)) = state.order.pop_front() else {
                break;
            };
            if remove_slot(state, seen, id) {
                dropped += 1;
            }
        }
        if dropped > 0 {
            let before = self.evicted.fetch_add(dropped, Ordering::Relaxed);
            if before == 0 {
                tracing::warn!(
                    max_keys = self.max_keys,
                    "the table of request keys is full: the oldest keys are dropped before their window ends (raise dedup_max_keys)"
                );
            }
        }
    }

    /// Fills the table from the tagged batches of `partitions` within the
    /// window, then marks it ready.
    pub(crate) fn rebuild(&self, partitions: &[Arc<Partition>]) -> Result<()> {
        let now_ms = crate::ingest::now_ms();
        let horizon = now_ms.saturating_sub(self.window_ms);
        let since = UNIX_EPOCH + Duration::from_millis(u64::try_from(horizon).unwrap_or(0));
        let since = since.min(SystemTime::now());
        // Built apart and swapped in: the scan reads files, and the lock
        // serves the stream's view and metrics meanwhile (keyed requests
        // wait for `ready`, so nothing else writes the table).
        let mut built = TableState::default();
        let mut order: Vec<(i64, KeyId)> = Vec::new();
        for (p, partition) in partitions.iter().enumerate() {
            for batch in partition.request_tags(since)? {
                let Some((tag, positions)) = Tag::decode(&batch.tag) else {
                    tracing::warn!(partition = %partition.dir().display(), offset = batch.base_offset, "a request tag that does not parse; its key is not held");
                    continue;
                };
                if tag.received_at_ms < horizon {
                    continue;
                }
                let part = Part {
                    partition: p as u32,
                    first_offset: batch.base_offset,
                    count: batch.count,
                    positions: positions.map(Vec::into_boxed_slice),
                };
                let id = tag.key.id();
                if let RequestKey::Producer {
                    id: producer,
                    sequence,
                } = &tag.key
                {
                    let p = built
                        .producers
                        .entry(producer.clone())
                        .or_insert(ProducerState {
                            next: 0,
                            last_seen_ms: tag.received_at_ms,
                        });
                    p.next = p.next.max(sequence.saturating_add(1));
                    p.last_seen_ms = p.last_seen_ms.max(tag.received_at_ms);
                }
                let entry = built.entries.entry(id).or_insert_with(|| {
                    order.push((tag.received_at_ms, id));
                    Entry {
                        fingerprint: tag.fingerprint,
                        received_at_ms: tag.received_at_ms,
                        durable_at_ms: tag.written_at_ms,
                        partitions: tag.partitions.clone(),
                        written: Vec::new(),
                        in_flight: None,
                    }
                });
                entry.durable_at_ms = entry.durable_at_ms.max(tag.written_at_ms);
                if !entry.written.iter().any(|w| w.partition == part.partition) {
                    entry.written.push(part);
                }
            }
        }
        order.sort_unstable_by_key(|(seen, _)| *seen);
        built.order = order.into();
        let mut state = self.state.lock();
        *state = built;
        self.evict_over_limit(&mut state);
        drop(state);
        let _ = self.ready_tx.send(true);
        Ok(())
    }

    /// Marks the table ready without rebuilding (its rebuild failed; the
    /// failure was logged).
    pub(crate) fn give_up_rebuild(&self) {
        let _ = self.ready_tx.send(true);
    }
}

/// Removes the entry of an order slot just popped; true if removed. A
/// stale slot (its key was forgotten, then seen again: the entry has a
/// later slot of its own) removes nothing; a key being written keeps its
/// entry and its slot goes back to the end.
fn remove_slot(state: &mut TableState, seen: i64, id: KeyId) -> bool {
    match state.entries.get(&id) {
        Some(entry) if entry.received_at_ms != seen => false,
        Some(entry) if entry.in_flight.is_some() => {
            state.order.push_back((seen, id));
            false
        }
        Some(_) => {
            state.entries.remove(&id);
            true
        }
        None => false,
    }
}

/// The answer of a complete entry, as the first request got it.
fn outcome_of(entry: &Entry) -> IngestOutcome {
    let mut parts: Vec<&Part> = entry.written.iter().collect();
    parts.sort_by_key(|p| p.partition);
    let records: usize = parts.iter().map(|p| p.count as usize).sum();
    let partitions = parts
        .iter()
        .map(|p| PartitionOffsets {
            partition: p.partition,
            first_offset: p.first_offset,
            last_offset: p.first_offset + u64::from(p.count) - 1,
        })
        .collect();
    let offsets = match parts.as_slice() {
        [one] if one.positions.is_none() => (0..u64::from(one.count))
            .map(|i| (one.partition, one.first_offset + i))
            .collect(),
        _ => {
            let mut offsets = vec![(0u32, 0u64); records];
            for p in &parts {
                for (i, position) in p.positions.iter().flatten().enumerate() {
                    if let Some(slot) = offsets.get_mut(*position as usize) {
                        *slot = (p.partition, p.first_offset + i as u64);
                    }
                }
            }
            offsets
        }
    };
    IngestOutcome {
        records,
        partitions,
        offsets,
        received_at_ms: entry.received_at_ms,
        durable_at_ms: entry.durable_at_ms,
        sink_positions: Vec::new(),
        replayed: true,
    }
}

/// A request tag as stored in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tag {
    pub(crate) key: RequestKey,
    pub(crate) fingerprint: Fingerprint,
    pub(crate) received_at_ms: i64,
    /// When this attempt wrote its batches.
    pub(crate) written_at_ms: i64,
    /// Every partition the request writes, ascending.
    pub(crate) partitions: Box<[u32]>,
}

impl Tag {
    /// The bytes of this tag for the batch of `positions` (the request
    /// positions of its records; used when the request spans partitions).
    pub(crate) fn encode(&self, positions: &[u32]) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + positions.len() * 2);
        match &self.key {
            RequestKey::Idempotency(key) => {
                out.push(KIND_IDEMPOTENCY);
                put_varint(&mut out, key.len() as u64);
                out.extend_from_slice(key.as_bytes());
            }
            RequestKey::Producer { id, sequence } => {
                out.push(KIND_PRODUCER);
                put_varint(&mut out, id.len() as u64);
                out.extend_from_slice(id.as_bytes());
                out.extend_from_slice(&sequence.to_le_bytes());
            }
        }
        out.extend_from_slice(&self.fingerprint);
        out.extend_from_slice(&self.received_at_ms.to_le_bytes());
        out.extend_from_slice(&self.written_at_ms.to_le_bytes());
        put_varint(&mut out, self.partitions.len() as u64);
        for p in &self.partitions {
            put_varint(&mut out, u64::from(*p));
        }
        if self.partitions.len() > 1 {
            put_varint(&mut out, positions.len() as u64);
            for p in positions {
                put_varint(&mut out, u64::from(*p));
            }
        }
        out
    }

    /// Parses a tag; `None` for bytes that are not one.
    pub(crate) fn decode(bytes: &[u8]) -> Option<(Self, Option<Vec<u32>>)> {
        let mut r = bytes;
        let kind = take(&mut r, 1)?.first().copied()?;
        let len = usize::try_from(varint(&mut r)?).ok()?;
        let text = String::from_utf8(take(&mut r, len)?.to_vec()).ok()?;
        let key = match kind {
            KIND_IDEMPOTENCY => RequestKey::Idempotency(text),
            KIND_PRODUCER => {
                let sequence = u64::from_le_bytes(take(&mut r, 8)?.try_into().ok()?);
                RequestKey::Producer { id: text, sequence }
            }
            _ => return None,
        };
        let fingerprint: Fingerprint = take(&mut r, 16)?.try_into().ok()?;
        let received_at_ms = i64::from_le_bytes(take(&mut r, 8)?.try_into().ok()?);
        let written_at_ms = i64::from_le_bytes(take(&mut r, 8)?.try_into().ok()?);
        let n = usize::try_from(varint(&mut r)?).ok()?;
        if n == 0 || n > 65_536 {
            return None;
        }
        let partitions = (0..n)
            .map(|_| varint(&mut r).and_then(|p| u32::try_from(p).ok()))
            .collect::<Option<Box<[u32]>>>()?;
        let positions = if n > 1 {
            let count = usize::try_from(varint(&mut r)?).ok()?;
            if count > r.len() {
                return None;
            }
            Some(
                (0..count)
                    .map(|_| varint(&mut r).and_then(|p| u32::try_from(p).ok()))
                    .collect::<Option<Vec<u32>>>()?,
            )
        } else {
            None
        };
        if !r.is_empty() {
            return None;
        }
        Some((
            Self {
                key,
                fingerprint,
                received_at_ms,
                written_at_ms,
                partitions,
            },
            positions,
        ))
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn take<'a>(r: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if r.len() < n {
        return None;
    }
    let (head, rest) = r.split_at(n);
    *r = rest;
    Some(head)
}

fn varint(r: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *take(r, 1)?.first()?;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_key() -> impl Strategy<Value = RequestKey> {
        prop_oneof![
            "[!-~]{1,255}".prop_map(RequestKey::Idempotency),
            ("[!-~]{1,64}", any::<u64>())
                .prop_map(|(id, sequence)| RequestKey::Producer { id, sequence }),
        ]
    }

    proptest! {
        #[test]
        fn tags_roundtrip(
            key in arb_key(),
            fingerprint in any::<[u8; 16]>(),
            received_at_ms in any::<i64>(),
            written_at_ms in any::<i64>(),
            partitions in proptest::collection::btree_set(0u32..1024, 1..6),
            positions in proptest::collection::vec(any::<u32>(), 0..50),
        ) {
            let tag = Tag {
                key,
                fingerprint,
                received_at_ms,
                written_at_ms,
                partitions: partitions.into_iter().collect(),
            };
            let (decoded, read_positions) = Tag::decode(&tag.encode(&positions)).expect("decodes");
            prop_assert_eq!(&decoded, &tag);
            if tag.partitions.len() > 1 {
                prop_assert_eq!(read_positions, Some(positions));
            } else {
                prop_assert_eq!(read_positions, None);
            }
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Tag::decode(&bytes);
        }

        #[test]
        fn idempotency_keys_are_1_to_255_visible_ascii(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let valid = (1..=255).contains(&bytes.len()) && bytes.iter().all(u8::is_ascii_graphic);
            prop_assert_eq!(RequestKey::idempotency(&bytes).is_ok(), valid);
        }

        #[test]
        fn sequences_are_decimal_u64(text in "[0-9]{1,21}|[ +-]?[0-9a-z]{0,5}") {
            let parsed = RequestKey::producer(b"p", text.as_bytes());
            let expected = if text.bytes().all(|b| b.is_ascii_digit()) { text.parse::<u64>().ok() } else { None };
            prop_assert_eq!(
                parsed.ok().map(|k| match k { RequestKey::Producer { sequence, .. } => sequence, RequestKey::Idempotency(_) => u64::MAX }),
                expected
            );
        }
    }

    fn table(window_ms: u64, max_keys: u64) -> DedupTable {
        let table = DedupTable::new(Duration::from_millis(window_ms), max_keys);
        table.give_up_rebuild();
        table
    }

    fn write(table: &DedupTable, key: &RequestKey, at: i64) {
        let Begin::Write(guard) = table.begin(key, [1; 16], at).expect("begins") else {
            panic!("not a write");
        };
        table.prepared(&guard, &[0]);
        table.part_written(&guard, 0, 10, 2, None, at);
        assert!(table.finish(guard).is_some());
    }

    #[test]
    fn past_max_keys_the_oldest_go_first() {
        let table = table(60_000, 2);
        let keys: Vec<RequestKey> = (0..3)
            .map(|i| RequestKey::Idempotency(format!("k{i}")))
            .collect();
        for (i, key) in keys.iter().enumerate() {
            write(&table, key, i as i64);
        }
        assert_eq!(table.counts().keys, 2);
        assert_eq!(table.counts().evicted, 1);
        assert!(matches!(
            table.begin(&keys[2], [1; 16], 5),
            Ok(Begin::Replay(_))
        ));
        assert!(matches!(
            table.begin(&keys[0], [1; 16], 5),
            Ok(Begin::Write(_))
        ));
    }

    #[test]
    fn a_key_refused_then_written_keeps_its_own_window() {
        let table = table(1_000, 10);
        let key = RequestKey::Idempotency("k".into());
        // Refused: nothing written, forgotten (its order slot stays).
        let Ok(Begin::Write(guard)) = table.begin(&key, [1; 16], 0) else {
            panic!("not a write");
        };
        assert!(table.finish(guard).is_none());
        assert_eq!(table.counts().keys, 0);
        write(&table, &key, 500);
        // At 1,200 the first slot has expired but the key, written at 500,
        // is held until 1,500.
        assert!(matches!(
            table.begin(&key, [1; 16], 1_200),
            Ok(Begin::Replay(_))
        ));
        assert!(matches!(
            table.begin(&key, [1; 16], 1_600),
            Ok(Begin::Write(_))
        ));
    }

    #[test]
    fn a_key_in_flight_is_never_dropped_and_still_expires_later() {
        let table = table(60_000, 1);
        let first = RequestKey::Idempotency("first".into());
        let Ok(Begin::Write(guard)) = table.begin(&first, [1; 16], 0) else {
            panic!("not a write");
        };
        // Over max_keys while `first` is in flight: it stays.
        write(&table, &RequestKey::Idempotency("second".into()), 1);
        assert!(matches!(
            table.begin(&first, [1; 16], 2),
            Ok(Begin::Wait(_))
        ));
        table.prepared(&guard, &[0]);
        table.part_written(&guard, 0, 0, 1, None, 2);
        assert!(table.finish(guard).is_some());
        // Its slot was kept: past the window it goes.
        assert!(matches!(
            table.begin(&first, [1; 16], 3),
            Ok(Begin::Replay(_))
        ));
        assert!(matches!(
            table.begin(&first, [1; 16], 70_000),
            Ok(Begin::Write(_))
        ));
    }

    #[test]
    fn a_writer_that_went_away_frees_its_key() {
        let table = table(60_000, 10);
        let key = RequestKey::Idempotency("k".into());
        let Ok(Begin::Write(guard)) = table.begin(&key, [1; 16], 0) else {
            panic!("not a write");
        };
        assert!(matches!(table.begin(&key, [1; 16], 0), Ok(Begin::Wait(_))));
        drop(guard);
        assert!(matches!(table.begin(&key, [1; 16], 0), Ok(Begin::Write(_))));
    }
}
