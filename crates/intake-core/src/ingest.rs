//! The ingest pipeline, shared by every face: state check → split → decode
//! and validate every record → choose partitions → encode → append → wait
//! until durable. Nothing is appended unless every record passed, so a bad
//! record fails its whole request.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::future::try_join_all;
use intake_format::Framing;
use intake_format::api::Format;
use intake_format::api::PartitionOffsets;
use intake_log::{EncodedBatch, Header, NewRecord};

use crate::config::IngestLimits;
use crate::dedup::{Begin, RequestKey, Tag, WriteGuard};
use crate::error::{Error, Result};
use crate::partitioner::partition_for_key;
use crate::stream::Stream;

/// One record as a face split it out of its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The record's bytes, in the stream's format.
    pub value: Bytes,
    /// A key given by the protocol (overridden by the stream's `key_field`).
    pub key: Option<Bytes>,
    /// A partition the client chose.
    pub partition: Option<u32>,
    /// Headers of this record only.
    pub headers: Vec<Header>,
}

impl Item {
    /// An item with only a value.
    pub fn new(value: impl Into<Bytes>) -> Self {
        Self {
            value: value.into(),
            key: None,
            partition: None,
            headers: Vec::new(),
        }
    }
}

/// What a face hands to the pipeline.
#[derive(Debug, Clone)]
pub enum Items {
    /// A whole body for the stream's codec to split.
    Body {
        /// The body.
        body: Bytes,
        /// How it holds records.
        framing: Framing,
    },
    /// Records the face split itself.
    Split(Vec<Item>),
}

/// One push request, face-independent.
#[derive(Debug, Clone)]
pub struct IngestRequest {
    /// The records.
    pub items: Items,
    /// When the request arrived, ms since the epoch.
    pub received_at_ms: i64,
    /// A timestamp the protocol gave for all records (InLong `dt`).
    pub timestamp: Option<i64>,
    /// Headers added to every record.
    pub headers: Vec<Header>,
    /// Headers added to every record that say where the request came from
    /// (a client address): unlike `headers`, not part of the request's
    /// fingerprint, so a retry from another address is still the same
    /// request.
    pub origin_headers: Vec<Header>,
    /// What makes the request exactly-once, if the client gave it.
    pub key: Option<RequestKey>,
}

impl IngestRequest {
    /// A request for a body, received now.
    pub fn body(body: Bytes, framing: Framing) -> Self {
        Self {
            items: Items::Body { body, framing },
            received_at_ms: now_ms(),
            timestamp: None,
            headers: Vec::new(),
            origin_headers: Vec::new(),
            key: None,
        }
    }

    /// A request for split items, received now.
    pub fn items(items: Vec<Item>) -> Self {
        Self {
            items: Items::Split(items),
            received_at_ms: now_ms(),
            timestamp: None,
            headers: Vec::new(),
            origin_headers: Vec::new(),
            key: None,
        }
    }
}

/// The result of a durable push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Records written.
    pub records: usize,
    /// Offset ranges per partition, by partition number.
    pub partitions: Vec<PartitionOffsets>,
    /// (partition, offset) of every record, in request order.
    pub offsets: Vec<(u32, u64)>,
    /// When the request arrived.
    pub received_at_ms: i64,
    /// When every record was durable.
    pub durable_at_ms: i64,
    /// With `ack = "sink"`: (partition, offset, where the broker stored
    /// it) of the records, as far as the sink still remembers them.
    pub sink_positions: Vec<(u32, u64, intake_forward::BrokerPosition)>,
    /// True when this is the answer of an earlier request with the same
    /// key: nothing was written this time.
    pub replayed: bool,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A request decoded and checked for one stream, ready to append.
#[derive(Debug)]
pub(crate) struct Prepared {
    per_partition: Vec<Vec<NewRecord>>,
    placement: Vec<(u32, u64)>,
    received_at_ms: i64,
}

/// Runs the pipeline for one request on one stream.
pub(crate) async fn ingest(
    stream: &Stream,
    request: IngestRequest,
    limits: &IngestLimits,
) -> Result<IngestOutcome> {
    let prepared = prepare(stream, request, limits, None)?;
    commit(stream, prepared).await
}

