//! A node joined to a manager that lists no stream keeps the streams it
//! has (the manager more likely lost its data directory than deleted
//! everything), including streams created on the node between the manager's
//! answer and its application: the check and the change happen under one
//! lock. Regression: a stream created right after the node started was
//! moved to the trash by the first sync.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{Intake, create_stream};

#[tokio::test(flavor = "multi_thread")]
async fn streams_created_while_syncing_with_an_empty_manager_stay() {
    let (manager_dir, node_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let manager = Intake::serve(manager_dir.path(), &["--manager"]);
    let node = Intake::serve_with_env(
        node_dir.path(),
        &["--join", &manager.url("")],
        &[("INTAKE_CLUSTER__HEARTBEAT_INTERVAL", "20ms")],
    );
    let http = reqwest::Client::new();
    // Streams made one after another across many syncs.
    let started = Instant::now();
    let mut made = 0;
    while started.elapsed() < Duration::from_secs(2) {
        create_stream(&http, &node, json!({"name": format!("s{made}")})).await;
        made += 1;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..made {
        let status = http
            .get(node.url(&format!("/v1/streams/s{i}")))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "stream s{i} of {made} was removed");
    }
    assert!(
        !node_dir.path().join("trash").exists(),
        "nothing was moved to the trash"
    );
}
