//! The brokers' own producers sending the records `bench/forward.sh` sends
//! through intake, as the baseline of the forwarding benchmark:
//!
//! ```text
//! producer_loop nats  nats://127.0.0.1:4222 SUBJECT COUNT RECORD_BYTES
//! producer_loop kafka 127.0.0.1:9092        TOPIC   COUNT RECORD_BYTES
//! producer_loop kafka-topic 127.0.0.1:9092  TOPIC   PARTITIONS
//! ```
//!
//! NATS: async-nats JetStream publishes with a `Nats-Msg-Id` each, up to
//! 1000 acks outstanding (intake's default batch). Kafka: an rdkafka
//! `FutureProducer` with intake's settings (idempotent, `acks=all`,
//! `linger.ms=5`), every delivery report awaited. Prints
//! `RECORDS records in SECONDS s: RATE records/s`.

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
    let [kind, server, target, count, size] = args.as_slice() else {
        return Err(
            "usage: producer_loop nats|kafka SERVER SUBJECT|TOPIC COUNT RECORD_BYTES".into(),
        );
    };
    let count: usize = count.parse()?;
    let size: usize = size.parse()?;
    let records: Vec<Vec<u8>> = (0..count).map(|i| record(i, size)).collect();
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

async fn nats(url: &str, subject: &str, records: &[Vec<u8>]) -> Result<()> {
    use async_nats::jetstream::{self, message::PublishMessage};
    let js = jetstream::new(async_nats::connect(url).await?);
    // A JetStream stream for the subject, as intake's sink makes one.
    js.get_or_create_stream(jetstream::stream::Config {
        name: subject.replace(['.', '*', '>'], "_"),
        subjects: vec![subject.to_owned()],
        ..Default::default()
    })
    .await?;
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
    for value in records {
        let mut message: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(topic).payload(value.as_slice());
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
