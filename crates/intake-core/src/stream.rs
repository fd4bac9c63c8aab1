//! A stream at run time: its definition, codec and open partitions.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use intake_format::RecordCodec;
use intake_format::api::{
    AckMode, Bindings, IpRange, PartitionStatus, StreamDefinition, StreamState, StreamView,
};
use intake_forward::StreamSinks;
use intake_log::Partition;

use crate::dedup::{DedupCounts, DedupTable};
use crate::error::{Error, Result};
use crate::ingest::IngestOutcome;
use crate::table::Table;

/// How long `ack = "sink"` waits unless the stream says otherwise.
pub(crate) const DEFAULT_ACK_TIMEOUT_MS: u64 = 10_000;

/// An open stream.
#[derive(Debug)]
pub struct Stream {
    definition: StreamDefinition,
    paused: AtomicBool,
    pub(crate) codec: RecordCodec,
    pub(crate) partitions: Vec<Arc<Partition>>,
    round_robin: AtomicU32,
    sinks: Option<StreamSinks>,
    /// The rows, when the stream is a scan table.
    pub(crate) table: Option<Table>,
    /// The request keys seen within the stream's `dedup_window`.
    pub(crate) dedup: Arc<DedupTable>,
}

impl Stream {
    pub(crate) fn new(
        definition: StreamDefinition,
        codec: RecordCodec,
        partitions: Vec<Arc<Partition>>,
        sinks: Option<StreamSinks>,
        table: Option<Table>,
    ) -> Self {
        let dedup = Arc::new(DedupTable::new(
            crate::dedup::window_of(&definition),
            definition.dedup_max_keys,
        ));
        Self {
            dedup,
            paused: AtomicBool::new(definition.state == StreamState::Paused),
            definition,
            codec,
            partitions,
            round_robin: AtomicU32::new(0),
            sinks,
            table,
        }
    }

    /// The scan table's rows, when the stream is a table.
    pub fn table(&self) -> Option<&Table> {
        self.table.as_ref()
    }

    /// The running sinks, when the stream has any.
    pub fn sinks(&self) -> Option<&StreamSinks> {
        self.sinks.as_ref()
    }

    /// Stops the sink workers and waits for them (before the stream is
    /// closed): their batches in flight settle and their cursors are
    /// written, so nothing they sent races sinks started after them.
    pub(crate) async fn stop_sinks(&self) {
        if let Some(sinks) = &self.sinks {
            sinks.stop();
            sinks.stopped().await;
        }
    }

    /// With `ack = "sink"`, waits until the `ack_sink` forwarded every
    /// record of `outcome`, and adds the broker positions to it.
    pub(crate) async fn await_sink_ack(&self, outcome: &mut IngestOutcome) -> Result<()> {
        if self.definition.ack != AckMode::Sink {
            return Ok(());
        }
        let (Some(sinks), Some(name)) = (&self.sinks, &self.definition.ack_sink) else {
            return Ok(());
        };
        let timeout = Duration::from_millis(
            self.definition
                .ack_timeout_ms
                .unwrap_or(DEFAULT_ACK_TIMEOUT_MS),
        );
        let waits = outcome.partitions.iter().map(|range| {
            sinks.wait_forwarded(
                name,
                range.partition,
                range.first_offset,
                range.last_offset + 1,
                timeout,
            )
        });
        let positions = futures::future::try_join_all(waits).await?;
        for (range, found) in outcome.partitions.iter().zip(positions) {
            outcome.sink_positions.extend(
                found
                    .into_iter()
                    .map(|(offset, position)| (range.partition, offset, position)),
            );
        }
        Ok(())
    }

    /// What the stream's table of request keys holds.
    pub fn dedup_counts(&self) -> DedupCounts {
        self.dedup.counts()
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.definition.name
    }

    /// The definition, with the current state.
    pub fn definition(&self) -> StreamDefinition {
        let mut def = self.definition.clone();
        def.state = self.state();
        def
    }

    /// The faces it is bound to.
    pub fn bindings(&self) -> &Bindings {
        &self.definition.bindings
    }

    /// The client addresses it takes records from; empty for any.
    pub fn allowed_ips(&self) -> &[IpRange] {
        &self.definition.allowed_ips
    }

    /// The record format.
    pub fn format(&self) -> intake_format::api::Format {
        self.definition.format
    }

    /// Active or paused.
    pub fn state(&self) -> StreamState {
        if self.paused.load(Ordering::Acquire) {
            StreamState::Paused
        } else {
            StreamState::Active
        }
    }

    pub(crate) fn set_state(&self, state: StreamState) {
        self.paused
            .store(state == StreamState::Paused, Ordering::Release);
    }

    /// Number of partitions.
    pub fn partition_count(&self) -> u32 {
        self.partitions.len() as u32
    }

    /// One partition.
    ///
    /// # Errors
    /// [`Error::PartitionNotFound`].
    pub fn partition(&self, partition: u32) -> Result<&Arc<Partition>> {
        self.partitions
            .get(partition as usize)
            .ok_or_else(|| Error::PartitionNotFound {
                stream: self.name().to_owned(),
                partition,
                partitions: self.partition_count(),
            })
    }

    /// The partition for the next request without keys.
    pub(crate) fn next_round_robin(&self) -> u32 {
        self.round_robin.fetch_add(1, Ordering::Relaxed) % self.partition_count().max(1)
    }

    /// Offsets and sizes of every partition.
    pub fn status(&self) -> Vec<PartitionStatus> {
        self.partitions
            .iter()
            .enumerate()
            .map(|(i, p)| PartitionStatus {
                partition: i as u32,
                start_offset: p.start_offset(),
                next_offset: p.next_offset(),
                size_bytes: p.size_bytes(),
            })
            .collect()
    }

    /// The stream as the API shows it.
    pub fn view(&self) -> StreamView {
        StreamView {
            definition: self.definition().redacted(),
            status: self.status(),
            dedup: {
                let c = self.dedup.counts();
                intake_format::api::DedupStatus {
                    keys: c.keys,
                    producers: c.producers,
                    evicted: c.evicted,
                    bytes: c.bytes,
                    replayed: c.replayed,
                    reused: c.reused,
                }
            },
        }
    }

    /// Why writes are refused, if a partition is poisoned.
    pub fn poisoned(&self) -> Option<String> {
        self.partitions.iter().find_map(|p| p.poisoned())
    }
}
