//! Forwarding to NATS JetStream, end to end: the real `intake` binary, a
//! real NATS server, read back with a JetStream pull consumer.
//!
//! - Every record reaches the subject in per-partition order with
//!   `Nats-Msg-Id: <stream>/<partition>/<offset>` (the shared server at
//!   127.0.0.1:4222; the test fails when it is not running).
//! - A broker outage while 8 clients push: the test's own nats-server is
//!   killed and restarted; every acknowledged record arrives, in order, with
//!   no gap, and duplicates are counted (zero: the server drops resends by
//!   `Nats-Msg-Id`).
//! - A crash while forwarding: SIGKILL intake mid-forward, restart, no gap.
//! - `ack = "sink"`: a push is answered after the broker's ack; with the
//!   broker down it waits, then fails with 503 and `Retry-After`.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use serde_json::{Value, json};
use support::{
    Intake, Nats, Pushers, check_downstream, create_stream, push, sinks_status, unique,
    wait_forwarded,
};

/// One message read back from JetStream.
struct Forwarded {
    stream: String,
    partition: u32,
    offset: u64,
    value: Value,
    headers: HashMap<String, String>,
}

/// Every message on `subject`, in stream order, through a pull consumer;
/// waits for at least `expected` and then a little more, to see extras.
async fn read_back(url: &str, subject: &str, expected: usize) -> Vec<Forwarded> {
    let client = async_nats::connect(url).await.unwrap();
    let js = jetstream::new(client);
    let name = js.stream_by_subject(subject).await.unwrap();
    let stream = js.get_stream(&name).await.unwrap();
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::None,
            filter_subject: subject.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut out = Vec::new();
    loop {
        let wait = if out.len() < expected {
            Duration::from_secs(20)
        } else {
            Duration::from_millis(500)
        };
        let Ok(Some(message)) = tokio::time::timeout(wait, messages.next()).await else {
            break;
        };
        let message = message.unwrap();
        let headers: HashMap<String, String> = message
            .headers
            .iter()
            .flat_map(|h| h.iter())
            .map(|(k, v)| (k.to_string(), v[0].to_string()))
            .collect();
        let id = &headers["Nats-Msg-Id"];
        let mut parts = id.rsplitn(3, '/');
        let offset = parts.next().unwrap().parse().unwrap();
        let partition = parts.next().unwrap().parse().unwrap();
        let stream = parts.next().unwrap().to_owned();
        out.push(Forwarded {
            stream,
            partition,
            offset,
            value: serde_json::from_slice(&message.payload).unwrap(),
            headers,
        });
    }
    assert!(
        out.len() >= expected,
        "read {} messages of {expected} from {subject}",
        out.len()
    );
    out
}

