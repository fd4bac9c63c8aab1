//! The ingest pipeline, shared by every face: state check → split → decode
//! and validate every record → choose partitions → encode → append → wait
//! until durable. Nothing is appended unless every record passed, so a bad
//! record fails its whole request.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::future::try_join_all;
use intake_format::Framing;
use intake_format::api::Format;
use intake_format::api::PartitionOffsets;
use intake_log::{EncodedBatch, Header, NewRecord};

use crate::config::IngestLimits;
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
}

impl IngestRequest {
    /// A request for a body, received now.
    pub fn body(body: Bytes, framing: Framing) -> Self {
        Self {
            items: Items::Body { body, framing },
            received_at_ms: now_ms(),
            timestamp: None,
            headers: Vec::new(),
        }
    }

    /// A request for split items, received now.
    pub fn items(items: Vec<Item>) -> Self {
        Self {
            items: Items::Split(items),
            received_at_ms: now_ms(),
            timestamp: None,
            headers: Vec::new(),
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
    let prepared = prepare(stream, request, limits)?;
    commit(stream, prepared).await
}

/// Everything before the append: state check, split, decode, validate,
/// partition choice. Nothing is written.
pub(crate) fn prepare(
    stream: &Stream,
    request: IngestRequest,
    limits: &IngestLimits,
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
    let round_robin = stream.next_round_robin();
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
        let batch = EncodedBatch::encode(&records)?;
        let appended = stream.partitions[p as usize].append(batch).await?;
        if let Some(table) = &stream.table {
            for (offset, r) in (appended.first_offset..).zip(&records) {
                table.apply(p, offset, r.timestamp, r.key.as_ref(), &r.value);
            }
        }
        Ok::<_, Error>((p, appended))
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
    })
}
