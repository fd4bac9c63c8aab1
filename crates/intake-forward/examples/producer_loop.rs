//! The brokers' own producers sending the records `bench/forward.sh` sends
//! through intake, as the baseline of the forwarding benchmark:
//!
//! ```text
//! producer_loop nats  nats://127.0.0.1:4222 SUBJECT COUNT RECORD_BYTES
//! producer_loop kafka 127.0.0.1:9092        TOPIC   COUNT RECORD_BYTES
//! producer_loop kafka-topic 127.0.0.1:9092  TOPIC   PARTITIONS
//! producer_loop nats-count  nats://127.0.0.1:4222 SUBJECT
//! producer_loop kafka-count 127.0.0.1:9092  TOPIC
//! producer_loop nats-latency  nats://127.0.0.1:4222 SUBJECT COUNT RECORD_BYTES
//! producer_loop kafka-latency 127.0.0.1:9092        TOPIC   COUNT RECORD_BYTES
//! ```
//!
//! NATS: async-nats JetStream publishes with a `Nats-Msg-Id` each, up to
//! 1000 acks outstanding (intake's default batch). Kafka: an rdkafka
//! `FutureProducer` with intake's settings (idempotent, `acks=all`,
//! `linger.ms=5`), each message with an id header as intake's sink sends,
//! every delivery report awaited. Prints
//! `RECORDS records in SECONDS s: RATE records/s`.
//!
//! The `-latency` modes send one record at a time and wait for its
//! acknowledgement before the next (what a push to a stream with
//! `ack = "sink"` waits for), and print `latency p50 X ms p99 Y ms`.
//!
//! The `-count` modes read a subject or topic from its start and print
//! `MESSAGES messages, DISTINCT distinct ids`: equal when nothing arrived
//! twice (the ids are `Nats-Msg-Id` and `Intake-Id`).

use std::error::Error;
use std::time::Instant;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// Outstanding JetStream acks, as in one intake batch.
const WINDOW: usize = 1000;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [kind, brokers, topic, partitions] = args.as_slice()
        && kind == "kafka-topic"
    {
        return create_topic(brokers, topic, partitions.parse()?).await;
    }
    if let [kind, server, target] = args.as_slice() {
        let (messages, ids) = match kind.as_str() {
            "nats-count" => nats_ids(server, target).await?,
            "kafka-count" => kafka_ids(server, target).await?,
            other => return Err(format!("unknown mode {other:?}").into()),
        };
        let distinct = ids.len();
        println!("{messages} messages, {distinct} distinct ids");
        return Ok(());
    }
    let [kind, server, target, count, size] = args.as_slice() else {
        return Err(
            "usage: producer_loop nats|kafka SERVER SUBJECT|TOPIC COUNT RECORD_BYTES".into(),
        );
    };
    let count: usize = count.parse()?;
    let size: usize = size.parse()?;
    let records: Vec<Vec<u8>> = (0..count).map(|i| record(i, size)).collect();
    if let Some(broker) = kind.strip_suffix("-latency") {
        let mut latencies = match broker {
            "nats" => nats_latencies(server, target, &records).await?,
            "kafka" => kafka_latencies(server, target, &records).await?,
            other => return Err(format!("unknown broker kind {other:?}").into()),
        };
        latencies.sort();
        let at = |q: f64| {
            let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
            latencies[i].as_secs_f64() * 1000.0
        };
        println!("latency p50 {:.3} ms p99 {:.3} ms", at(0.5), at(0.99));
        return Ok(());
    }
    let started = Instant::now();
    match kind.as_str() {
        "nats" => nats(server, target, &records).await?,
        "kafka" => kafka(server, target, &records).await?,
        other => return Err(format!("unknown broker kind {other:?}").into()),
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{count} records in {secs:.3} s: {:.0} records/s",
        count as f64 / secs
    );
    Ok(())
}

/// A JSON record of about `size` bytes, as `bench/forward.sh` pushes.
fn record(i: usize, size: usize) -> Vec<u8> {
    let head = format!("{{\"n\":{i},\"pad\":\"");
    let pad = size.saturating_sub(head.len() + 2);
    let mut out = head.into_bytes();
    out.resize(out.len() + pad, b'x');
    out.extend_from_slice(b"\"}");
    out
}

/// A JetStream context on `url` with a stream for `subject`, as intake's
/// sink makes one.
async fn jetstream_for(url: &str, subject: &str) -> Result<async_nats::jetstream::Context> {
    use async_nats::jetstream;
    let js = jetstream::new(async_nats::connect(url).await?);
    js.get_or_create_stream(jetstream::stream::Config {
        name: subject.replace(['.', '*', '>'], "_"),
        subjects: vec![subject.to_owned()],
        ..Default::default()
    })
    .await?;
    Ok(js)
}

