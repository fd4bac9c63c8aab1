//! Forwarding to Kafka, end to end: the real `intake` binary, a real
//! Kafka-protocol broker (tansu, in memory, started by the test), read back
//! with a real consumer (rdkafka's bundled librdkafka, in a consumer group).
//!
//! - Every record reaches its topic with key, headers, timestamp and
//!   `Intake-Id`, in per-partition order, for both partitionings; a restart
//!   sends nothing again.
//! - A broker outage while 8 clients push (the network between intake and
//!   the broker is cut, so the in-memory broker keeps what it stored):
//!   every acknowledged record arrives, in order, no gap, no duplicate.
//! - A crash while forwarding: SIGKILL mid-forward, restart, no gap and
//!   no duplicate.
//! - `ack = "sink"`: the CKafka face answers with the Kafka topic,
//!   partition and offset; with the broker cut off a push waits, then gets
//!   503 with `Retry-After`.
//!
//! The tests fail when tansu is not installed (`./test.sh` installs it).
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use serde_json::{Value, json};
use support::{
    Intake, Kafka, Pushers, check_downstream, create_stream, push, sinks_status, unique,
    wait_forwarded,
};

/// One message consumed from Kafka.
#[derive(Debug)]
struct Consumed {
    kafka_partition: i32,
    kafka_offset: i64,
    key: Option<String>,
    headers: HashMap<String, String>,
    timestamp: Option<i64>,
    value: Value,
    /// From `Intake-Id`: stream, partition, offset.
    stream: String,
    partition: u32,
    offset: u64,
}

/// Every message of `topic`, through a consumer group reading from the
/// earliest offset; waits for at least `expected`, then a little more to
/// see extras. In the order of each Kafka partition.
async fn read_topic(brokers: &str, topic: &str, expected: usize) -> Vec<Consumed> {
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut stream = consumer.stream();
    let mut out = Vec::new();
    loop {
        let wait = if out.len() < expected {
            Duration::from_secs(30)
        } else {
            Duration::from_secs(2)
        };
        let Ok(Some(message)) = tokio::time::timeout(wait, stream.next()).await else {
            break;
        };
        let message = message.unwrap();
        let headers: HashMap<String, String> = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let id = &headers["Intake-Id"];
        let mut parts = id.rsplitn(3, '/');
        let offset = parts.next().unwrap().parse().unwrap();
        let partition = parts.next().unwrap().parse().unwrap();
        let origin = parts.next().unwrap().to_owned();
        out.push(Consumed {
            kafka_partition: message.partition(),
            kafka_offset: message.offset(),
            key: message
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
            timestamp: message.timestamp().to_millis(),
            value: value_of(message.payload().unwrap_or_default()),
            headers,
            stream: origin,
            partition,
            offset,
        });
    }
    assert!(
        out.len() >= expected,
        "read {} messages of {expected} from {topic}",
        out.len()
    );
    out
}

/// A payload as JSON, or as a JSON string when it is not JSON (binary
/// streams).
fn value_of(payload: &[u8]) -> Value {
    serde_json::from_slice(payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()))
}

/// (stream partition, stream offset, value) of each message, for
/// [`check_downstream`]; per stream partition in the order read (a stream
/// partition maps to one Kafka partition under `mirror`).
fn positions(got: &[Consumed]) -> impl Iterator<Item = (u32, u64, &Value)> {
    got.iter().map(|m| (m.partition, m.offset, &m.value))
}

