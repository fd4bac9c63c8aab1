//! A catalog outage, between intake and a shared PostgreSQL catalog: work
//! that needs the catalog (creating a stream) is answered 503
//! `catalog_unavailable` with `Retry-After`, at once when the database
//! is unreachable and within the catalog's 5 s connection timeout when the
//! network drops packets, `/readyz` says not ready, pushes to the streams
//! the node has open go on (the log needs no catalog), and all is well
//! again once the database is back. Needs PostgreSQL on 127.0.0.1:5432.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{CutProxy, Intake, create_stream, push};

#[tokio::test(flavor = "multi_thread")]
async fn catalog_outage_is_503_and_pushes_go_on() {
    let schema = support::fresh_postgres_schema("outage").await;
    let proxy = CutProxy::start(5432).await;
    let catalog = support::postgres_url(proxy.port, Some(&schema));
    let data = tempfile::tempdir().unwrap();
    let node = Intake::serve(data.path(), &["--catalog", &catalog]);
    let http = reqwest::Client::new();
    create_stream(&http, &node, json!({"name": "s"})).await;

    proxy.cut();
    // The first calls fail on the pool's open connections, the later ones
    // while it tries to connect again: each is answered within the 5 s.
    for attempt in 0..4 {
        let started = Instant::now();
        let r = http
            .post(node.url("/v1/streams"))
            .json(&json!({"name": "t"}))
            .send()
            .await
            .unwrap();
        let took = started.elapsed();
        assert_eq!(r.status(), 503, "attempt {attempt}");
        assert!(
            took < Duration::from_secs(8),
            "attempt {attempt} answered after {took:?}"
        );
        assert_eq!(r.headers()["retry-after"], "1");
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body,
            json!({"error": {"code": "catalog_unavailable",
                             "message": "the catalog database is unreachable; retry later"}})
        );
    }
    // Behind a network that drops packets, a call waits for the catalog's
    // 5 s connection timeout, not for the request's own 30 s.
    proxy.stall();
    let started = Instant::now();
    let r = http
        .post(node.url("/v1/streams"))
        .json(&json!({"name": "t"}))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(r.status(), 503, "{}", r.text().await.unwrap());
    assert!(
        (Duration::from_secs(4)..Duration::from_secs(10)).contains(&took),
        "a stalled catalog answered after {took:?}"
    );
    let r = http.get(node.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let ready: Value = r.json().await.unwrap();
    assert!(
        ready["reason"].as_str().unwrap().contains("catalog"),
        "{ready}"
    );
    let placed = push(&http, &node, "s", &[json!({"during": "outage"})])
        .await
        .expect("pushes to open streams need no catalog");
    assert_eq!(placed, [(0, 0)]);

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = http
            .post(node.url("/v1/streams"))
            .json(&json!({"name": "t"}))
            .send()
            .await
            .unwrap();
        if r.status() == 201 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {} after the catalog came back: {}",
            r.status(),
            r.text().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        http.get(node.url("/readyz")).send().await.unwrap().status(),
        200
    );
}
