//! Kafka sinks through rdkafka (librdkafka built by the crate): an
//! idempotent producer with `acks=all`, so librdkafka's own retries never
//! duplicate. The record key becomes the message key, headers become
//! headers, the timestamp the message timestamp; the topic partition is
//! the key's hash (Kafka's default partitioner) or the stream partition.
//! Each message also carries [`ID_HEADER`], by which a sink reads back
//! what it sent and did not commit.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use intake_format::api::KafkaPartitioning;
use intake_log::Record;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use crate::broker::{BrokerPosition, Delivery, Handover, PendingBatch, offset_in_id};
use crate::clients::BrokerClients;
use crate::cursor::Fence;
use crate::error::SendError;

/// The header naming a message's origin, `STREAM/PARTITION/OFFSET`. The
/// idempotent producer drops its own retries; a batch in doubt after a
/// crash or a failed delivery is read back by this id (see
/// [`KafkaSink::read_back`]) and not sent again.
pub(crate) const ID_HEADER: &str = "Intake-Id";

/// How long a metadata or watermark request may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait for room in a full producer queue before trying again.
const QUEUE_FULL_WAIT_MAX: Duration = Duration::from_millis(100);
/// librdkafka's default `batch.num.messages`.
const DEFAULT_BATCH_NUM_MESSAGES: u64 = 10_000;
/// How long a read-back may go without progress.
const READ_BACK_STALL: Duration = Duration::from_secs(30);

