//! A manager and three nodes on loopback, as real processes: the SDK sends
//! under load while one node gets SIGKILL and another a graceful stop.
//! Every record the SDK reported as acknowledged is then found in the
//! nodes' logs (the killed and stopped nodes are restarted to be read),
//! getIpList stops listing the dead node within three heartbeat intervals,
//! and the SDK's failover keeps its error count at zero.
//!
//! Run twice: with the catalog in PostgreSQL at 127.0.0.1:5432 (database
//! `test`, a fresh schema) shared by every process, and with the embedded
//! SQLite catalog on the manager, nodes taking their streams from it.
//! The PostgreSQL run fails when PostgreSQL is not running.
//!
//! The stream forwards to NATS JetStream (127.0.0.1:4222) from every node:
//! each acknowledged record must reach the subject once, under the ids of
//! three distinct nodes (`NODE/orders/P/O`: without the node prefix the
//! nodes' records share ids and JetStream drops them as duplicates).
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod support;

use intake_client::{Client, RetryPolicy, Strategy};
use intake_format::api::ReadResponse;
use serde_json::Value;

const HEARTBEAT: Duration = Duration::from_millis(500);
/// Tasks sending through the SDK, each one request at a time.
const SENDERS: usize = 4;
/// Records per request.
const RECORDS_PER_SEND: usize = 10;

struct Process {
    child: Child,
    addr: String,
}

