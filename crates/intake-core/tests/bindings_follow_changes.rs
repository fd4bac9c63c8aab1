//! The faces' routing (InLong pairs, DataHubIds, push paths) follows every
//! change of a stream: created, replaced with other bindings, deleted, and
//! reopened after a restart. A binding a change frees can be taken by
//! another stream; streams sharing a push path are listed in name order.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

use std::sync::Arc;

use intake_core::{CoreConfig, Node, Stream};
use intake_format::api::StreamDefinition;

fn def(json: &str) -> StreamDefinition {
    serde_json::from_str(json).unwrap()
}

fn names(streams: &[Arc<Stream>]) -> Vec<&str> {
    streams.iter().map(|s| s.name()).collect()
}

const SHARED: &str = r#""datasource":{"path":"/p","method":"POST","shared":true}"#;

#[tokio::test]
async fn routing_follows_creates_replaces_deletes_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(CoreConfig::new(dir.path())).await.unwrap();
    node.create_stream(def(&format!(
        r#"{{"name":"b","bindings":{{"inlong":[{{"group_id":"g","stream_id":"s"}}],
            "datahub_id":"dh",{SHARED}}}}}"#
    )))
    .await
    .unwrap();
    node.create_stream(def(&format!(r#"{{"name":"a","bindings":{{{SHARED}}}}}"#)))
        .await
        .unwrap();
    assert_eq!(node.stream_by_inlong("g", "s").unwrap().name(), "b");
    assert!(node.has_inlong_group("g"));
    assert_eq!(node.stream_by_datahub("dh").unwrap().name(), "b");
    assert_eq!(names(&node.streams_by_datasource("/p")), ["a", "b"]);

    // b moves to another pair and gives up its DataHubId and path.
    node.replace_stream(def(
        r#"{"name":"b","bindings":{"inlong":[{"group_id":"g","stream_id":"s2"}]}}"#,
    ))
    .await
    .unwrap();
    assert!(node.stream_by_inlong("g", "s").is_none());
    assert_eq!(node.stream_by_inlong("g", "s2").unwrap().name(), "b");
    assert!(node.stream_by_datahub("dh").is_none());
    assert_eq!(names(&node.streams_by_datasource("/p")), ["a"]);
    node.create_stream(def(
        r#"{"name":"c","bindings":{"inlong":[{"group_id":"g","stream_id":"s"}],"datahub_id":"dh"}}"#,
    ))
    .await
    .unwrap();
    assert_eq!(node.stream_by_inlong("g", "s").unwrap().name(), "c");
    assert_eq!(node.stream_by_datahub("dh").unwrap().name(), "c");

    // Deleting frees what a stream held, and only that.
    node.delete_stream("a").await.unwrap();
    assert!(node.streams_by_datasource("/p").is_empty());
    node.delete_stream("c").await.unwrap();
    assert!(node.stream_by_inlong("g", "s").is_none());
    assert!(node.stream_by_datahub("dh").is_none());
    assert_eq!(node.stream_by_inlong("g", "s2").unwrap().name(), "b");
    assert!(node.has_inlong_group("g"));
    node.create_stream(def(r#"{"name":"d","bindings":{"datahub_id":"dh"}}"#))
        .await
        .unwrap();
    node.shutdown().await;
    drop(node);

    let node = Node::open(CoreConfig::new(dir.path())).await.unwrap();
    assert_eq!(names(&node.streams()), ["b", "d"]);
    assert_eq!(node.stream_by_inlong("g", "s2").unwrap().name(), "b");
    assert!(node.stream_by_inlong("g", "s").is_none());
    assert_eq!(node.stream_by_datahub("dh").unwrap().name(), "d");
    assert!(node.streams_by_datasource("/p").is_empty());
}