async fn nats(url: &str, subject: &str, records: &[Vec<u8>]) -> Result<()> {
    use async_nats::jetstream::message::PublishMessage;
    let js = jetstream_for(url, subject).await?;
    let run = std::process::id();
    let mut pending = std::collections::VecDeque::with_capacity(WINDOW);
    for (i, value) in records.iter().enumerate() {
        if pending.len() == WINDOW
            && let Some(ack) = pending.pop_front()
        {
            let ack: async_nats::jetstream::context::PublishAckFuture = ack;
            ack.await?;
        }
        let message = PublishMessage::build()
            .payload(value.clone().into())
            .message_id(format!("loop-{run}/0/{i}"));
        pending.push_back(js.send_publish(subject.to_owned(), message).await?);
    }
    for ack in pending {
        ack.await?;
    }
    Ok(())
}

async fn kafka(brokers: &str, topic: &str, records: &[Vec<u8>]) -> Result<()> {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()?;
    let mut deliveries = Vec::with_capacity(records.len());
    let run = std::process::id();
    for (i, value) in records.iter().enumerate() {
        let id = format!("loop-{run}/0/{i}");
        let headers = rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
            key: "Intake-Id",
            value: Some(id.as_bytes()),
        });
        let mut message: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
            .payload(value.as_slice())
            .headers(headers);
        loop {
            match producer.send_result(message) {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    message = back;
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }
    for delivery in deliveries {
        delivery.await?.map_err(|(e, _)| e)?;
    }
    Ok(())
}

/// Creates `topic` (the benchmark's brokers may not create topics on use).
async fn create_topic(brokers: &str, topic: &str, partitions: i32) -> Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for result in admin.create_topics(&[new], &AdminOptions::new()).await? {
        result.map_err(|(topic, code)| format!("cannot create topic {topic}: {code}"))?;
    }
    Ok(())
}

/// Every message of `subject` (from its JetStream stream's start): how
/// many, and their distinct `Nats-Msg-Id`s.
async fn nats_ids(url: &str, subject: &str) -> Result<(u64, std::collections::HashSet<String>)> {
    use async_nats::jetstream::{self, consumer};
    use futures::StreamExt;
    let js = jetstream::new(async_nats::connect(url).await?);
    let name = js.stream_by_subject(subject.to_owned()).await?;
    let stream = js.get_stream(&name).await?;
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            filter_subject: subject.to_owned(),
            ack_policy: consumer::AckPolicy::None,
            headers_only: true,
            ..Default::default()
        })
        .await?;
    let mut pending = consumer.cached_info().num_pending;
    let mut messages = consumer.messages().await?;
    let (mut count, mut ids) = (0, std::collections::HashSet::new());
    while pending > 0 {
        let message = messages.next().await.ok_or("the consumer ended")??;
        pending -= 1;
        count += 1;
        if let Some(id) = message.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")) {
            ids.insert(id.to_string());
        }
    }
    Ok((count, ids))
}

/// Every message of `topic`: how many, and their distinct `Intake-Id`s.
async fn kafka_ids(brokers: &str, topic: &str) -> Result<(u64, std::collections::HashSet<String>)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "producer-loop-count")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), std::time::Duration::from_secs(10))?;
    let partitions = metadata
        .topics()
        .first()
        .ok_or("no such topic")?
        .partitions()
        .len();
    let mut assignment = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        assignment.add_partition_offset(topic, p as i32, rdkafka::Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let (mut count, mut ids) = (0, std::collections::HashSet::new());
    let mut open = partitions;
    while open > 0 {
        match consumer.poll(std::time::Duration::from_secs(10)) {
            None => return Err("no message in 10 s".into()),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => open -= 1,
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(message)) => {
                count += 1;
                let id = message.headers().and_then(|h| {
                    h.iter()
                        .find(|h| h.key == "Intake-Id")
                        .and_then(|h| h.value)
                });
                if let Some(id) = id {
                    ids.insert(String::from_utf8_lossy(id).into_owned());
                }
            }
        }
    }
    Ok((count, ids))
}

/// One JetStream publish at a time, each awaited: the round trip of each.
async fn nats_latencies(
    url: &str,
    subject: &str,
    records: &[Vec<u8>],
) -> Result<Vec<std::time::Duration>> {
    use async_nats::jetstream::message::PublishMessage;
    let js = jetstream_for(url, subject).await?;
    let run = std::process::id();
    let mut out = Vec::with_capacity(records.len());
    for (i, value) in records.iter().enumerate() {
        let started = Instant::now();
        let message = PublishMessage::build()
            .payload(value.clone().into())
            .message_id(format!("loop-{run}/0/{i}"));
        js.send_publish(subject.to_owned(), message).await?.await?;
        out.push(started.elapsed());
    }
    Ok(out)
}

/// One Kafka produce at a time, each delivery report awaited.
async fn kafka_latencies(
    brokers: &str,
    topic: &str,
    records: &[Vec<u8>],
) -> Result<Vec<std::time::Duration>> {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .create()?;
    let run = std::process::id();
    let mut out = Vec::with_capacity(records.len());
    for (i, value) in records.iter().enumerate() {
        let started = Instant::now();
        let id = format!("loop-{run}/0/{i}");
        let headers = rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
            key: "Intake-Id",
            value: Some(id.as_bytes()),
        });
        let message: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
            .payload(value.as_slice())
            .headers(headers);
        producer
            .send(message, std::time::Duration::from_secs(30))
            .await
            .map_err(|(e, _)| e)?;
        out.push(started.elapsed());
    }
    Ok(out)
}
