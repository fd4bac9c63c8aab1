//! Kafka sinks through rdkafka (librdkafka built by the crate): an
//! idempotent producer with `acks=all`, so librdkafka's own retries never
//! duplicate. The record key becomes the message key, headers become
//! headers, the timestamp the message timestamp; the topic partition is
//! the key's hash (Kafka's default partitioner) or the stream partition.
//! Each message also carries [`ID_HEADER`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use intake_format::api::KafkaPartitioning;
use intake_log::Record;
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::broker::{BrokerPosition, Delivery};
use crate::clients::BrokerClients;
use crate::error::SendError;

/// The header naming a message's origin, `STREAM/PARTITION/OFFSET`: the
/// idempotent producer drops its own retries, but a batch sent again by a
/// new producer (after a crash or a send timeout) is a duplicate only a
/// consumer can recognise, by this id.
pub(crate) const ID_HEADER: &str = "Intake-Id";

/// A sink's way to one topic, over the node's producer for its brokers.
pub(crate) struct KafkaSink {
    producer: Arc<FutureProducer>,
    topic: String,
    partitioning: KafkaPartitioning,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl KafkaSink {
    /// A sink to `topic` over the node's producer for `brokers` and
    /// `settings` (which override the defaults; idempotence and
    /// `acks=all` cannot be turned off).
    pub(crate) fn new(
        clients: &BrokerClients,
        brokers: &str,
        topic: &str,
        partitioning: KafkaPartitioning,
        settings: &BTreeMap<String, String>,
    ) -> Result<Self, SendError> {
        let key = std::iter::once(brokers.to_owned())
            .chain(settings.iter().map(|(k, v)| format!("{k}={v}")))
            .collect::<Vec<_>>()
            .join("\n");
        let producer = clients.kafka_producer(key, || {
            let mut config = ClientConfig::new();
            config
                .set("bootstrap.servers", brokers)
                .set("message.timeout.ms", "120000")
                // A sink hands the producer a whole batch at once: waiting
                // for more messages only delays the batch's acknowledgement.
                .set("linger.ms", "1");
            for (k, v) in settings {
                config.set(k, v);
            }
            config.set("enable.idempotence", "true").set("acks", "all");
            config
                .create()
                .map_err(|e| SendError(format!("cannot create a Kafka producer: {e}")))
        })?;
        Ok(Self {
            producer,
            topic: topic.to_owned(),
            partitioning,
        })
    }

    /// Produces `records` (pipelined) and waits for every delivery report.
    pub(crate) async fn send(
        &self,
        stream: &str,
        partition: u32,
        records: &[Record],
    ) -> Result<Vec<Delivery>, SendError> {
        let sent_at_ms = now_ms();
        let mut pending = Vec::with_capacity(records.len());
        for record in records {
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len() + 1);
            for h in &record.headers {
                headers = headers.insert(Header {
                    key: &h.key,
                    value: Some(h.value.as_ref()),
                });
            }
            let id = format!("{stream}/{partition}/{}", record.offset);
            headers = headers.insert(Header {
                key: ID_HEADER,
                value: Some(id.as_bytes()),
            });
            let mut message: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic)
                .payload(record.value.as_ref())
                .timestamp(record.timestamp)
                .headers(headers);
            if let Some(key) = &record.key {
                message = message.key(key.as_ref());
            }
            if self.partitioning == KafkaPartitioning::Mirror {
                message = message.partition(i32::try_from(partition).unwrap_or(i32::MAX));
            }
            loop {
                match self.producer.send_result(message) {
                    Ok(delivery) => {
                        pending.push((record.offset, delivery));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        message = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => {
                        return Err(SendError(format!("produce to {}: {e}", self.topic)));
                    }
                }
            }
        }
        let mut deliveries = Vec::with_capacity(pending.len());
        for (offset, delivery) in pending {
            let delivered = delivery
                .await
                .map_err(|_| SendError("the Kafka producer was dropped".into()))?
                .map_err(|(e, _)| SendError(format!("delivery to {}: {e}", self.topic)))?;
            deliveries.push(Delivery {
                offset,
                position: BrokerPosition::Kafka {
                    topic: self.topic.clone(),
                    partition: delivered.partition,
                    offset: delivered.offset,
                    sent_at_ms,
                },
            });
        }
        Ok(deliveries)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