/// An InLong report of `lines` with `dt`.
async fn inlong_report(http: &reqwest::Client, node: &Intake, lines: &[String], dt: i64) {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("groupId", "g1")
        .append_pair("streamId", "s1")
        .append_pair("dt", &dt.to_string())
        .append_pair("cnt", &lines.len().to_string())
        .append_pair("body", &lines.join("\n"))
        .finish();
    let r = http
        .post(node.url("/dataproxy/message"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["code"], "0", "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_record_reaches_kafka_with_key_headers_and_timestamp() {
    let kafka = Kafka::start().await;
    let (mirrored, hashed) = (unique("mirror"), unique("hashed"));
    kafka.create_topic(&mirrored, 3).await;
    kafka.create_topic(&hashed, 3).await;
    let data = tempfile::tempdir().unwrap();
    let node = Intake::serve(data.path(), &[]);
    let http = reqwest::Client::new();
    let name = unique("kfwd");
    create_stream(
        &http,
        &node,
        json!({"name": name, "partitions": 3, "key_field": "device",
               "bindings": {"inlong": [{"group_id": "g1", "stream_id": "s1"}]},
               "sinks": [
                 {"name": "mirror", "kind": "kafka", "brokers": kafka.brokers(),
                  "topic": mirrored, "partitioning": "mirror", "batch_records": 7},
                 {"name": "hashed", "kind": "kafka", "brokers": kafka.brokers(),
                  "topic": hashed}]}),
    )
    .await;
    let mut acked = BTreeMap::new();
    for request in 0..20 {
        // One device per request: keyed records of a request share a
        // partition, so `push` can tell each record's offset.
        let records: Vec<Value> = (0..10)
            .map(|i| json!({"device": format!("d{}", request % 7), "request": request, "i": i}))
            .collect();
        let placed = push(&http, &node, &name, &records).await.unwrap();
        for (at, record) in placed.into_iter().zip(records) {
            acked.insert(at, record);
        }
    }
    let dt = 1_700_000_123_456;
    let lines: Vec<String> = (0..5)
        .map(|i| json!({"device": "inlong", "line": i}).to_string())
        .collect();
    inlong_report(&http, &node, &lines, dt).await;

    let status = wait_forwarded(&http, &node, &name).await;
    assert_eq!(status["kind"], "kafka", "{status}");
    assert_eq!(status["sent"], 205, "{status}");
    assert_eq!(status["errors"], 0, "{status}");

    // Mirror: Kafka partition = stream partition, every record in order.
    let got = read_topic(&kafka.brokers(), &mirrored, 205).await;
    assert_eq!(got.len(), 205);
    let inlong: Vec<&Consumed> = got
        .iter()
        .filter(|m| m.value["device"] == "inlong")
        .collect();
    let mut inlong_acked = BTreeMap::new();
    for m in &inlong {
        inlong_acked.insert((m.partition, m.offset), m.value.clone());
    }
    assert_eq!(inlong.len(), 5);
    acked.extend(inlong_acked);
    assert_eq!(check_downstream(&acked, positions(&got)), 0);
    for m in &got {
        assert_eq!(m.stream, name);
        assert_eq!(m.kafka_partition as u32, m.partition, "mirrored partition");
        assert_eq!(
            m.key.as_deref(),
            m.value["device"].as_str(),
            "the key field becomes the message key"
        );
        assert!(m.timestamp.unwrap() > 1_700_000_000_000);
    }
    for m in inlong {
        assert_eq!(
            m.timestamp,
            Some(dt),
            "InLong's dt is the message timestamp"
        );
        assert_eq!(m.headers["groupId"], "g1");
        assert_eq!(m.headers["streamId"], "s1");
        assert_eq!(m.headers["clientIp"], "127.0.0.1");
    }

    // Key hash: all messages of one key in one Kafka partition, in order.
    let got = read_topic(&kafka.brokers(), &hashed, 205).await;
    assert_eq!(got.len(), 205);
    let mut partition_of_key: HashMap<String, i32> = HashMap::new();
    let mut last: HashMap<(u32, String), u64> = HashMap::new();
    for m in &got {
        let key = m.key.clone().unwrap();
        let p = *partition_of_key
            .entry(key.clone())
            .or_insert(m.kafka_partition);
        assert_eq!(p, m.kafka_partition, "key {key} split over partitions");
        if let Some(before) = last.insert((m.partition, key.clone()), m.offset) {
            assert!(m.offset > before, "key {key} out of order");
        }
    }
    let used: HashSet<i32> = partition_of_key.values().copied().collect();
    assert!(used.len() > 1, "7 keys spread over partitions: {used:?}");

    // A restart resumes from the committed cursors: only new records go.
    drop(node);
    let node = Intake::serve(data.path(), &[]);
    push(
        &http,
        &node,
        &name,
        &[json!({"device": "d0", "after": "restart"})],
    )
    .await
    .unwrap();
    let status = wait_forwarded(&http, &node, &name).await;
    assert_eq!(status["sent"], 1, "only the new record is sent: {status}");
    let got = read_topic(&kafka.brokers(), &mirrored, 206).await;
    assert_eq!(got.len(), 206, "nothing sent twice");
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_outage_under_load_loses_nothing() {
    let kafka = Kafka::start().await;
    let topic = unique("outage");
    kafka.create_topic(&topic, 4).await;
    let data = tempfile::tempdir().unwrap();
    let node = Arc::new(Intake::serve(data.path(), &[]));
    let http = reqwest::Client::new();
    let name = unique("koutage");
    create_stream(
        &http,
        &node,
        json!({"name": name, "partitions": 4,
               "sinks": [{"name": "k1", "kind": "kafka", "brokers": kafka.brokers(),
                          "topic": topic, "partitioning": "mirror"}]}),
    )
    .await;
    let pushers = Pushers::start(&http, &node, &name, 8);
    tokio::time::sleep(Duration::from_secs(2)).await;
    kafka.proxy.cut();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during = sinks_status(&http, &node, &name).await;
    kafka.proxy.restore();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let acked = pushers.stop().await;
    let status = wait_forwarded(&http, &node, &name).await;
    assert!(
        during[0]["lag_records"].as_u64().unwrap() > 0,
        "records queued while the broker was away: {during}"
    );
    let got = read_topic(&kafka.brokers(), &topic, acked.len()).await;
    let duplicates = check_downstream(&acked, positions(&got));
    println!(
        "kafka outage: {} records acknowledged, {} read back, {duplicates} duplicates, {} send errors retried",
        acked.len(),
        got.len(),
        status["errors"]
    );
    assert_eq!(
        duplicates, 0,
        "the idempotent producer drops its own retries"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_while_forwarding_leaves_no_gap() {
    let kafka = Kafka::start().await;
    let topic = unique("crash");
    kafka.create_topic(&topic, 2).await;
    let data = tempfile::tempdir().unwrap();
    let mut node = Intake::serve(data.path(), &[]);
    let http = reqwest::Client::new();
    let name = unique("kcrash");
    create_stream(
        &http,
        &node,
        json!({"name": name, "partitions": 2,
               "sinks": [{"name": "k1", "kind": "kafka", "brokers": kafka.brokers(),
                          "topic": topic, "partitioning": "mirror", "batch_records": 50}]}),
    )
    .await;
    // The sink waits while the records are pushed, then is killed once it
    // has sent some and not all.
    let sink_url = node.url(&format!("/v1/streams/{name}/sinks/k1"));
    let r = http.post(format!("{sink_url}/pause")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut acked = BTreeMap::new();
    for request in 0..300 {
        let records: Vec<Value> = (0..50).map(|i| json!({"r": request, "i": i})).collect();
        let placed = push(&http, &node, &name, &records).await.unwrap();
        for (at, record) in placed.into_iter().zip(records) {
            acked.insert(at, record);
        }
    }
    let r = http
        .post(format!("{sink_url}/resume"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    let (sent, behind) = loop {
        let sinks = sinks_status(&http, &node, &name).await;
        let sent = sinks[0]["sent"].as_u64().unwrap();
        let behind = sinks[0]["lag_records"].as_u64().unwrap();
        if sent > 0 {
            node.kill();
            assert!(behind > 0, "forwarded everything before the kill: {sinks}");
            break (sent, behind);
        }
        assert!(Instant::now() < deadline, "nothing forwarded: {sinks}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let node = Intake::serve(data.path(), &[]);
    let status = wait_forwarded(&http, &node, &name).await;
    let got = read_topic(&kafka.brokers(), &topic, acked.len()).await;
    let duplicates = check_downstream(&acked, positions(&got));
    println!(
        "kafka crash: killed after {sent} records sent, {behind} not yet; {} records, {duplicates} duplicates downstream; sent after restart {}",
        acked.len(),
        status["sent"]
    );
    assert_eq!(
        duplicates, 0,
        "the restarted sink reads back what was in flight and does not send it again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ack_sink_answers_with_the_kafka_position() {
    let kafka = Kafka::start().await;
    let topic = unique("acked");
    kafka.create_topic(&topic, 2).await;
    let data = tempfile::tempdir().unwrap();
    let node = Intake::serve(data.path(), &[]);
    let http = reqwest::Client::new();
    let name = unique("kack");
    let datahub = unique("datahub");
    create_stream(
        &http,
        &node,
        json!({"name": name, "ack": "sink", "ack_timeout_ms": 1500, "format": "binary",
               "bindings": {"datahub_id": datahub},
               "sinks": [{"name": "k1", "kind": "kafka", "brokers": kafka.brokers(),
                          "topic": topic}]}),
    )
    .await;
    let send = |bodies: &[&str]| {
        let message: Vec<Value> = bodies
            .iter()
            .map(|b| json!({"Body": b, "Key": "device-7"}))
            .collect();
        http.post(node.url("/"))
            .header("X-TC-Action", "SendMessage")
            .json(&json!({"DataHubId": datahub, "Message": message}))
            .send()
    };
    let before = now_ms();
    let r = send(&["one", "two"]).await.unwrap();
    let answer: Value = r.json().await.unwrap();
    let ids = answer["Response"]["MessageId"].as_array().unwrap();
    assert_eq!(ids.len(), 2, "{answer}");
    let got = read_topic(&kafka.brokers(), &topic, 2).await;
    for (id, consumed) in ids.iter().zip(&got) {
        // datahubId:topic:partition:offset:receivedMs:sentToKafkaMs
        let fields: Vec<&str> = id.as_str().unwrap().split(':').collect();
        assert_eq!(fields.len(), 6, "{id}");
        assert_eq!(fields[0], datahub);
        assert_eq!(fields[1], topic, "the Kafka topic: {id}");
        assert_eq!(fields[2], consumed.kafka_partition.to_string(), "{id}");
        assert_eq!(fields[3], consumed.kafka_offset.to_string(), "{id}");
        let received: i64 = fields[4].parse().unwrap();
        let sent: i64 = fields[5].parse().unwrap();
        assert!(received >= before && sent >= received, "{id}");
        assert_eq!(consumed.key.as_deref(), Some("device-7"));
    }

    // Broker cut off: the request waits for the ack, then gets 503.
    kafka.proxy.cut();
    let started = Instant::now();
    let r = send(&["three"]).await.unwrap();
    let waited = started.elapsed();
    let retry_after = r.headers().get("retry-after").cloned();
    let answer: Value = r.json().await.unwrap();
    assert_eq!(
        answer["Response"]["Error"]["Code"], "ResourceUnavailable",
        "refused while the broker is away: {answer}"
    );
    assert!(retry_after.is_some(), "{answer}");
    assert!(
        waited >= Duration::from_millis(1400),
        "answered after {waited:?}"
    );
    let native = push(&http, &node, &name, &[json!("four")]).await;
    let (status, body) = native.unwrap_err();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("sink_ack_timeout") && body.contains("retry-after:true"),
        "{body}"
    );

    // Back: what was stored is forwarded, and sends succeed again.
    // (librdkafka and the sink reconnect with backoff: a client retrying
    // on ResourceUnavailable, as Retry-After says, gets through.)
    kafka.proxy.restore();
    let restored = Instant::now();
    loop {
        let answer: Value = send(&["five"]).await.unwrap().json().await.unwrap();
        if answer["Response"]["MessageId"].is_array() {
            break;
        }
        assert_eq!(
            answer["Response"]["Error"]["Code"], "ResourceUnavailable",
            "{answer}"
        );
        assert!(
            restored.elapsed() < Duration::from_secs(30),
            "still refused after the broker came back: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let status = wait_forwarded(&http, &node, &name).await;
    let sent = status["sent"].as_u64().unwrap();
    let got = read_topic(&kafka.brokers(), &topic, sent as usize).await;
    // The CKafka messages share a key, so a Kafka partition, in order;
    // "five" is there once per attempt the test made. The native push has
    // no key, and its binary stream keeps the body, `["four"]`, as it is.
    let keyed: Vec<&Value> = got
        .iter()
        .filter(|m| m.key.is_some())
        .map(|m| &m.value)
        .collect();
    assert_eq!(
        keyed[..3],
        [&json!("one"), &json!("two"), &json!("three")],
        "{keyed:?}"
    );
    assert!(
        keyed.len() > 3 && keyed[3..].iter().all(|b| **b == json!("five")),
        "{keyed:?}"
    );
    let unkeyed: Vec<&Value> = got
        .iter()
        .filter(|m| m.key.is_none())
        .map(|m| &m.value)
        .collect();
    assert_eq!(unkeyed, [&json!(["four"])]);
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
