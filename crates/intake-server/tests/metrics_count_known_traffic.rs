//! `/metrics` after a known mix of traffic on every face: each counter
//! holds exactly what was sent, refusals are counted by reason, the log's
//! histograms saw every append, and two nodes in one process never share a
//! figure. Every metric is documented in docs/operations.md.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod fixture;

use std::collections::{BTreeMap, HashMap};

use fixture::TestNode;
use intake_server::{Limits, metric_names, run};
use serde_json::json;

/// Samples of a Prometheus text exposition: `name{sorted labels}` → value.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let labels: BTreeMap<&str, &str> = rest
                    .trim_end_matches('}')
                    .split("\",")
                    .filter(|l| !l.is_empty())
                    .map(|l| {
                        let (k, v) = l.split_once("=\"").unwrap();
                        (k, v.trim_end_matches('"'))
                    })
                    .collect();
                (name, labels)
            }
            None => (series, BTreeMap::new()),
        };
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        samples.insert(
            format!("{name}{{{}}}", labels.join(",")),
            value.parse().unwrap(),
        );
    }
    samples
}

fn sample(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no sample {series}; have {:#?}", sorted(samples)))
}

fn sorted(samples: &HashMap<String, f64>) -> BTreeMap<&String, &f64> {
    samples.iter().collect()
}

async fn serve(node: &TestNode) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(run(listener, node.state.clone(), async move {
        stopped.await.ok();
    }));
    (url, stop)
}

