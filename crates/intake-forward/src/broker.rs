//! The brokers a sink can send to, behind one interface: publish a batch,
//! find the end of the destination (a fence), and read back what a sink
//! partition sent past a fence.

use intake_format::api::{SinkDefinition, SinkTarget};
use intake_log::Record;

use crate::cursor::Fence;
use crate::error::{ForwardError, SendError};

/// One batch handed to a broker: resolves to a delivery per record, in
/// order, once the broker acknowledged all of them, or to the first
/// failure.
pub(crate) type PendingBatch =
    futures::future::BoxFuture<'static, Result<Vec<Delivery>, SendError>>;

/// A batch as handed to a broker.
pub(crate) struct Handover {
    /// Resolves once every record handed over has settled.
    pub(crate) settled: PendingBatch,
    /// True when the client refused a record at once (the batch fails, and
    /// nothing after it should be handed over before a retry).
    pub(crate) refused: bool,
}

impl Handover {
    /// A batch refused before any record was handed over.
    pub(crate) fn refused(error: SendError) -> Self {
        Self {
            settled: Box::pin(std::future::ready(Err(error))),
            refused: true,
        }
    }
}

/// Where a broker stored a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerPosition {
    /// A JetStream acknowledgement.
    Nats {
        /// The JetStream stream that stored it.
        stream: String,
        /// Its sequence there.
        sequence: u64,
        /// True when the server had it already (dropped as a duplicate).
        duplicate: bool,
    },
    /// A Kafka delivery report.
    Kafka {
        /// The topic.
        topic: String,
        /// The topic partition.
        partition: i32,
        /// The offset in that partition.
        offset: i64,
        /// When the batch was handed to the producer (epoch ms).
        sent_at_ms: i64,
    },
}

/// One record acknowledged by a broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The record's offset in its stream partition.
    pub offset: u64,
    /// Where the broker put it.
    pub position: BrokerPosition,
}

/// A connected broker client.
#[derive(Debug)]
pub(crate) enum Broker {
    #[cfg(feature = "nats")]
    Nats(Box<crate::nats::NatsSink>),
    #[cfg(feature = "kafka")]
    Kafka(crate::kafka::KafkaSink),
}

impl Broker {
    /// A client for `def` (connections are made and remade in the
    /// background; a broker that is down now is not an error).
    pub(crate) async fn connect(
        def: &SinkDefinition,
        clients: &crate::BrokerClients,
    ) -> Result<Self, ForwardError> {
        let unsupported = |reason: String| ForwardError::Unsupported {
            name: def.name.clone(),
            reason,
        };
        match &def.target {
            #[cfg(feature = "nats")]
            SinkTarget::Nats { url, subject } => {
                crate::nats::NatsSink::connect(clients, url, subject)
                    .await
                    .map(|sink| Self::Nats(Box::new(sink)))
                    .map_err(|e| unsupported(e.0))
            }
            #[cfg(feature = "kafka")]
            SinkTarget::Kafka {
                brokers,
                topic,
                partitioning,
                producer,
            } => crate::kafka::KafkaSink::new(clients, brokers, topic, *partitioning, producer)
                .map(Self::Kafka)
                .map_err(|e| unsupported(e.0)),
            #[allow(unreachable_patterns)]
            other => Err(unsupported(format!(
                "this build of intake has no {} sinks (cargo feature {:?})",
                other.kind(),
                other.kind()
            ))),
        }
    }

    /// Resolves once a broker whose connection is down now is reachable
    /// again, so that a retry need not sit out its whole backoff. Never
    /// resolves while the connection is up, or for a client that cannot
    /// tell (Kafka: librdkafka reconnects and retries by itself).
    pub(crate) async fn reconnected(&self) {
        match self {
            #[cfg(feature = "nats")]
            Self::Nats(sink) => sink.reconnected().await,
            #[allow(unreachable_patterns)]
            _ => std::future::pending().await,
        }
    }

    /// Hands `records` of one sink partition to the broker, in order,
    /// each identified as `id_prefix` + its offset; the returned batch
    /// resolves once the broker acknowledged every record. Batches of one
    /// partition are stored in the order they were handed over. A batch
    /// that fails resolves only once every record of it that was handed
    /// over has settled (acknowledged, refused or timed out), so that a
    /// read-back after it sees what the broker acknowledged; a request the
    /// client gave up on and the broker applies later is not covered.
    pub(crate) async fn publish(
        &self,
        id_prefix: &str,
        partition: u32,
        records: &[Record],
    ) -> Handover {
        match self {
            #[cfg(feature = "nats")]
            Self::Nats(sink) => sink.publish(id_prefix, records).await,
            #[cfg(feature = "kafka")]
            Self::Kafka(sink) => sink.publish(id_prefix, partition, records).await,
            #[allow(unreachable_patterns)]
            _ => {
                let _ = (id_prefix, partition, records);
                Handover::refused(SendError("no broker client in this build".into()))
            }
        }
    }

    /// The end of every broker partition now: a fence past everything
    /// stored so far.
    pub(crate) async fn end(&self) -> Result<Fence, SendError> {
        match self {
            #[cfg(feature = "nats")]
            Self::Nats(sink) => sink.end().await,
            #[cfg(feature = "kafka")]
            Self::Kafka(sink) => sink.end().await,
            #[allow(unreachable_patterns)]
            _ => Err(SendError("no broker client in this build".into())),
        }
    }

    /// The records between `from` and `to` whose id starts with
    /// `id_prefix`, with where they are: what a sink partition sent and
    /// did not commit.
    pub(crate) async fn read_back(
        &self,
        id_prefix: &str,
        from: &Fence,
        to: &Fence,
    ) -> Result<Vec<Delivery>, SendError> {
        match self {
            #[cfg(feature = "nats")]
            Self::Nats(sink) => sink.read_back(id_prefix, from, to).await,
            #[cfg(feature = "kafka")]
            Self::Kafka(sink) => sink.read_back(id_prefix, from, to).await,
            #[allow(unreachable_patterns)]
            _ => {
                let _ = (id_prefix, from, to);
                Err(SendError("no broker client in this build".into()))
            }
        }
    }
}

impl BrokerPosition {
    /// The broker partition (0 for JetStream) and the position just past
    /// this record there.
    pub(crate) fn past(&self) -> (i32, u64) {
        match self {
            Self::Nats { sequence, .. } => (0, sequence.saturating_add(1)),
            Self::Kafka {
                partition, offset, ..
            } => (
                *partition,
                u64::try_from(*offset).unwrap_or(0).saturating_add(1),
            ),
        }
    }
}

/// The offset a record id names, when it starts with `id_prefix`.
pub(crate) fn offset_in_id(id: &[u8], id_prefix: &str) -> Option<u64> {
    let rest = id.strip_prefix(id_prefix.as_bytes())?;
    std::str::from_utf8(rest).ok()?.parse().ok()
}