/// (partition, offset, value) of each message, for [`check_downstream`].
fn positions(got: &[Forwarded]) -> impl Iterator<Item = (u32, u64, &Value)> {
    got.iter().map(|m| (m.partition, m.offset, &m.value))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_record_reaches_jetstream_in_order() {
    let data = tempfile::tempdir().unwrap();
    let node = Intake::serve(data.path(), &[]);
    let http = reqwest::Client::new();
    let name = unique("fwd");
    let subject = format!("intake.test.{name}");
    create_stream(
        &http,
        &node,
        json!({"name": name, "partitions": 3,
               "sinks": [{"name": "n1", "kind": "nats", "url": "nats://127.0.0.1:4222",
                          "subject": subject, "batch_records": 7}]}),
    )
    .await;
    let mut acked = BTreeMap::new();
    for request in 0..30 {
        let records: Vec<Value> = (0..10)
            .map(|i| json!({"request": request, "i": i}))
            .collect();
        let placed = push(&http, &node, &name, &records).await.unwrap();
        for (at, record) in placed.into_iter().zip(records) {
            acked.insert(at, record);
        }
    }
    let status = wait_forwarded(&http, &node, &name).await;
    assert_eq!(status["sent"], 300, "{status}");
    assert_eq!(status["errors"], 0, "{status}");
    assert_eq!(status["kind"], "nats");
    let got = read_back("nats://127.0.0.1:4222", &subject, 300).await;
    assert_eq!(got.len(), 300);
    assert_eq!(check_downstream(&acked, positions(&got)), 0);
    assert!(got.iter().all(|m| m.stream == name));
    let ts: i64 = got[0].headers["Intake-Timestamp"].parse().unwrap();
    assert!(ts > 1_700_000_000_000, "timestamp header {ts}");

    // The sink shows in the stream's definition, and a restart resumes
    // from the committed cursors without sending anything again.
    let def: Value = http
        .get(node.url(&format!("/v1/streams/{name}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(def["sinks"][0]["subject"], subject.as_str(), "{def}");
    drop(node);
    let node = Intake::serve(data.path(), &[]);
    let more: Vec<Value> = vec![json!({"after": "restart"})];
    let placed = push(&http, &node, &name, &more).await.unwrap();
    acked.insert(placed[0], more[0].clone());
    let status = wait_forwarded(&http, &node, &name).await;
    assert_eq!(status["sent"], 1, "only the new record is sent: {status}");
    let got = read_back("nats://127.0.0.1:4222", &subject, 301).await;
    assert_eq!(check_downstream(&acked, positions(&got)), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_outage_under_load_loses_nothing() {
    let mut nats = Nats::start_new();
    let data = tempfile::tempdir().unwrap();
    let node = Arc::new(Intake::serve(data.path(), &[]));
    let http = reqwest::Client::new();
    let name = unique("outage");
    let subject = format!("intake.outage.{name}");
    create_stream(
        &http,
        &node,
        json!({"name": name, "partitions": 4,
               "sinks": [{"name": "n1", "kind": "nats", "url": nats.url(), "subject": subject}]}),
    )
    .await;
    let pushers = Pushers::start(&http, &node, &name, 8);
    tokio::time::sleep(Duration::from_secs(2)).await;
    nats.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during: Value = http
        .get(node.url(&format!("/v1/streams/{name}/sinks")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    nats.start();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let acked = pushers.stop().await;
    let status = wait_forwarded(&http, &node, &name).await;
    assert!(
        during[0]["lag_records"].as_u64().unwrap() > 0,
        "records queued while the broker was down: {during}"
    );
    assert!(
        status["errors"].as_u64().unwrap() > 0,
        "the outage was seen: {status}"
    );
    let got = read_back(&nats.url(), &subject, acked.len()).await;
    let duplicates = check_downstream(&acked, positions(&got));
    println!(
        "outage: {} records acknowledged, {} read back, {duplicates} duplicates, {} send errors retried",
        acked.len(),
        got.len(),
        status["errors"]
    );
    assert_eq!(duplicates, 0, "JetStream drops resends by Nats-Msg-Id");
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_while_forwarding_leaves_no_gap() {
    let nats = Nats::start_new();
    let data = tempfile::tempdir().unwrap();
    let mut node = Intake::serve(data.path(), &[]);
    let http = reqwest::Client::new();
    let name = unique("crash");
    let subject = format!("intake.crash.{name}");
    create_stream(
        &http,
        &node,
        json!({"name": name, "partitions": 2, "fsync": "never",
               "sinks": [{"name": "n1", "kind": "nats", "url": nats.url(), "subject": subject,
                          "batch_records": 50}]}),
    )
    .await;
    let mut acked = BTreeMap::new();
    for request in 0..400 {
        let records: Vec<Value> = (0..50).map(|i| json!({"r": request, "i": i})).collect();
        let placed = push(&http, &node, &name, &records).await.unwrap();
        for (at, record) in placed.into_iter().zip(records) {
            acked.insert(at, record);
        }
    }
    // Kill while the sink is still behind.
    let sinks: Value = http
        .get(node.url(&format!("/v1/streams/{name}/sinks")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    node.kill();
    let behind = sinks[0]["lag_records"].as_u64().unwrap();
    // fsync "never" loses what the kernel had not written: only records
    // the restarted node still has count as acknowledged here.
    let node = Intake::serve(data.path(), &[]);
    let status = wait_forwarded(&http, &node, &name).await;
    let view: Value = http
        .get(node.url(&format!("/v1/streams/{name}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kept: HashMap<u32, u64> = view["status"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["partition"].as_u64().unwrap() as u32,
                p["next_offset"].as_u64().unwrap(),
            )
        })
        .collect();
    acked.retain(|(p, o), _| *o < kept[p]);
    let got = read_back(&nats.url(), &subject, acked.len()).await;
    let duplicates = check_downstream(&acked, positions(&got));
    println!(
        "crash: killed with {behind} records not yet forwarded; {} records, {duplicates} duplicates downstream; sent after restart {}",
        acked.len(),
        status["sent"]
    );
    assert_eq!(duplicates, 0, "JetStream drops resends by Nats-Msg-Id");
}

#[tokio::test(flavor = "multi_thread")]
async fn ack_sink_waits_for_the_broker() {
    let mut nats = Nats::start_new();
    let data = tempfile::tempdir().unwrap();
    let node = Intake::serve(data.path(), &[]);
    let http = reqwest::Client::new();
    let name = unique("acksink");
    let subject = format!("intake.ack.{name}");
    create_stream(
        &http,
        &node,
        json!({"name": name, "ack": "sink", "ack_timeout_ms": 1500,
               "sinks": [{"name": "n1", "kind": "nats", "url": nats.url(), "subject": subject}]}),
    )
    .await;
    let def: Value = http
        .get(node.url(&format!("/v1/streams/{name}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        def["ack_sink"], "n1",
        "the only sink is the ack sink: {def}"
    );
    push(&http, &node, &name, &[json!({"n": 1})]).await.unwrap();
    // Answered after the broker's ack: the sink has no lag at that moment.
    let sinks: Value = http
        .get(node.url(&format!("/v1/streams/{name}/sinks")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sinks[0]["lag_records"], 0, "{sinks}");

    nats.stop();
    let started = Instant::now();
    let refused = push(&http, &node, &name, &[json!({"n": 2})]).await;
    let waited = started.elapsed();
    let (status, body) = refused.unwrap_err();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("sink_ack_timeout") && body.contains("retry-after:true"),
        "{body}"
    );
    assert!(
        waited >= Duration::from_millis(1400),
        "answered after {waited:?}"
    );

    // Back up: the stored record is forwarded, and pushes succeed again.
    nats.start();
    push(&http, &node, &name, &[json!({"n": 3})]).await.unwrap();
    let got = read_back(&nats.url(), &subject, 3).await;
    let values: Vec<&Value> = got.iter().map(|m| &m.value).collect();
    assert_eq!(
        values,
        [&json!({"n": 1}), &json!({"n": 2}), &json!({"n": 3})]
    );

    // A stream cannot wait for a sink it does not have.
    let r = http
        .post(node.url("/v1/streams"))
        .json(&json!({"name": unique("bad"), "ack": "sink"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("ack_sink"));
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_pauses_resets_and_resumes_a_sink() {
    let data = tempfile::tempdir().unwrap();
    let node = Intake::serve(data.path(), &[]);
    let http = reqwest::Client::new();
    let name = unique("cli");
    let subject = format!("intake.cli.{name}");
    create_stream(
        &http,
        &node,
        json!({"name": name,
               "sinks": [{"name": "n1", "kind": "nats", "url": "nats://127.0.0.1:4222", "subject": subject}]}),
    )
    .await;
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_intake"))
            .arg("sink")
            .args(["--url", &node.url("")])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let paused: Value = serde_json::from_str(&cli(&["pause", &name, "n1"])).unwrap();
    assert_eq!(paused["state"], "paused");
    for n in 0..5 {
        push(&http, &node, &name, &[json!({ "n": n })])
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let list = cli(&["list", &name]);
    assert!(list.contains("paused") && list.contains(" 5 "), "{list}");
    // Skip the first three, then resume: only n = 3 and 4 are sent.
    let reset: Value = serde_json::from_str(&cli(&["reset", &name, "n1", "--to", "3"])).unwrap();
    assert_eq!(reset["partitions"][0]["cursor"], 3, "{reset}");
    cli(&["resume", &name, "n1"]);
    let status = wait_forwarded(&http, &node, &name).await;
    assert_eq!(status["sent"], 2, "{status}");
    let got = read_back("nats://127.0.0.1:4222", &subject, 2).await;
    let values: Vec<&Value> = got.iter().map(|m| &m.value).collect();
    assert_eq!(values, [&json!({"n": 3}), &json!({"n": 4})]);
}

/// The oldest offset partition 0 of `stream` still holds.
async fn earliest_offset(http: &reqwest::Client, node: &Intake, stream: &str) -> u64 {
    let view: Value = http
        .get(node.url(&format!("/v1/streams/{stream}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    view["status"][0]["start_offset"]
        .as_u64()
        .unwrap_or_else(|| panic!("no start_offset in {view}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_keeps_what_a_sink_has_not_sent_unless_over_max_lag_bytes() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("intake.toml");
    std::fs::write(
        &config,
        "[log]\nsegment_bytes = 4096\nretention_check_interval = \"100ms\"\n",
    )
    .unwrap();
    let node = Intake::serve(
        &data.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let http = reqwest::Client::new();
    let sink = |name: &str, subject: &str, max_lag: Option<u64>| {
        let mut s = json!({"name": name, "kind": "nats", "url": "nats://127.0.0.1:4222",
                           "subject": subject});
        if let Some(bytes) = max_lag {
            s["max_lag_bytes"] = json!(bytes);
        }
        s
    };
    // Two streams with a 1-byte retention, each with a paused sink: one
    // without max_lag_bytes, one with 4096.
    let (kept, dropped) = (unique("kept"), unique("dropped"));
    for (name, max_lag) in [(&kept, None), (&dropped, Some(4096))] {
        create_stream(
            &http,
            &node,
            json!({"name": name, "retention_bytes": 1,
                   "sinks": [sink("n1", &format!("intake.ret.{name}"), max_lag)]}),
        )
        .await;
        let r = http
            .post(node.url(&format!("/v1/streams/{name}/sinks/n1/pause")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    for stream in [&kept, &dropped] {
        for batch in 0..30 {
            let records: Vec<Value> = (0..10)
                .map(|i| json!({"batch": batch, "i": i, "pad": "x".repeat(100)}))
                .collect();
            push(&http, &node, stream, &records).await.unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        earliest_offset(&http, &node, &kept).await,
        0,
        "retention waits for the sink"
    );
    assert!(
        earliest_offset(&http, &node, &dropped).await > 0,
        "past max_lag_bytes retention goes on"
    );
    let status = sinks_status(&http, &node, &dropped).await;
    assert_eq!(status[0]["lag_limit_exceeded"], true, "{status}");
    let metrics = http
        .get(node.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let flag = format!(
        "intake_sink_lag_limit_exceeded{{stream=\"{dropped}\",sink=\"n1\",kind=\"nats\"}} 1"
    );
    assert!(metrics.contains(&flag), "{flag} not in metrics");

    // Resumed: the kept stream's sink sends all 300; the other sends what
    // retention left and counts the rest as skipped.
    for stream in [&kept, &dropped] {
        http.post(node.url(&format!("/v1/streams/{stream}/sinks/n1/resume")))
            .send()
            .await
            .unwrap();
    }
    let status = wait_forwarded(&http, &node, &kept).await;
    assert_eq!(status["sent"], 300, "{status}");
    assert_eq!(status["skipped_records"], 0, "{status}");
    let status = wait_forwarded(&http, &node, &dropped).await;
    let (sent, skipped) = (
        status["sent"].as_u64().unwrap(),
        status["skipped_records"].as_u64().unwrap(),
    );
    assert!(skipped > 0, "{status}");
    assert_eq!(sent + skipped, 300, "{status}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        earliest_offset(&http, &node, &kept).await > 0,
        "once forwarded, retention deletes"
    );
}