impl Process {
    fn start(args: &[&str], data_dir: &Path, catalog: Option<&str>) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_intake"));
        command
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("INTAKE_LOG", "warn")
            .env("INTAKE_CLUSTER__HEARTBEAT_INTERVAL", "500ms")
            .env("INTAKE_CATALOG_POLL_INTERVAL", "200ms")
            .stdout(Stdio::piped());
        if let Some(catalog) = catalog {
            command.args(["--catalog", catalog]);
        }
        let mut child = command.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Self { child, addr }
    }

    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        self.child.wait().unwrap();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn ip_list_ports(http: &reqwest::Client, manager: &str) -> Vec<u64> {
    let body: Value = http
        .get(format!(
            "http://{manager}/inlong/manager/openapi/dataproxy/getIpList/g1?protocolType=HTTP"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["success"], true, "{body}");
    let mut ports: Vec<u64> = body["data"]["nodeList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["port"].as_u64().unwrap())
        .collect();
    ports.sort_unstable();
    ports
}

fn port_of(addr: &str) -> u64 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// Every record id stored on the node at `addr`, with how often.
async fn ids_on(http: &reqwest::Client, addr: &str, ids: &mut HashMap<u64, u32>) {
    for partition in 0..3 {
        let mut offset = 0;
        loop {
            let page: ReadResponse = http
                .get(format!("http://{addr}/v1/streams/orders/partitions/{partition}/records?offset={offset}&limit=1000"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if page.records.is_empty() {
                break;
            }
            for record in &page.records {
                let value = serde_json::to_value(record).unwrap()["value"].clone();
                *ids.entry(value["id"].as_u64().unwrap()).or_default() += 1;
            }
            offset = page.next_offset;
        }
    }
}

/// The shared NATS server the stream forwards to.
const NATS: &str = "nats://127.0.0.1:4222";

/// Waits until the node's sink has forwarded everything.
async fn wait_forwarded(http: &reqwest::Client, addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let sinks: Value = http
            .get(format!("http://{addr}/v1/streams/orders/sinks"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if sinks[0]["lag_records"] == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{addr} still behind: {sinks}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every record id on `subject` with how often, and the node prefixes of
/// the message ids (`NODE/orders/P/O`).
async fn read_forwarded(
    subject: &str,
    expected: usize,
) -> (HashMap<u64, u32>, std::collections::HashSet<String>) {
    use async_nats::jetstream::{self, consumer};
    use futures::StreamExt;
    let js = jetstream::new(async_nats::connect(NATS).await.unwrap());
    let name = js.stream_by_subject(subject).await.unwrap();
    let consumer = js
        .get_stream(&name)
        .await
        .unwrap()
        .create_consumer(consumer::pull::Config {
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::None,
            filter_subject: subject.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let (mut ids, mut senders) = (HashMap::new(), std::collections::HashSet::new());
    let mut read = 0;
    loop {
        let wait = if read < expected {
            Duration::from_secs(20)
        } else {
            Duration::from_millis(500)
        };
        let Ok(Some(message)) = tokio::time::timeout(wait, messages.next()).await else {
            break;
        };
        let message = message.unwrap();
        read += 1;
        let value: Value = serde_json::from_slice(&message.payload).unwrap();
        *ids.entry(value["id"].as_u64().unwrap()).or_default() += 1;
        let id = message
            .headers
            .as_ref()
            .unwrap()
            .get("Nats-Msg-Id")
            .unwrap();
        let parts: Vec<&str> = id.as_str().split('/').collect();
        assert_eq!(parts.len(), 4, "NODE/STREAM/PARTITION/OFFSET: {id}");
        assert_eq!(parts[1], "orders");
        senders.insert(parts[0].to_owned());
    }
    (ids, senders)
}

async fn run_cluster(postgres: bool) {
    let catalog = if postgres {
        Some(support::postgres_url(
            5432,
            Some(&support::fresh_postgres_schema("cluster_pg").await),
        ))
    } else {
        None
    };
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let http = reqwest::Client::new();
    let manager = Process::start(&["manager"], dirs[0].path(), catalog.as_deref());
    let subject = format!(
        "intake.cluster.{}.{}.{}",
        if postgres { "pg" } else { "sqlite" },
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let created = http
        .post(format!("http://{}/v1/streams", manager.addr))
        .json(&serde_json::json!({"name": "orders", "partitions": 3,
            "bindings": {"inlong": [{"group_id": "g1", "stream_id": "s1"}]},
            "sinks": [{"name": "n1", "kind": "nats", "url": NATS, "subject": subject}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let join = format!("http://{}", manager.addr);
    let mut nodes: Vec<Process> = (1..4)
        .map(|i| {
            Process::start(
                &["serve", "--join", &join],
                dirs[i].path(),
                catalog.as_deref(),
            )
        })
        .collect();

    // Wait until the three nodes are listed and have the stream.
    let expected: Vec<u64> = {
        let mut p: Vec<u64> = nodes.iter().map(|n| port_of(&n.addr)).collect();
        p.sort_unstable();
        p
    };
    let started = Instant::now();
    loop {
        let listed = ip_list_ports(&http, &manager.addr).await;
        let mut ready = listed == expected;
        for node in &nodes {
            let status = http
                .get(format!("http://{}/v1/streams/orders", node.addr))
                .send()
                .await
                .unwrap()
                .status();
            ready &= status == 200;
        }
        if ready {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "cluster not ready: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A member's dashboard lists the cluster as read from the manager.
    loop {
        let overview: serde_json::Value = http
            .get(format!("http://{}/v1/overview", nodes[0].addr))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let cluster = &overview["cluster"];
        assert_eq!(cluster["role"], "member", "{overview}");
        assert_eq!(cluster["manager_url"], join.as_str());
        let mut online: Vec<u64> = cluster["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["online"] == true)
            .map(|n| n["port"].as_u64().unwrap())
            .collect();
        online.sort_unstable();
        if online == expected {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "member's overview lists {online:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let client = Client::builder()
        .manager(join.clone())
        .strategy(Strategy::RoundRobin)
        .refresh_interval(HEARTBEAT)
        .freeze_for(Duration::from_secs(2))
        .request_timeout(Duration::from_secs(5))
        .retry(RetryPolicy {
            deadline: Duration::from_secs(30),
            ..RetryPolicy::default()
        })
        .build()
        .await
        .unwrap();
    let next_id = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(parking_lot::Mutex::new(Vec::<u64>::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (client, next_id, acked, errors, stop) = (
            client.clone(),
            Arc::clone(&next_id),
            Arc::clone(&acked),
            Arc::clone(&errors),
            stop.clone(),
        );
        senders.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                let ids: Vec<u64> = (0..RECORDS_PER_SEND)
                    .map(|_| next_id.fetch_add(1, Ordering::Relaxed))
                    .collect();
                let records = ids
                    .iter()
                    .map(|id| format!(r#"{{"id":{id}}}"#).into_bytes().into())
                    .collect();
                match client.send("orders", records).await {
                    Ok(_) => acked.lock().extend(ids),
                    Err(e) => {
                        eprintln!("send failed: {e}");
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let dead_port = port_of(&nodes[0].addr);
    nodes[0].kill();
    let killed_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    nodes[1].terminate();
    // The dead node leaves getIpList within three heartbeat intervals
    // (plus one poll of slack); the stopped one said so as it drained.
    loop {
        let listed = ip_list_ports(&http, &manager.addr).await;
        if !listed.contains(&dead_port) {
            assert!(!listed.contains(&port_of(&nodes[1].addr)), "{listed:?}");
            break;
        }
        assert!(
            killed_at.elapsed() < HEARTBEAT * 3 + Duration::from_millis(600),
            "dead node still listed: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    for s in senders {
        s.await.unwrap();
    }
    assert_eq!(
        errors.load(Ordering::Relaxed),
        0,
        "retryable failures must be absorbed by failover"
    );
    let acked = acked.lock().clone();
    assert!(
        acked.len() > 100,
        "only {} records acknowledged",
        acked.len()
    );

    // Restart the two stopped nodes on their data, then read every node.
    for i in 0..2 {
        nodes[i] = Process::start(
            &["serve", "--join", &join],
            dirs[i + 1].path(),
            catalog.as_deref(),
        );
    }
    let mut stored = HashMap::new();
    let mut on_killed = HashMap::new();
    ids_on(&http, &nodes[0].addr, &mut on_killed).await;
    for node in &nodes {
        ids_on(&http, &node.addr, &mut stored).await;
    }
    let missing: Vec<&u64> = acked.iter().filter(|id| !stored.contains_key(id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged records missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    // Delivery from the SDK is at least once: a request the SIGKILLed node
    // stored but could not answer is sent again to another node. That is
    // the only way to a second copy. The gracefully stopped node answered
    // every request it took, and a node never stores one request twice.
    // So every id stored twice has one copy on the killed node, and there
    // are at most as many as the senders had records in flight.
    let duplicated: Vec<u64> = stored
        .iter()
        .filter(|&(_, &n)| n > 1)
        .map(|(&id, _)| id)
        .collect();
    for id in &duplicated {
        assert_eq!(stored[id], 2, "record {id} stored {} times", stored[id]);
        assert_eq!(
            on_killed.get(id),
            Some(&1),
            "record {id} stored twice, but not once by the killed node"
        );
    }
    assert!(
        duplicated.len() <= SENDERS * RECORDS_PER_SEND,
        "{} records stored twice; at most {} were in flight at the kill",
        duplicated.len(),
        SENDERS * RECORDS_PER_SEND
    );
    let duplicates = duplicated.len();

    // Every acknowledged record reached JetStream, from three nodes.
    for node in &nodes {
        wait_forwarded(&http, &node.addr).await;
    }
    let copies: u32 = stored.values().sum();
    let (forwarded, senders) = read_forwarded(&subject, copies as usize).await;
    let lost: Vec<&u64> = acked
        .iter()
        .filter(|id| !forwarded.contains_key(id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged records never forwarded, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    assert_eq!(senders.len(), 3, "three nodes forwarded: {senders:?}");
    // Forwarding adds no copy of its own: JetStream drops a batch sent
    // again by its message id, so each stored copy arrives once.
    for (id, copies) in &stored {
        assert_eq!(
            forwarded.get(id),
            Some(copies),
            "record {id}: stored {copies} times, forwarded otherwise"
        );
    }

    // The CLI pushes through the same SDK when given --manager.
    let mut push = Command::new(env!("CARGO_BIN_EXE_intake"))
        .args(["push", "orders", "--manager", &join])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = push.stdin.take().unwrap();
        stdin
            .write_all(b"{\"id\": 900000001}\n{\"id\": 900000002}\n")
            .unwrap();
    }
    let output = push.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.contains("pushed 2 records"),
        "{stderr}"
    );
    eprintln!(
        "catalog {}: {} acknowledged, {} stored, {duplicates} stored twice (a retry after a lost answer)",
        if postgres { "postgres" } else { "sqlite" },
        acked.len(),
        stored.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sdk_fails_over_with_a_postgres_catalog() {
    run_cluster(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sdk_fails_over_with_the_embedded_sqlite_catalog() {
    run_cluster(false).await;
}
