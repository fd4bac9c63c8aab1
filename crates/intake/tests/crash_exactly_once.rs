//! Exactly once across SIGKILL: clients send every request with a key and
//! send it again, with the same key and body, until they get an answer,
//! while `intake serve` is killed at random moments and restarted on the
//! same port. Half the clients send an `Idempotency-Key` over plain HTTP;
//! the other half use the Rust SDK, whose retries repeat a producer id and
//! sequence. At the end every record of every request is stored exactly
//! once: none lost, none twice, read back and checked by content.
//!
//! `CRASH_ITERATIONS` (default 20) kills; `CRASH_SEED` replays a run;
//! `CRASH_STREAMS` (default 4) streams of 3 partitions.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use intake_format::api::ReadResponse;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CLIENTS: usize = 8;
const PARTITIONS: u32 = 3;

fn streams() -> usize {
    std::env::var("CRASH_STREAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
}

/// A running `intake serve`.
struct Server(Child);

impl Server {
    fn start(data_dir: &Path, addr: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_intake"))
            .args(["serve", "--listen", addr, "--data-dir"])
            .arg(data_dir)
            .env("INTAKE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), format!("listening on {addr}"));
        Self(child)
    }

    fn kill(mut self) {
        self.0.kill().unwrap(); // SIGKILL
        self.0.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the clients share.
#[derive(Default)]
struct Shared {
    /// Set when clients should stop after their current request's answer.
    stop: AtomicBool,
    /// Requests answered, over the whole run.
    answered: AtomicU64,
    /// Every record text of every request sent, with its stream.
    sent: Mutex<Vec<(usize, String)>>,
    /// Sends that were refused or lost and sent again.
    retries: AtomicU64,
    /// Answers marked `Idempotent-Replayed: true`.
    replayed: AtomicU64,
}

/// The records of one request: 1 to 20 small ones, or one time in five
/// 100 to 200 (past the log's direct-write size, so kills land in both
/// kinds of group).
fn records(rng: &mut StdRng, client: usize, request: u64) -> Vec<String> {
    let count = if rng.random_bool(0.2) {
        rng.random_range(100..=200)
    } else {
        rng.random_range(1..=20)
    };
    (0..count)
        .map(|i| {
            let pad = "x".repeat(rng.random_range(0..400));
            format!(r#"{{"client":{client},"request":{request},"i":{i},"pad":"{pad}"}}"#)
        })
        .collect()
}

/// Sends requests with an `Idempotency-Key` over plain HTTP, each until it
/// is answered.
async fn key_client(url: String, id: usize, seed: u64, shared: Arc<Shared>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    for request in 0.. {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let texts = records(&mut rng, id, request);
        let stream = rng.random_range(0..streams());
        shared
            .sent
            .lock()
            .unwrap()
            .extend(texts.iter().map(|t| (stream, t.clone())));
        let body = format!("[{}]", texts.join(","));
        let key = format!("client{id}-request{request}");
        loop {
            let answer = http
                .post(format!("{url}/v1/streams/crash{stream}/records"))
                .header("content-type", "application/json")
                .header("idempotency-key", &key)
                .body(body.clone())
                .send()
                .await;
            let answer = match answer {
                Ok(a) => a,
                Err(_) => {
                    shared.retries.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let status = answer.status();
            let replayed = answer.headers().contains_key("idempotent-replayed");
            let Ok(text) = answer.text().await else {
                shared.retries.fetch_add(1, Ordering::SeqCst);
                continue;
            };
            if status.is_server_error() {
                shared.retries.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            assert!(
                status.is_success(),
                "client {id}: {key} refused with {status}: {text}"
            );
            let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(answer["records"], texts.len(), "{text}");
            if replayed {
                shared.replayed.fetch_add(1, Ordering::SeqCst);
            }
            break;
        }
        shared.answered.fetch_add(1, Ordering::SeqCst);
    }
}

/// Sends requests through the SDK (producer sequences, its own retries).
async fn sdk_client(addr: String, id: usize, seed: u64, shared: Arc<Shared>) {
    let client = intake_client::Client::builder()
        .node(addr)
        .retry(intake_client::RetryPolicy {
            max_backoff: Duration::from_millis(200),
            deadline: Duration::from_secs(120),
            ..Default::default()
        })
        .request_timeout(Duration::from_secs(10))
        .freeze_for(Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    for request in 0.. {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let texts = records(&mut rng, id, request);
        let stream = rng.random_range(0..streams());
        shared
            .sent
            .lock()
            .unwrap()
            .extend(texts.iter().map(|t| (stream, t.clone())));
        let ack = client
            .send(
                &format!("crash{stream}"),
                texts.iter().map(|t| Bytes::from(t.clone())).collect(),
            )
            .await
            .unwrap_or_else(|e| panic!("SDK client {id}: request {request}: {e}"));
        assert_eq!(ack.response.records, texts.len());
        shared
            .retries
            .fetch_add(u64::from(ack.attempts - 1), Ordering::SeqCst);
        shared.answered.fetch_add(1, Ordering::SeqCst);
    }
}

/// Every record stored in the crash streams, with its stream.
async fn stored(url: &str) -> Vec<(usize, String)> {
    let http = reqwest::Client::new();
    let mut all = Vec::new();
    for (stream, p) in (0..streams()).flat_map(|s| (0..PARTITIONS).map(move |p| (s, p))) {
        let mut offset = 0;
        loop {
            let page: ReadResponse = http
                .get(format!(
                    "{url}/v1/streams/crash{stream}/partitions/{p}/records?offset={offset}&limit=10000"
                ))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if page.records.is_empty() {
                break;
            }
            all.extend(
                page.records
                    .iter()
                    .map(|r| (stream, r.value.get().to_owned())),
            );
            offset = page.next_offset;
        }
    }
    all
}

/// Waits until `answered` passes `at_least`.
async fn wait_for_answers(shared: &Shared, at_least: u64, what: &str) {
    tokio::time::timeout(Duration::from_secs(60), async {
        while shared.answered.load(Ordering::SeqCst) < at_least {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: no request answered within 60 s"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_requests_are_stored_exactly_once_across_sigkill() {
    let iterations: usize = std::env::var("CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!(
        "exactly-once crash test: {iterations} iterations, {} streams, CRASH_SEED={seed}",
        streams()
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    // A fixed port, so that the clients' retries find the restarted node.
    let addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().to_string()
    };
    let url = format!("http://{addr}");
    let mut server = Server::start(dir.path(), &addr);
    let http = reqwest::Client::new();
    for stream in 0..streams() {
        let created = http
            .post(format!("{url}/v1/streams"))
            .json(&serde_json::json!({"name": format!("crash{stream}"), "partitions": PARTITIONS}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
    }
    let shared = Arc::new(Shared::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let shared = Arc::clone(&shared);
            let seed = rng.random();
            if id % 2 == 0 {
                tokio::spawn(key_client(url.clone(), id, seed, shared))
            } else {
                tokio::spawn(sdk_client(addr.clone(), id, seed, shared))
            }
        })
        .collect();

    for iteration in 0..iterations {
        // The (re)started node must answer before it is killed again.
        let answered = shared.answered.load(Ordering::SeqCst);
        wait_for_answers(&shared, answered + 1, &format!("iteration {iteration}")).await;
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..700))).await;
        server.kill();
        eprintln!(
            "iteration {iteration}: killed after {} answers, {} retries, {} replays",
            shared.answered.load(Ordering::SeqCst),
            shared.retries.load(Ordering::SeqCst),
            shared.replayed.load(Ordering::SeqCst),
        );
        server = Server::start(dir.path(), &addr);
    }
    // Every request in flight at the last kill is answered, then the
    // clients stop.
    let answered = shared.answered.load(Ordering::SeqCst);
    wait_for_answers(&shared, answered + 1, "after the last restart").await;
    shared.stop.store(true, Ordering::SeqCst);
    for c in clients {
        tokio::time::timeout(Duration::from_secs(150), c)
            .await
            .unwrap()
            .unwrap();
    }

    let mut expected: HashMap<(usize, String), u32> = HashMap::new();
    for record in shared.sent.lock().unwrap().iter() {
        *expected.entry(record.clone()).or_default() += 1;
    }
    assert!(expected.values().all(|n| *n == 1), "records are unique");
    let mut found: HashMap<(usize, String), u32> = HashMap::new();
    for record in stored(&url).await {
        *found.entry(record).or_default() += 1;
    }
    let twice: Vec<_> = found.iter().filter(|(_, n)| **n > 1).collect();
    let lost: Vec<_> = expected
        .keys()
        .filter(|r| !found.contains_key(*r))
        .collect();
    let unknown: Vec<_> = found
        .keys()
        .filter(|r| !expected.contains_key(*r))
        .collect();
    eprintln!(
        "{} records sent in {} requests, {} retries, {} replays; {} stored; {} lost, {} twice",
        expected.len(),
        shared.answered.load(Ordering::SeqCst),
        shared.retries.load(Ordering::SeqCst),
        shared.replayed.load(Ordering::SeqCst),
        found.values().sum::<u32>(),
        lost.len(),
        twice.len()
    );
    assert!(twice.is_empty(), "stored twice: {:?}", twice.first());
    assert!(lost.is_empty(), "lost: {:?}", lost.first());
    assert!(unknown.is_empty(), "never sent: {:?}", unknown.first());
    assert!(
        shared.retries.load(Ordering::SeqCst) > 0,
        "the kills cut no request: the test proved nothing"
    );
    server.kill();
}
