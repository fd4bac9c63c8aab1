//! The brokers a sink can send to, behind one `send`.

use intake_format::api::{SinkDefinition, SinkTarget};
use intake_log::Record;

use crate::error::{ForwardError, SendError};

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

    /// Sends `records` of `stream`/`partition` in order and returns once
    /// the broker acknowledged every one.
    pub(crate) async fn send(
        &self,
        stream: &str,
        partition: u32,
        records: &[Record],
    ) -> Result<Vec<Delivery>, SendError> {
        match self {
            #[cfg(feature = "nats")]
            Self::Nats(sink) => sink.send(stream, partition, records).await,
            #[cfg(feature = "kafka")]
            Self::Kafka(sink) => sink.send(stream, partition, records).await,
            #[allow(unreachable_patterns)]
            _ => {
                let _ = (stream, partition, records);
                Err(SendError("no broker client in this build".into()))
            }
        }
    }
}
