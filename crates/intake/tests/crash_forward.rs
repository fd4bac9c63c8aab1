//! Exactly once to the broker across SIGKILL: `intake serve` forwards a
//! 3-partition stream to Kafka (tansu) or NATS JetStream with small
//! batches, many in flight, while clients push, and is killed at random
//! moments (on the same data dir): one kill in four during the node's
//! start, the others 0–400 ms after its sink sends again. A sink that
//! starts reads back from the broker what it had sent and not committed
//! (by `Intake-Id` on Kafka, `Nats-Msg-Id` on NATS) and skips it, so a
//! plain consumer that does NOT deduplicate sees every record of the
//! node's log exactly once, with its value, in per-partition order.
//!
//! - The ground truth is the node's own log, read back over HTTP once the
//!   sink has caught up; every acknowledged push is in it (pushes cut by a
//!   kill may or may not be stored: either is fine).
//! - Kafka: `partitioning = "mirror"`, so a stream partition is one topic
//!   partition and order is meaningful; the topic is read from the start
//!   to its end.
//! - NATS: the test makes the JetStream stream itself, with a 100 ms
//!   duplicate window (the least the server takes), and restarts intake
//!   only once that has passed, so the server's window does not hide a
//!   resend after a kill: the sink's read-back has to.
//! - With an outage: the broker goes away twice, once while the node runs
//!   (the node is killed shortly after it is back) and once across a kill
//!   and restart (the restarted sink cannot read back until it is back).
//!
//! `CRASH_FORWARD_ITERATIONS` (default 20) kills per test without an
//! outage (6 with one); `CRASH_SEED` replays a run's kill timing. The
//! tests fail when tansu or nats-server is missing.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use intake_format::api::ReadResponse;
use parking_lot::{Mutex, RwLock};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use serde_json::{Value, json};
use support::{
    Intake, Kafka, Nats, check_downstream, create_stream, push_to, sinks_status, unique,
    wait_forwarded,
};
use tokio_util::sync::CancellationToken;

/// Partitions of the stream (and of the Kafka topic).
const PARTITIONS: u32 = 3;
/// Records per send: small, so that many batches are in flight.
const BATCH_RECORDS: usize = 20;
/// Concurrent pushing clients.
const CLIENTS: usize = 4;
/// Records per push.
const RECORDS_PER_PUSH: usize = 10;
/// A client's pause after each push to a stream with a Kafka sink: about
/// 3,000 records a second in all. Unpaced, the clients outrun a debug
/// build's Kafka sink (which also needs a while to start after each
/// kill), and the backlog, not the kills, makes the run long. A NATS sink
/// keeps up with unpaced clients.
const KAFKA_PUSH_PAUSE: Duration = Duration::from_millis(10);
/// Kills in a test with a broker outage.
const OUTAGE_KILLS: usize = 6;
/// The JetStream stream's duplicate window: the least nats-server takes.
/// A killed node is restarted only once it has passed, so it cannot hide
/// a resend after a kill.
const DUPLICATE_WINDOW: Duration = Duration::from_millis(100);

