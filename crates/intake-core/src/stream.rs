//! A stream at run time: its definition, codec and open partitions.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use intake_format::RecordCodec;
use intake_format::api::{PartitionStatus, StreamDefinition, StreamState, StreamView};
use intake_log::Partition;

use crate::error::{Error, Result};

/// An open stream.
#[derive(Debug)]
pub struct Stream {
    definition: StreamDefinition,
    paused: AtomicBool,
    pub(crate) codec: RecordCodec,
    pub(crate) partitions: Vec<Arc<Partition>>,
    round_robin: AtomicU32,
}

impl Stream {
    pub(crate) fn new(
        definition: StreamDefinition,
        codec: RecordCodec,
        partitions: Vec<Arc<Partition>>,
    ) -> Self {
        Self {
            paused: AtomicBool::new(definition.state == StreamState::Paused),
            definition,
            codec,
            partitions,
            round_robin: AtomicU32::new(0),
        }
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
            definition: self.definition(),
            status: self.status(),
        }
    }

    /// Why writes are refused, if a partition is poisoned.
    pub fn poisoned(&self) -> Option<String> {
        self.partitions.iter().find_map(|p| p.poisoned())
    }
}