async fn scrape(http: &reqwest::Client, url: &str) -> HashMap<String, f64> {
    let response = http.get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    parse(&response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_match_the_traffic_sent() {
    let node = TestNode::new(Limits::default()).await;
    let other = TestNode::new(Limits::default()).await;
    let (url, _stop) = serve(&node).await;
    let (other_url, _other_stop) = serve(&other).await;
    let http = reqwest::Client::new();
    let create = |def: serde_json::Value| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let r = http
                .post(format!("{url}/v1/streams"))
                .json(&def)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        }
    };
    create(json!({"name": "demo"})).await;
    create(json!({"name": "events", "format": "binary",
        "bindings": {"inlong": [{"group_id": "g1", "stream_id": "s1"}], "datahub_id": "dh1"}}))
    .await;

    // native: three accepted pushes (1 + 2 + 3 records), one bad record,
    // one push while paused, one to a stream that does not exist.
    let push = |stream: &'static str, body: &'static str| {
        let http = http.clone();
        let url = url.clone();
        async move {
            http.post(format!("{url}/v1/streams/{stream}/records"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let accepted = [r#"{"a":1}"#, r#"[{"a":1},{"a":2}]"#, r#"[1,2,3]"#];
    for body in accepted {
        assert_eq!(push("demo", body).await, 200);
    }
    let native_bytes: usize = accepted.iter().map(|b| b.len()).sum();
    assert_eq!(push("demo", r#"[{"a":1},{"a":"#).await, 400);
    let pause = |state: &'static str| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let r = http
                .put(format!("{url}/v1/streams/demo/state"))
                .json(&json!({ "state": state }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    };
    pause("paused").await;
    assert_eq!(push("demo", r#"{"a":1}"#).await, 409);
    pause("active").await;
    assert_eq!(push("nope", r#"{"a":1}"#).await, 404);

    // InLong: one report of two records, one for an unbound pair.
    for (form, ok) in [
        ("groupId=g1&streamId=s1&cnt=2&body=hello%0Aworld", true),
        ("groupId=g1&streamId=zz&body=x", false),
    ] {
        let answer: serde_json::Value = http
            .post(format!("{url}/dataproxy/message"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["code"] == "0", ok, "{answer}");
    }

    // CKafka: one message of 3 bytes.
    let answer: serde_json::Value = http
        .post(format!("{url}/"))
        .header("x-tc-action", "SendMessage")
        .json(&json!({"DataHubId": "dh1", "Message": [{"Body": "abc"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(answer["Response"]["MessageId"].is_array(), "{answer}");

    // REST Proxy: two records (7 + 8 bytes of JSON values).
    let produced = http
        .post(format!("{url}/topics/demo"))
        .header("content-type", "application/vnd.kafka.json.v2+json")
        .body(r#"{"records":[{"value":{"a":1}},{"value":{"a":22}}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(produced.status(), 200);

    // Reads, health and the dashboard are not traffic of a stream.
    http.get(format!("{url}/healthz")).send().await.unwrap();

    let m = scrape(&http, &url).await;
    let s = |series: &str| sample(&m, series);
    // native on demo: 3 accepted + 1 invalid + 1 paused.
    assert_eq!(s("intake_requests_total{face=native,stream=demo}"), 5.0);
    assert_eq!(s("intake_records_total{face=native,stream=demo}"), 6.0);
    assert_eq!(
        s("intake_bytes_total{face=native,stream=demo}"),
        native_bytes as f64
    );
    assert_eq!(
        s("intake_refusals_total{face=native,reason=malformed_body,stream=demo}"),
        1.0
    );
    assert_eq!(
        s("intake_refusals_total{face=native,reason=stream_paused,stream=demo}"),
        1.0
    );
    assert_eq!(
        s("intake_refusals_total{face=native,reason=stream_not_found,stream=}"),
        1.0
    );
    assert_eq!(s("intake_records_total{face=inlong,stream=events}"), 2.0);
    assert_eq!(s("intake_bytes_total{face=inlong,stream=events}"), 10.0);
    assert_eq!(
        s("intake_refusals_total{face=inlong,reason=stream_not_found,stream=}"),
        1.0
    );
    assert_eq!(s("intake_requests_total{face=ckafka,stream=events}"), 1.0);
    assert_eq!(s("intake_records_total{face=ckafka,stream=events}"), 1.0);
    assert_eq!(s("intake_bytes_total{face=ckafka,stream=events}"), 3.0);
    assert_eq!(s("intake_records_total{face=rest_proxy,stream=demo}"), 2.0);
    assert_eq!(s("intake_bytes_total{face=rest_proxy,stream=demo}"), 15.0);

    // The log, for the node: one append per accepted request (demo: 3
    // native + 1 REST; events: 1 InLong + 1 CKafka), every append in some
    // group, and every group fsynced (all streams are fsync = "always").
    let appends = 4.0 + 2.0;
    assert_eq!(s("intake_log_append_seconds_count{}"), appends);
    assert_eq!(s("intake_log_group_appends_sum{}"), appends);
    let groups = s("intake_log_group_appends_count{}");
    assert!((1.0..=appends).contains(&groups), "{groups} groups");
    assert!(s("intake_log_fsync_seconds_count{}") >= groups);
    assert_eq!(
        s("intake_partition_next_offset{partition=0,stream=demo}"),
        8.0
    );
    assert_eq!(s("intake_stream_paused{stream=demo}"), 0.0);
    assert_eq!(s("intake_log_pending_bytes{stream=demo}"), 0.0);

    // Connections and load: the scrape is the one request in flight, and
    // it is not counted.
    assert!(s("intake_connections_total{}") >= 1.0);
    assert!(s("intake_connections_open{}") >= 1.0);
    assert_eq!(s("intake_requests_in_flight{}"), 0.0);
    assert_eq!(s("intake_node_load{}"), 0.0);
    assert!(s("intake_request_seconds_count{face=native}") >= 7.0);

    // The other node in this process counted nothing of it.
    let o = scrape(&http, &other_url).await;
    assert!(
        !o.keys().any(|k| k.starts_with("intake_records_total")),
        "{:#?}",
        sorted(&o)
    );
}

#[test]
fn every_metric_is_documented_in_the_readme() {
    let readme = include_str!("../../../docs/operations.md");
    for name in metric_names() {
        assert!(
            readme.contains(&format!("`{name}`")),
            "{name} is not in docs/operations.md"
        );
    }
}

#[tokio::test]
async fn request_keys_are_counted() {
    let node = TestNode::new(Limits::default()).await;
    node.create(json!({"name": "s"})).await;
    let (url, _stop) = serve(&node).await;
    let http = reqwest::Client::new();
    let push = |key: &'static str, body: &'static str| {
        http.post(format!("{url}/v1/streams/s/records"))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(body)
            .send()
    };
    for (key, body, status) in [
        ("a", "{\"n\":1}", 200),
        ("a", "{\"n\":1}", 200),
        ("a", "{\"n\":1}", 200),
        ("a", "{\"n\":2}", 422),
        ("b", "{\"n\":1}", 200),
    ] {
        assert_eq!(push(key, body).await.unwrap().status(), status);
    }
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let samples = parse(&text);
    assert_eq!(sample(&samples, "intake_dedup_keys{stream=s}"), 2.0);
    // Replays wrote nothing, so they add no records.
    assert_eq!(
        sample(&samples, "intake_records_total{face=native,stream=s}"),
        2.0
    );
    assert_eq!(
        sample(&samples, "intake_dedup_replayed_total{stream=s}"),
        2.0
    );
    assert_eq!(
        sample(&samples, "intake_dedup_key_reused_total{stream=s}"),
        1.0
    );
    assert_eq!(
        sample(&samples, "intake_dedup_evicted_keys_total{stream=s}"),
        0.0
    );
    assert!(sample(&samples, "intake_dedup_bytes{stream=s}") > 0.0);
    assert_eq!(
        sample(
            &samples,
            "intake_refusals_total{face=native,reason=idempotency_key_reused,stream=s}"
        ),
        1.0
    );
}