/// A sink's way to one topic, over the node's producer for its brokers.
pub(crate) struct KafkaSink {
    producer: Arc<FutureProducer>,
    topic: Arc<str>,
    partitioning: KafkaPartitioning,
    /// The producer's settings, for the consumer that reads back.
    consumer_config: ClientConfig,
    /// Most messages in one produce batch (`batch.num.messages`): how far
    /// before a fence a read-back starts.
    batch_slack: u64,
    /// The node's bound on blocking lookups at once.
    lookups: Arc<tokio::sync::Semaphore>,
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
                // Batches come whole and several are in flight: a longer
                // wait for more messages only delays acknowledgements.
                .set("linger.ms", "1");
            for (k, v) in settings {
                config.set(k, v);
            }
            config.set("enable.idempotence", "true").set("acks", "all");
            config
                .create()
                .map_err(|e| SendError(format!("cannot create a Kafka producer: {e}")))
        })?;
        let mut consumer_config = ClientConfig::new();
        consumer_config.set("bootstrap.servers", brokers);
        // Connection settings (security, SASL, TLS, sockets) apply to the
        // consumer too; producer-only ones are left out.
        for (k, v) in settings {
            if CONSUMER_SETTINGS.iter().any(|prefix| k.starts_with(prefix)) {
                consumer_config.set(k, v);
            }
        }
        consumer_config
            // librdkafka wants a group even for assigned partitions; this
            // one never joins or commits.
            .set("group.id", "intake-read-back")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest");
        let batch_slack = settings
            .get("batch.num.messages")
            .and_then(|n| n.parse().ok())
            .unwrap_or(DEFAULT_BATCH_NUM_MESSAGES);
        Ok(Self {
            producer,
            topic: Arc::from(topic),
            partitioning,
            consumer_config,
            batch_slack,
            lookups: Arc::clone(&clients.kafka_lookups),
        })
    }

    /// Hands `records` to the producer (its queue pipelines them); the
    /// batch resolves once every delivery report is in.
    pub(crate) async fn publish(
        &self,
        id_prefix: &str,
        partition: u32,
        records: &[Record],
    ) -> Handover {
        let sent_at_ms = now_ms();
        let mut pending = Vec::with_capacity(records.len());
        let mut refused = None;
        let mut queue_full_wait = Duration::from_millis(1);
        let mut id = String::with_capacity(id_prefix.len() + 20);
        'records: for record in records {
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len() + 1);
            for h in &record.headers {
                headers = headers.insert(Header {
                    key: &h.key,
                    value: Some(h.value.as_ref()),
                });
            }
            id.clear();
            id.push_str(id_prefix);
            let _ = write!(id, "{}", record.offset);
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
                        tokio::time::sleep(queue_full_wait).await;
                        queue_full_wait = (queue_full_wait * 2).min(QUEUE_FULL_WAIT_MAX);
                    }
                    Err((e, _)) => {
                        refused = Some(SendError(format!("produce to {}: {e}", self.topic)));
                        break 'records;
                    }
                }
            }
        }
        let topic = Arc::clone(&self.topic);
        let refused_now = refused.is_some();
        let settled: PendingBatch = Box::pin(async move {
            let mut deliveries = Vec::with_capacity(pending.len());
            let mut failed = refused;
            // Every report is awaited, even after a failure: the batch
            // settles only when none of it is still on its way.
            for (offset, delivery) in pending {
                let delivered = delivery
                    .await
                    .map_err(|_| SendError("the Kafka producer was dropped".into()))
                    .and_then(|r| {
                        r.map_err(|(e, _)| SendError(format!("delivery to {topic}: {e}")))
                    });
                match delivered {
                    Ok(delivered) => deliveries.push(Delivery {
                        offset,
                        position: BrokerPosition::Kafka {
                            topic: topic.to_string(),
                            partition: delivered.partition,
                            offset: delivered.offset,
                            sent_at_ms,
                        },
                    }),
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                }
            }
            match failed {
                Some(e) => Err(e),
                None => Ok(deliveries),
            }
        });
        Handover {
            settled,
            refused: refused_now,
        }
    }

    /// The high watermark of every partition of the topic (none while the
    /// topic does not exist).
    pub(crate) async fn end(&self) -> Result<Fence, SendError> {
        let _turn = self.lookup_turn().await?;
        let producer = Arc::clone(&self.producer);
        let topic = Arc::clone(&self.topic);
        blocking(move || {
            let client = producer.client();
            let metadata = client
                .fetch_metadata(Some(&topic), METADATA_TIMEOUT)
                .map_err(|e| SendError(format!("metadata of {topic}: {e}")))?;
            let mut fence = Fence::new();
            let Some(found) = metadata.topics().iter().find(|t| t.name() == &*topic) else {
                return Ok(fence);
            };
            if let Some(e) = found.error() {
                let code = RDKafkaErrorCode::from(e);
                if code == RDKafkaErrorCode::UnknownTopicOrPartition {
                    return Ok(fence);
                }
                return Err(SendError(format!("metadata of {topic}: {code}")));
            }
            for p in found.partitions() {
                let (_, high) = client
                    .fetch_watermarks(&topic, p.id(), METADATA_TIMEOUT)
                    .map_err(|e| SendError(format!("end of {topic}/{}: {e}", p.id())))?;
                fence.insert(p.id(), u64::try_from(high).unwrap_or(0));
            }
            Ok(fence)
        })
        .await
    }

    /// Reads every topic partition from a little before `from` (its
    /// start when missing) to its end with a consumer of its own, and
    /// returns the messages whose [`ID_HEADER`] starts with `id_prefix`.
    ///
    /// The read starts `batch.num.messages` before the fence and runs to
    /// the partition's end (EOF), not to the high watermark in `to`: some
    /// Kafka-protocol brokers (tansu 0.6) answer a fetch with the batches
    /// that begin at or after the offset asked for, so a read must begin
    /// no later than the batch holding the fence, and they report a high
    /// watermark just past the last batch's first record.
    pub(crate) async fn read_back(
        &self,
        id_prefix: &str,
        from: &Fence,
        to: &Fence,
    ) -> Result<Vec<Delivery>, SendError> {
        let mut assignment = TopicPartitionList::new();
        let mut open = BTreeSet::new();
        for &partition in to.keys().chain(from.keys()) {
            if !open.insert(partition) {
                continue;
            }
            let start = from
                .get(&partition)
                .copied()
                .unwrap_or(0)
                .saturating_sub(self.batch_slack);
            let start = i64::try_from(start).unwrap_or(i64::MAX);
            assignment
                .add_partition_offset(&self.topic, partition, Offset::Offset(start))
                .map_err(|e| SendError(format!("read back {}: {e}", self.topic)))?;
        }
        if open.is_empty() {
            return Ok(Vec::new());
        }
        let _turn = self.lookup_turn().await?;
        let config = self.consumer_config.clone();
        let topic = Arc::clone(&self.topic);
        let id_prefix = id_prefix.to_owned();
        let fence = from.clone();
        blocking(move || {
            let failed = |e: KafkaError| SendError(format!("read back {topic}: {e}"));
            let consumer: BaseConsumer<ReadBackContext> = config
                .create_with_context(ReadBackContext)
                .map_err(failed)?;
            consumer.assign(&assignment).map_err(failed)?;
            let mut found = Vec::new();
            let mut progress = Instant::now();
            while !open.is_empty() {
                if progress.elapsed() > READ_BACK_STALL {
                    return Err(SendError(format!(
                        "read back {topic}: no progress in {READ_BACK_STALL:?}, partitions {open:?} unfinished"
                    )));
                }
                let message = match consumer.poll(Duration::from_millis(200)) {
                    None => continue,
                    Some(Err(KafkaError::PartitionEOF(partition))) => {
                        open.remove(&partition);
                        continue;
                    }
                    Some(Err(e)) => return Err(failed(e)),
                    Some(Ok(message)) => message,
                };
                progress = Instant::now();
                // The slack before the fence only positions the fetch: what
                // lies there was committed, or is another incarnation's
                // (a stream deleted and made again, a sink reset).
                let at = u64::try_from(message.offset()).unwrap_or(0);
                if at < fence.get(&message.partition()).copied().unwrap_or(0) {
                    continue;
                }
                let id = message.headers().and_then(|headers| {
                    headers
                        .iter()
                        .find(|h| h.key == ID_HEADER)
                        .and_then(|h| h.value)
                });
                if let Some(offset) = id.and_then(|id| offset_in_id(id, &id_prefix)) {
                    found.push(Delivery {
                        offset,
                        position: BrokerPosition::Kafka {
                            topic: topic.to_string(),
                            partition: message.partition(),
                            offset: message.offset(),
                            sent_at_ms: message.timestamp().to_millis().unwrap_or(0),
                        },
                    });
                }
            }
            Ok(found)
        })
        .await
    }
}