/// Runs the pipeline for a request with a key: answered from the stream's
/// table when the key was seen, else written with its key (only the
/// partitions an earlier attempt did not write). The write runs on its
/// own task, so a client that goes away cannot leave it half-noted.
pub(crate) async fn ingest_keyed(
    stream: &Arc<Stream>,
    request: IngestRequest,
    key: RequestKey,
    limits: &IngestLimits,
) -> Result<IngestOutcome> {
    let table = &stream.dedup;
    table.wait_ready().await;
    let fingerprint = crate::dedup::fingerprint(&request);
    let guard = loop {
        match table.begin(&key, fingerprint, request.received_at_ms)? {
            Begin::Replay(outcome) => return Ok(outcome),
            Begin::Wait(mut writer) => {
                // Err once the writer is done: ask again.
                let _ = writer.changed().await;
            }
            Begin::Write(guard) => break guard,
        }
    };
    let stream = Arc::clone(stream);
    let limits = *limits;
    tokio::spawn(
        async move { write_keyed(&stream, request, key, fingerprint, guard, &limits).await },
    )
    .await
    .map_err(|e| Error::Io {
        op: "write a keyed request to",
        path: "its stream".into(),
        source: std::io::Error::other(e),
    })?
}

async fn write_keyed(
    stream: &Stream,
    request: IngestRequest,
    key: RequestKey,
    fingerprint: crate::dedup::Fingerprint,
    guard: WriteGuard,
    limits: &IngestLimits,
) -> Result<IngestOutcome> {
    let table = &stream.dedup;
    // Keyless records go where a retry's would: the choice follows the
    // request and its key, not a counter.
    let id = key.id();
    let spread = u32::from_le_bytes([
        fingerprint[0] ^ id[0],
        fingerprint[1] ^ id[1],
        fingerprint[2] ^ id[2],
        fingerprint[3] ^ id[3],
    ]);
    let round_robin = spread % stream.partition_count();
    let prepared = match prepare(stream, request, limits, Some(round_robin)) {
        Ok(p) => p,
        Err(e) => {
            table.finish(guard);
            table.unwind_producer(&key);
            return Err(e);
        }
    };
    let used: Vec<u32> = prepared
        .per_partition
        .iter()
        .enumerate()
        .filter(|(_, records)| !records.is_empty())
        .map(|(p, _)| p as u32)
        .collect();
    let received_at_ms = table.prepared(&guard, &used);
    let written_at_ms = now_ms();
    let tag = Tag {
        key: key.clone(),
        fingerprint,
        received_at_ms,
        written_at_ms,
        partitions: used.clone().into_boxed_slice(),
    };
    let spans = used.len() > 1;
    let mut positions: Vec<Vec<u32>> = vec![Vec::new(); prepared.per_partition.len()];
    if spans {
        for (i, (p, _)) in prepared.placement.iter().enumerate() {
            positions[*p as usize].push(i as u32);
        }
    }
    let appends = prepared
        .per_partition
        .into_iter()
        .zip(positions)
        .enumerate()
        .filter(|(p, (records, _))| !records.is_empty() && !guard.written.contains(&(*p as u32)))
        .map(|(p, (records, positions))| {
            let tag = tag.encode(&positions);
            let guard = &guard;
            async move {
                let count = records.len() as u32;
                let appended = append_part(stream, p as u32, records, Some(&tag)).await?;
                let positions = spans.then(|| positions.into_boxed_slice());
                table.part_written(
                    guard,
                    p as u32,
                    appended.first_offset,
                    count,
                    positions,
                    written_at_ms,
                );
                Ok::<_, Error>(())
            }
        });
    // Every append runs to its end (no early exit on the first error): a
    // part written must be noted, or a retry would write it twice.
    let results = futures::future::join_all(appends).await;
    let failed = results.into_iter().find_map(Result::err);
    match (table.finish(guard), failed) {
        (Some(mut outcome), _) => {
            outcome.replayed = false;
            Ok(outcome)
        }
        (None, failed) => {
            table.unwind_producer(&key);
            Err(failed.unwrap_or(Error::Io {
                op: "note the parts of a keyed request in",
                path: stream.name().to_owned(),
                source: std::io::Error::other("the key was dropped while its request was written"),
            }))
        }
    }
}

/// Encodes and appends one partition's records (with the request's tag),
/// and feeds a table's rows.
async fn append_part(
    stream: &Stream,
    partition: u32,
    records: Vec<NewRecord>,
    tag: Option<&[u8]>,
) -> Result<intake_log::Appended> {
    let batch = EncodedBatch::encode_tagged(&records, tag)?;
    let appended = stream.partitions[partition as usize].append(batch).await?;
    if let Some(table) = &stream.table {
        for (offset, r) in (appended.first_offset..).zip(&records) {
            table.apply(partition, offset, r.timestamp, r.key.as_ref(), &r.value);
        }
    }
    Ok(appended)
}

