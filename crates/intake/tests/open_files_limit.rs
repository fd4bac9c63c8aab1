//! Every partition keeps its active segment open, so a node with more
//! partitions than the soft limit on open files (1024 on most systems)
//! raises that limit to the hard one at start. Started under a soft limit
//! of 256, a node makes 600 partitions, stores into them, and reopens them
//! all after a restart.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod support;

use serde_json::json;
use support::{Intake, create_stream, get_json, push};

const SOFT_LIMIT: u32 = 256;
const STREAMS: usize = 3;
const PARTITIONS: u32 = 200;

/// The soft and hard "Max open files" of a process.
fn open_files_limits(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_raises_its_open_files_limit_for_many_partitions() {
    let data = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let node = Intake::serve_with_open_files_limit(data.path(), SOFT_LIMIT);
    let (soft, hard) = open_files_limits(node.pid());
    assert!(
        hard >= 2048,
        "this test needs a hard open files limit of at least 2048 (ulimit -Hn), not {hard}"
    );
    assert_eq!(soft, hard, "the node raised its soft limit to the hard one");

    for i in 0..STREAMS {
        create_stream(
            &http,
            &node,
            json!({"name": format!("wide{i}"), "partitions": PARTITIONS}),
        )
        .await;
    }
    let mut stored = Vec::new();
    for i in 0..STREAMS {
        for n in 0..10 {
            stored.extend(
                push(&http, &node, &format!("wide{i}"), &[json!({"n": n})])
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|at| (i, at)),
            );
        }
    }
    drop(node);

    let node = Intake::serve_with_open_files_limit(data.path(), SOFT_LIMIT);
    let r = http.get(node.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    for (i, (partition, offset)) in stored {
        let path =
            format!("/v1/streams/wide{i}/partitions/{partition}/records?offset={offset}&limit=1");
        let page = get_json(&http, &node, &path).await;
        assert_eq!(page["records"][0]["offset"], offset, "{page}");
    }
}