impl KafkaSink {
    /// Waits for a turn among the node's blocking lookups.
    async fn lookup_turn(&self) -> Result<tokio::sync::SemaphorePermit<'_>, SendError> {
        self.lookups
            .acquire()
            .await
            .map_err(|e| SendError(format!("Kafka lookups closed: {e}")))
    }
}

/// The read-back consumer's context: the end of a partition is what a
/// read-back waits for, not an error to log (librdkafka reports it as a
/// global error too).
struct ReadBackContext;

impl ClientContext for ReadBackContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(error, KafkaError::PartitionEOF(_)) {
            tracing::warn!(%error, reason, "Kafka read-back consumer");
        }
    }
}

impl ConsumerContext for ReadBackContext {}

/// Setting prefixes that are about reaching the brokers, which the
/// read-back consumer shares with the producer.
const CONSUMER_SETTINGS: &[&str] = &[
    "security.",
    "enable.ssl.",
    "enable.sasl.",
    "sasl.",
    "ssl.",
    "socket.",
    "client.",
    "broker.",
    "api.version",
    "metadata.",
    "reconnect.",
];

/// Runs a blocking librdkafka call off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SendError> + Send + 'static,
) -> Result<T, SendError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SendError(format!("a Kafka request panicked: {e}")))?
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