/// Everything before the append: state check, split, decode, validate,
/// partition choice. Nothing is written.
pub(crate) fn prepare(
    stream: &Stream,
    request: IngestRequest,
    limits: &IngestLimits,
    round_robin: Option<u32>,
) -> Result<Prepared> {
    if stream.state() == intake_format::api::StreamState::Paused {
        return Err(Error::StreamPaused {
            name: stream.name().to_owned(),
        });
    }
    let json = matches!(stream.codec.format(), Format::Json | Format::Ndjson);
    let too_deep = |bytes: &[u8]| {
        intake_format::depth_exceeded_at(bytes, limits.max_json_depth).map(|position| {
            Error::TooDeep {
                position,
                limit: limits.max_json_depth,
            }
        })
    };
    let (items, syntax_checked) = match request.items {
        Items::Body { body, framing } => {
            if json && let Some(e) = too_deep(&body) {
                return Err(e);
            }
            let values = stream.codec.split(&body, framing)?;
            (values.into_iter().map(Item::new).collect::<Vec<_>>(), true)
        }
        Items::Split(items) => {
            if json && let Some(e) = items.iter().find_map(|i| too_deep(&i.value)) {
                return Err(e);
            }
            (items, false)
        }
    };
    if items.len() > limits.max_records_per_request {
        return Err(Error::TooManyRecords {
            count: items.len(),
            limit: limits.max_records_per_request,
        });
    }
    let partitions = stream.partition_count();
    let round_robin = round_robin.unwrap_or_else(|| stream.next_round_robin());
    let mut per_partition: Vec<Vec<NewRecord>> = vec![Vec::new(); partitions as usize];
    let mut placement = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        if item.value.len() > limits.max_record_bytes {
            return Err(Error::RecordTooLarge {
                index,
                len: item.value.len(),
                limit: limits.max_record_bytes,
            });
        }
        let decoded = stream.codec.decode(index, item.value, syntax_checked)?;
        let key = decoded.key.or(item.key);
        let partition = match (item.partition, &key) {
            (Some(p), _) => {
                stream.partition(p)?;
                p
            }
            (None, Some(key)) => partition_for_key(key, partitions),
            (None, None) => round_robin,
        };
        let mut headers = request.headers.clone();
        headers.extend(request.origin_headers.iter().cloned());
        headers.extend(item.headers);
        let timestamp = decoded
            .timestamp
            .or(request.timestamp)
            .unwrap_or(request.received_at_ms);
        let batch = &mut per_partition[partition as usize];
        placement.push((partition, batch.len() as u64));
        batch.push(NewRecord {
            timestamp,
            key,
            value: decoded.value,
            headers,
        });
    }
    Ok(Prepared {
        per_partition,
        placement,
        received_at_ms: request.received_at_ms,
    })
}

/// Appends a prepared request and waits until it is durable.
pub(crate) async fn commit(stream: &Stream, prepared: Prepared) -> Result<IngestOutcome> {
    let Prepared {
        per_partition,
        placement,
        received_at_ms,
    } = prepared;
    let partitions = stream.partition_count();
    let records = placement.len();
    let mut used: Vec<(u32, Vec<NewRecord>)> = per_partition
        .into_iter()
        .enumerate()
        .filter(|(_, records)| !records.is_empty())
        .map(|(p, records)| (p as u32, records))
        .collect();
    let append = |p: u32, records: Vec<NewRecord>| async move {
        Ok::<_, Error>((p, append_part(stream, p, records, None).await?))
    };
    // Most requests touch one partition: no join machinery for them.
    let appended = if used.len() == 1 {
        let (p, records) = used.swap_remove(0);
        vec![append(p, records).await?]
    } else {
        try_join_all(used.into_iter().map(|(p, records)| append(p, records))).await?
    };
    let durable_at_ms = now_ms();
    let mut first_offsets = vec![0u64; partitions as usize];
    let partitions = appended
        .iter()
        .map(|&(partition, a)| {
            first_offsets[partition as usize] = a.first_offset;
            PartitionOffsets {
                partition,
                first_offset: a.first_offset,
                last_offset: a.last_offset,
            }
        })
        .collect();
    let offsets = placement
        .into_iter()
        .map(|(p, i)| (p, first_offsets[p as usize] + i))
        .collect();
    Ok(IngestOutcome {
        records,
        partitions,
        offsets,
        received_at_ms,
        durable_at_ms,
        sink_positions: Vec::new(),
        replayed: false,
    })
}
