//! Crash safety of the real binary: 8 clients push, each request to a
//! stream picked at random among `CRASH_STREAMS` (default 4; every
//! partition shares the node's journal; one request in five is large
//! enough to be written straight to its segment), while `intake serve` is killed
//! with SIGKILL at a random moment, then restarted; every acknowledged
//! record must be readable exactly once, byte for byte, in order within its
//! partition. Repeated `CRASH_ITERATIONS` times (default 20); `CRASH_SEED`
//! replays a run.
//!
//! Every iteration must acknowledge records after its restart before the
//! next kill, and a client fails the test on any answer but a success, and
//! on a lost connection before the kill: a restarted node that refused
//! every push, or failed some, cannot pass.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use intake_format::api::{AppendResponse, ReadResponse, StreamView};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CLIENTS: usize = 8;
const PARTITIONS: u32 = 3;

/// A running `intake serve` and its base URL.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(data_dir: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_intake"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
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
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Self {
            url: format!("http://{addr}"),
            child,
        }
    }

    fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }
}

/// A failed test does not leave its node running (it would hold the test
/// harness's output pipe open).
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The exact JSON text of every acknowledged record, by (stream,
/// partition, offset).
type Acked = HashMap<(usize, u32, u64), String>;

fn streams() -> usize {
    std::env::var("CRASH_STREAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
}

/// What the clients of one iteration share.
struct Iteration {
    /// Set just before the SIGKILL: from then on a lost connection is
    /// expected, before it a failure.
    killing: AtomicBool,
    /// Requests acknowledged in this iteration.
    acknowledged: AtomicU64,
    /// Woken at each acknowledgement.
    progress: tokio::sync::Notify,
}

/// Pushes from one client until the server dies; records what was acked.
async fn client(
    http: reqwest::Client,
    url: String,
    id: usize,
    seed: u64,
    acked: Arc<Mutex<Acked>>,
    first_seq: u64,
    iteration: Arc<Iteration>,
) -> u64 {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seq = first_seq;
    loop {
        // One request in five is large (~20-90 KB): alone it fills a group
        // past the log's direct-write size, so kills land in groups
        // written straight to segments as well as in journaled ones.
        let count = if rng.random_bool(0.2) {
            rng.random_range(100..=200)
        } else {
            rng.random_range(1..=20)
        };
        let texts: Vec<String> = (0..count)
            .map(|i| {
                let pad = "x".repeat(rng.random_range(0..400));
                format!(r#"{{"client":{id},"seq":{},"pad":"{pad}"}}"#, seq + i)
            })
            .collect();
        let body = format!("[{}]", texts.join(","));
        let stream = rng.random_range(0..streams());
        let answer = http
            .post(format!("{url}/v1/streams/crash{stream}/records"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        // A connection lost to the kill ends the client; anything else
        // that is not a success fails the test.
        let answer = match answer {
            Ok(answer) => answer,
            Err(_) if iteration.killing.load(Ordering::SeqCst) => return seq,
            Err(e) => panic!("client {id}: push failed before the kill: {e}"),
        };
        let status = answer.status();
        let body = match answer.bytes().await {
            Ok(body) => body,
            Err(_) if iteration.killing.load(Ordering::SeqCst) => return seq,
            Err(e) => panic!("client {id}: answer cut before the kill: {e}"),
        };
        assert!(
            status.is_success(),
            "client {id}: push refused with {status}: {}",
            String::from_utf8_lossy(&body)
        );
        let answer: AppendResponse = serde_json::from_slice(&body).unwrap();
        assert_eq!(answer.records, count as usize);
        assert_eq!(
            answer.partitions.len(),
            1,
            "an unkeyed request goes to one partition"
        );
        let range = answer.partitions[0];
        assert_eq!(range.last_offset - range.first_offset + 1, count);
        let mut acked = acked.lock().unwrap();
        for (i, text) in texts.into_iter().enumerate() {
            let previous = acked.insert(
                (stream, range.partition, range.first_offset + i as u64),
                text,
            );
            assert!(
                previous.is_none(),
                "offset {} of partition {} acknowledged twice",
                range.first_offset,
                range.partition
            );
        }
        drop(acked);
        iteration.acknowledged.fetch_add(1, Ordering::SeqCst);
        iteration.progress.notify_waiters();
        seq += count;
    }
}

/// Reads every partition from its start and checks all acknowledged records.
async fn verify(http: &reqwest::Client, url: &str, acked: &Acked) -> usize {
    let mut found = 0;
    let mut seen = HashSet::new();
    for (stream, p) in (0..streams()).flat_map(|s| (0..PARTITIONS).map(move |p| (s, p))) {
        let mut offset = 0;
        let mut last_seq: HashMap<usize, u64> = HashMap::new();
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
            for r in &page.records {
                assert_eq!(r.offset, offset, "offsets are dense");
                offset += 1;
                let text = r.value.get();
                assert!(seen.insert(text.to_owned()), "record stored twice: {text}");
                if let Some(a) = acked.get(&(stream, p, r.offset)) {
                    assert_eq!(
                        text, a,
                        "stream {stream} partition {p} offset {}: bytes differ",
                        r.offset
                    );
                    found += 1;
                }
                let v: serde_json::Value = serde_json::from_str(text).unwrap();
                let (client, seq) = (
                    v["client"].as_u64().unwrap() as usize,
                    v["seq"].as_u64().unwrap(),
                );
                if let Some(&prev) = last_seq.get(&client) {
                    assert!(
                        seq > prev,
                        "stream {stream} partition {p}: client {client} seq {seq} after {prev}"
                    );
                }
                last_seq.insert(client, seq);
            }
            offset = page.next_offset;
        }
    }
    assert_eq!(
        found,
        acked.len(),
        "acknowledged records missing after restart"
    );
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_sigkill() {
    let iterations: usize = std::env::var("CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!(
        "crash test: {iterations} iterations, {} streams, CRASH_SEED={seed}",
        streams()
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let acked = Arc::new(Mutex::new(HashMap::new()));
    let mut next_seq = [0u64; CLIENTS];

    let server = Server::start(dir.path());
    for stream in 0..streams() {
        let created = http
            .post(format!("{}/v1/streams", server.url))
            .json(&serde_json::json!({"name": format!("crash{stream}"), "partitions": PARTITIONS}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
    }
    let mut server = Some(server);

    for iteration in 0..iterations {
        let running = server.take().unwrap();
        let url = running.url.clone();
        let shared = Arc::new(Iteration {
            killing: AtomicBool::new(false),
            acknowledged: AtomicU64::new(0),
            progress: tokio::sync::Notify::new(),
        });
        let clients: Vec<_> = (0..CLIENTS)
            .map(|id| {
                tokio::spawn(client(
                    http.clone(),
                    url.clone(),
                    id,
                    rng.random(),
                    Arc::clone(&acked),
                    next_seq[id] + 1_000_000 * iteration as u64,
                    Arc::clone(&shared),
                ))
            })
            .collect();
        // The (re)started node must take pushes before it is killed again.
        tokio::time::timeout(Duration::from_secs(30), async {
            while shared.acknowledged.load(Ordering::SeqCst) == 0 {
                let woken = shared.progress.notified();
                if shared.acknowledged.load(Ordering::SeqCst) > 0 {
                    break;
                }
                woken.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("iteration {iteration}: no push acknowledged within 30 s"));
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..700))).await;
        shared.killing.store(true, Ordering::SeqCst);
        running.kill();
        for (id, c) in clients.into_iter().enumerate() {
            next_seq[id] = tokio::time::timeout(Duration::from_secs(30), c)
                .await
                .unwrap()
                .unwrap();
        }

        let restarted = Server::start(dir.path());
        let snapshot = acked.lock().unwrap().clone();
        let found = verify(&http, &restarted.url, &snapshot).await;
        let mut stored = 0u64;
        for stream in 0..streams() {
            let view: StreamView = http
                .get(format!("{}/v1/streams/crash{stream}", restarted.url))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            stored += view.status.iter().map(|p| p.next_offset).sum::<u64>();
        }
        eprintln!(
            "iteration {iteration}: {} requests acknowledged before the kill; {found} acknowledged records verified, {stored} stored",
            shared.acknowledged.load(Ordering::SeqCst)
        );
        server = Some(restarted);
    }
    let last = server.take().unwrap();
    assert!(
        !acked.lock().unwrap().is_empty(),
        "no record was ever acknowledged"
    );
    last.kill();
}