/// Kills per test without an outage: `CRASH_FORWARD_ITERATIONS`, 20 by
/// default.
fn iterations() -> usize {
    std::env::var("CRASH_FORWARD_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

/// `CRASH_SEED`, or a random seed; printed so that a run can be replayed.
fn seed(test: &str) -> u64 {
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("{test}: CRASH_SEED={seed}");
    seed
}

/// A broker the test can take away from intake and bring back.
trait Outage {
    /// Takes the broker away.
    fn begin(&mut self);
    /// Brings it back.
    fn end(&mut self);
}

impl Outage for Kafka {
    /// The network to tansu is cut (its in-memory store stays).
    fn begin(&mut self) {
        self.proxy.cut();
    }

    fn end(&mut self) {
        self.proxy.restore();
    }
}

impl Outage for Nats {
    /// The server is killed (its file store stays).
    fn begin(&mut self) {
        self.stop();
    }

    fn end(&mut self) {
        self.start();
    }
}

/// Clients pushing [`RECORDS_PER_PUSH`] unique records per request to the
/// node at `base`, whichever node that is now; while it is `None` (the
/// node is down) they wait. A push that fails is not acknowledged and
/// not retried.
struct Clients {
    base: Arc<RwLock<Option<String>>>,
    acked: Arc<Mutex<BTreeMap<(u32, u64), Value>>>,
    /// Pushes answered with 200, over the whole run.
    answered: Arc<AtomicU64>,
    /// Pushes that failed (node killed or not yet up).
    failed: Arc<AtomicU64>,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Clients {
    /// Starts [`CLIENTS`] clients pushing to `stream` at `base`, each
    /// pausing `pause` after a push.
    fn start(stream: &str, base: String, pause: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let mut clients = Self {
            base: Arc::new(RwLock::new(Some(base))),
            acked: Arc::default(),
            answered: Arc::default(),
            failed: Arc::default(),
            stop: CancellationToken::new(),
            tasks: Vec::new(),
        };
        for client in 0..CLIENTS {
            let (http, stream, base, acked, answered, failed, stop) = (
                http.clone(),
                stream.to_owned(),
                Arc::clone(&clients.base),
                Arc::clone(&clients.acked),
                Arc::clone(&clients.answered),
                Arc::clone(&clients.failed),
                clients.stop.clone(),
            );
            clients.tasks.push(tokio::spawn(async move {
                // Every attempt has its own `n`: records are unique, also
                // those of a push that failed and was stored anyway.
                for n in 0.. {
                    if stop.is_cancelled() {
                        return;
                    }
                    let Some(url) = base.read().clone() else {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    let records: Vec<Value> = (0..RECORDS_PER_PUSH)
                        .map(|i| json!({"client": client, "n": n, "i": i}))
                        .collect();
                    match push_to(&http, &url, &stream, &records).await {
                        Ok(placed) => {
                            acked.lock().extend(placed.into_iter().zip(records));
                            answered.fetch_add(1, Ordering::SeqCst);
                            if !pause.is_zero() {
                                tokio::time::sleep(pause).await;
                            }
                        }
                        Err((status, body)) => {
                            assert!(
                                !(400..500).contains(&status),
                                "push refused with {status}: {body}"
                            );
                            failed.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
            }));
        }
        clients
    }

    /// Points the clients at `base`, or holds them while the node is down.
    fn point_at(&self, base: Option<String>) {
        *self.base.write() = base;
    }

    /// Waits until a push is answered after `answered` were (the node is
    /// up and takes records).
    async fn wait_answer_after(&self, answered: u64, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.answered.load(Ordering::SeqCst) <= answered {
            assert!(
                Instant::now() < deadline,
                "{what}: no push answered in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops the clients; the acknowledged records by (partition, offset).
    async fn stop(self) -> BTreeMap<(u32, u64), Value> {
        self.stop.cancel();
        for task in self.tasks {
            task.await.unwrap();
        }
        self.acked.lock().clone()
    }
}

/// What happens to the broker in one iteration of the kill loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Only a kill at a random moment.
    Kill,
    /// The broker goes away for 1.5 s while the node runs; the node is
    /// killed shortly after it is back (failed batches in doubt).
    OutageThenKill,
    /// The broker goes away, the node is killed and restarted, and the
    /// broker is back 2 s later (the new sink cannot read back at first).
    KillDuringOutage,
}

/// A node of the test and how to restart it.
struct Node {
    node: Intake,
    data: tempfile::TempDir,
}

impl Node {
    /// Starts (or restarts) `intake serve` with its data dir `data/data`,
    /// appending its JSON log events (forwarding's at info) to
    /// `data/intake.log`.
    fn serve(data: tempfile::TempDir) -> Self {
        let node = Intake::serve_logging_to(
            &data.path().join("data"),
            &["--log-format", "json"],
            &[("INTAKE_LOG", "warn,intake_forward=info")],
            &log_path(data.path()),
        );
        Self { node, data }
    }

    /// SIGKILL, then a restart on the same data dir once the NATS
    /// duplicate window has passed for everything the node sent.
    fn kill_and_restart(mut self) -> Self {
        self.node.kill();
        std::thread::sleep(DUPLICATE_WINDOW);
        Self::serve(self.data)
    }
}

/// The node's log file, kept over its restarts.
fn log_path(dir: &Path) -> std::path::PathBuf {
    dir.join("intake.log")
}

/// What a run of the kill loop left.
struct Crashed {
    /// The node, up, with the sink caught up.
    node: Node,
    /// Every record of the node's log, by (partition, offset).
    log: BTreeMap<(u32, u64), Value>,
    /// Records acknowledged to the clients.
    acked: usize,
    /// Pushes that failed.
    failed_pushes: u64,
    /// Kills.
    kills: usize,
    /// Kills while the sink was sending (it had sent in that life and had
    /// records left to send).
    kills_sending: usize,
    /// Send errors over every life of the node (as its status showed
    /// them just before each kill, and at the end).
    errors: u64,
    /// The sink's status at the end.
    status: Value,
}

/// Runs `steps` on a new 3-partition stream `name` forwarding through
/// `sink`, with clients pushing throughout (pausing `pause` after each
/// push); then stops the clients, waits until the sink caught up, reads
/// the node's log and checks that every acknowledged record is in it.
async fn crash_loop(
    name: &str,
    sink: Value,
    steps: &[Step],
    mut broker: Option<&mut dyn Outage>,
    pause: Duration,
    rng: &mut StdRng,
) -> Crashed {
    let http = reqwest::Client::new();
    let mut node = Node::serve(tempfile::tempdir().unwrap());
    create_stream(
        &http,
        &node.node,
        json!({"name": name, "partitions": PARTITIONS, "sinks": [sink]}),
    )
    .await;
    let clients = Clients::start(name, node.node.url(""), pause);
    let (mut kills_sending, mut errors) = (0, 0);
    for (iteration, step) in steps.iter().enumerate() {
        // The (re)started node takes records before it is killed; one
        // plain kill in four comes at a random moment of its start (the
        // sink's read-back), the others once the sink sends again.
        let answered = clients.answered.load(Ordering::SeqCst);
        clients
            .wait_answer_after(answered, &format!("iteration {iteration}"))
            .await;
        let at_start = *step == Step::Kill && rng.random_bool(0.25);
        if !at_start {
            wait_sending(&http, &node.node, name, &format!("iteration {iteration}")).await;
        }
        match step {
            Step::Kill => {}
            Step::OutageThenKill => {
                let broker = broker.as_deref_mut().unwrap();
                broker.begin();
                tokio::time::sleep(Duration::from_millis(1500)).await;
                broker.end();
            }
            Step::KillDuringOutage => {
                broker.as_deref_mut().unwrap().begin();
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..400))).await;
        let status = sinks_status(&http, &node.node, name).await;
        clients.point_at(None);
        node = node.kill_and_restart();
        clients.point_at(Some(node.node.url("")));
        let (lag, sent) = (
            status[0]["lag_records"].as_u64().unwrap(),
            status[0]["sent"].as_u64().unwrap(),
        );
        if lag > 0 && sent > 0 {
            kills_sending += 1;
        }
        errors += status[0]["errors"].as_u64().unwrap();
        eprintln!(
            "iteration {iteration} ({step:?}{}): killed with {lag} records to send, {sent} sent and {} errors in that life; {} pushes answered, {} failed",
            if at_start { ", at start" } else { "" },
            status[0]["errors"],
            clients.answered.load(Ordering::SeqCst),
            clients.failed.load(Ordering::SeqCst),
        );
        if *step == Step::KillDuringOutage {
            let answered = clients.answered.load(Ordering::SeqCst);
            clients
                .wait_answer_after(answered, "restarted during the outage")
                .await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            broker.as_deref_mut().unwrap().end();
        }
    }
    // The last node takes records too, then the clients stop.
    let answered = clients.answered.load(Ordering::SeqCst);
    clients
        .wait_answer_after(answered, "after the last restart")
        .await;
    tokio::time::sleep(Duration::from_millis(rng.random_range(50..400))).await;
    let failed_pushes = clients.failed.load(Ordering::SeqCst);
    let acked = clients.stop().await;
    let status = wait_forwarded(&http, &node.node, name).await;
    errors += status["errors"].as_u64().unwrap();

    let log = read_log(&http, &node.node, name).await;
    for ((p, o), value) in &acked {
        assert_eq!(
            log.get(&(*p, *o)),
            Some(value),
            "acknowledged record {p}/{o} missing or different in the log"
        );
    }
    Crashed {
        node,
        log,
        acked: acked.len(),
        failed_pushes,
        kills: steps.len(),
        kills_sending,
        errors,
        status,
    }
}

/// Waits until the sink of `stream` has sent something in this life of
/// `node` (its `sent` counts from the node's start).
async fn wait_sending(http: &reqwest::Client, node: &Intake, stream: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = sinks_status(http, node, stream).await;
        if status[0]["sent"].as_u64().unwrap() > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the sink sent nothing in 60 s: {status}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every record of every partition of `stream`, read from the node, by
/// (partition, offset); checks that each partition starts at 0 and has no
/// gap.
async fn read_log(
    http: &reqwest::Client,
    node: &Intake,
    stream: &str,
) -> BTreeMap<(u32, u64), Value> {
    let mut log = BTreeMap::new();
    for p in 0..PARTITIONS {
        let mut offset = 0;
        loop {
            let r = http
                .get(node.url(&format!(
                    "/v1/streams/{stream}/partitions/{p}/records?offset={offset}&limit=10000"
                )))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let page: ReadResponse = r.json().await.unwrap();
            if page.records.is_empty() {
                break;
            }
            for record in page.records {
                assert_eq!(record.offset, offset, "partition {p}: a gap in the log");
                let value: Value = serde_json::from_str(record.value.get()).unwrap();
                log.insert((p, record.offset), value);
                offset += 1;
            }
            assert_eq!(page.next_offset, offset);
        }
    }
    log
}

/// What the node logged over all its lives (JSON events; a line cut by a
/// kill is skipped).
#[derive(Debug, Default)]
struct Logged {
    /// Read-backs that found records sent before and not committed.
    read_backs: usize,
    /// Records they found: not sent again.
    found_again: u64,
    /// "send failed; retrying" warnings.
    send_failures: usize,
    /// Cursors found without a fence (what was in flight may be resent).
    unfenced: usize,
    /// Error events: target and message.
    errors: Vec<String>,
}

/// Reads the node's log file in `dir`.
fn logged(dir: &Path) -> Logged {
    let text = std::fs::read_to_string(log_path(dir)).unwrap_or_default();
    let mut logged = Logged::default();
    for event in text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        let message = event["fields"]["message"].as_str().unwrap_or_default();
        if message.starts_with("records sent before were found at the broker") {
            logged.read_backs += 1;
            logged.found_again += event["fields"]["records"].as_u64().unwrap_or(0);
        } else if message.starts_with("send failed") {
            logged.send_failures += 1;
        } else if message.starts_with("sink cursor has no fence") {
            logged.unfenced += 1;
        }
        if event["level"] == "ERROR" {
            logged
                .errors
                .push(format!("{}: {message}", event["target"]));
        }
    }
    logged
}

/// One message read from the broker.
#[derive(Debug)]
struct Downstream {
    /// The Kafka partition (0 on NATS).
    broker_partition: u32,
    /// From `Intake-Id` / `Nats-Msg-Id`: stream, partition, offset.
    stream: String,
    partition: u32,
    offset: u64,
    value: Value,
}

/// `STREAM/PARTITION/OFFSET` split.
fn parse_id(id: &str) -> (String, u32, u64) {
    let mut parts = id.rsplitn(3, '/');
    let offset = parts.next().unwrap().parse().unwrap();
    let partition = parts.next().unwrap().parse().unwrap();
    (parts.next().unwrap().to_owned(), partition, offset)
}

/// Every message of `topic`, read with a plain consumer (no deduplication)
/// from the start of each partition to its end; in order per partition.
/// Blocking.
///
/// The end is where the consumer gets "partition EOF" (the high watermark
/// of a fetch): tansu 0.6.0 answers ListOffsets(latest), which
/// `fetch_watermarks` asks, with the base offset of the newest batch + 1,
/// short of the end by the rest of that batch.
fn read_topic_to_end(brokers: &str, topic: &str) -> Vec<Downstream> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut assignment = rdkafka::TopicPartitionList::new();
    for p in 0..PARTITIONS as i32 {
        assignment
            .add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut at_end: HashMap<i32, bool> = (0..PARTITIONS as i32).map(|p| (p, false)).collect();
    let mut out = Vec::new();
    while at_end.values().any(|end| !end) {
        assert!(
            Instant::now() < deadline,
            "{topic}: partitions not read to their end in 60 s: {at_end:?}"
        );
        let message = match consumer.poll(Duration::from_millis(500)) {
            None => continue,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p, true);
                continue;
            }
            Some(Err(e)) => panic!("{topic}: {e}"),
            Some(Ok(message)) => message,
        };
        at_end.insert(message.partition(), false);
        let id = message
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "Intake-Id"))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_else(|| panic!("no Intake-Id at {topic}/{}", message.partition()));
        let (stream, partition, offset) = parse_id(&id);
        out.push(Downstream {
            broker_partition: message.partition() as u32,
            stream,
            partition,
            offset,
            value: serde_json::from_slice(message.payload().unwrap_or_default()).unwrap(),
        });
    }
    out
}

/// Every message of the JetStream stream `name` (which captures only the
/// sink's subject), in stream order, through a pull consumer without
/// acks: exactly as many as the stream holds.
async fn read_jetstream(url: &str, name: &str) -> Vec<Downstream> {
    let js = jetstream::new(async_nats::connect(url).await.unwrap());
    let mut stream = js.get_stream(name).await.unwrap();
    let held = stream.info().await.unwrap().state.messages;
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut out = Vec::new();
    while (out.len() as u64) < held {
        let message = tokio::time::timeout(Duration::from_secs(20), messages.next())
            .await
            .unwrap_or_else(|_| panic!("{name}: read {} of {held} messages", out.len()))
            .unwrap()
            .unwrap();
        let id = message
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .unwrap_or_else(|| panic!("no Nats-Msg-Id in {name}"))
            .as_str()
            .to_owned();
        let (stream, partition, offset) = parse_id(&id);
        out.push(Downstream {
            broker_partition: 0,
            stream,
            partition,
            offset,
            value: serde_json::from_slice(&message.payload).unwrap(),
        });
    }
    out
}

/// Creates the JetStream stream `name` capturing `subject` with a
/// [`DUPLICATE_WINDOW`] the server keeps as asked.
async fn create_jetstream(url: &str, name: &str, subject: &str) {
    let js = jetstream::new(async_nats::connect(url).await.unwrap());
    let mut stream = js
        .create_stream(stream::Config {
            name: name.to_owned(),
            subjects: vec![subject.to_owned()],
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        })
        .await
        .unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.config.duplicate_window, DUPLICATE_WINDOW);
}

/// Checks that `got` holds every record of `log` exactly once: no
/// duplicate, nothing missing or unknown, same value, in per-partition
/// order. Prints the test's one-line summary first.
fn check_exactly_once(test: &str, seed: u64, name: &str, run: &Crashed, got: &[Downstream]) {
    let logged = logged(run.node.data.path());
    let mut copies: BTreeMap<(u32, u64), usize> = BTreeMap::new();
    for m in got {
        *copies.entry((m.partition, m.offset)).or_default() += 1;
    }
    let twice: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).collect();
    println!(
        "{test}: {} kills ({} while the sink was sending), {} records in the log ({} acknowledged, {} pushes failed), {} read downstream, duplicates={}; {} read-backs found {} records sent before and not committed; {} send failures logged, {} errors counted; {} unfenced cursors; sent in the last life {}; CRASH_SEED={seed}",
        run.kills,
        run.kills_sending,
        run.log.len(),
        run.acked,
        run.failed_pushes,
        got.len(),
        got.len() - copies.len(),
        logged.read_backs,
        logged.found_again,
        logged.send_failures,
        run.errors,
        logged.unfenced,
        run.status["sent"],
    );
    if let Some(first) = logged.errors.first() {
        eprintln!(
            "{test}: {} error events logged, the first: {first}",
            logged.errors.len()
        );
    }
    let unknown: Vec<_> = copies
        .keys()
        .filter(|at| !run.log.contains_key(at))
        .collect();
    assert!(
        unknown.is_empty(),
        "{test} (CRASH_SEED={seed}): {} positions downstream are not in the log, e.g. {:?}",
        unknown.len(),
        &unknown[..unknown.len().min(20)]
    );
    assert!(got.iter().all(|m| m.stream == name), "another stream's id");
    let missing: Vec<_> = run
        .log
        .keys()
        .filter(|at| !copies.contains_key(at))
        .collect();
    if !missing.is_empty() || !twice.is_empty() {
        eprintln!(
            "{test} (CRASH_SEED={seed}): {} records of the log missing downstream, the first 20 (partition, offset): {:?}; {} sent more than once, the first 20 ((partition, offset), copies): {:?}",
            missing.len(),
            &missing[..missing.len().min(20)],
            twice.len(),
            &twice[..twice.len().min(20)]
        );
    }
    let duplicates = check_downstream(
        &run.log,
        got.iter().map(|m| (m.partition, m.offset, &m.value)),
    );
    assert_eq!(
        duplicates, 0,
        "{test} (CRASH_SEED={seed}): records sent more than once"
    );
    assert_eq!(got.len(), run.log.len());
}

/// The kill loop's steps with an outage: kills, with the broker away once
/// while the node runs and once across a kill.
fn outage_steps() -> Vec<Step> {
    let mut steps = vec![Step::Kill; OUTAGE_KILLS];
    steps[1] = Step::OutageThenKill;
    steps[OUTAGE_KILLS / 2] = Step::KillDuringOutage;
    steps
}

/// A Kafka sink to `topic`, mirrored, with small batches.
fn kafka_sink(kafka: &Kafka, topic: &str) -> Value {
    json!({"name": "k1", "kind": "kafka", "brokers": kafka.brokers(), "topic": topic,
           "partitioning": "mirror", "batch_records": BATCH_RECORDS})
}

/// A NATS sink to `subject`, with small batches.
fn nats_sink(nats: &Nats, subject: &str) -> Value {
    json!({"name": "n1", "kind": "nats", "url": nats.url(), "subject": subject,
           "batch_records": BATCH_RECORDS})
}

/// Runs the Kafka test: `steps`, then the topic read back and checked.
async fn kafka_test(test: &str, steps: &[Step], outage: bool) {
    let started = Instant::now();
    let seed = seed(test);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut kafka = Kafka::start().await;
    let topic = unique("crashfwd");
    kafka.create_topic(&topic, PARTITIONS as i32).await;
    let name = unique("kcrashfwd");
    let sink = kafka_sink(&kafka, &topic);
    let broker = outage.then_some(&mut kafka as &mut dyn Outage);
    let run = crash_loop(&name, sink, steps, broker, KAFKA_PUSH_PAUSE, &mut rng).await;
    let brokers = kafka.brokers();
    let got = tokio::task::spawn_blocking(move || read_topic_to_end(&brokers, &topic))
        .await
        .unwrap();
    assert!(
        got.iter().all(|m| m.broker_partition == m.partition),
        "mirror: a stream partition is its topic partition"
    );
    check_exactly_once(test, seed, &name, &run, &got);
    eprintln!("{test}: {:.1?}", started.elapsed());
}

/// Runs the NATS test: `steps`, then the JetStream stream read back and
/// checked.
async fn nats_test(test: &str, steps: &[Step], outage: bool) {
    let started = Instant::now();
    let seed = seed(test);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut nats = Nats::start_new();
    let name = unique("ncrashfwd");
    let subject = format!("intake.crashfwd.{name}");
    let jetstream_name = format!("CRASHFWD_{name}");
    create_jetstream(&nats.url(), &jetstream_name, &subject).await;
    let sink = nats_sink(&nats, &subject);
    let broker = outage.then_some(&mut nats as &mut dyn Outage);
    let run = crash_loop(&name, sink, steps, broker, Duration::ZERO, &mut rng).await;
    let got = read_jetstream(&nats.url(), &jetstream_name).await;
    check_exactly_once(test, seed, &name, &run, &got);
    eprintln!("{test}: {:.1?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_gets_each_record_once_across_sigkill() {
    let steps = vec![Step::Kill; iterations()];
    kafka_test("kafka crash", &steps, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_gets_each_record_once_across_sigkill_and_outages() {
    kafka_test("kafka crash+outage", &outage_steps(), true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nats_gets_each_record_once_across_sigkill() {
    let steps = vec![Step::Kill; iterations()];
    nats_test("nats crash", &steps, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nats_gets_each_record_once_across_sigkill_and_outages() {
    nats_test("nats crash+outage", &outage_steps(), true).await;
}
