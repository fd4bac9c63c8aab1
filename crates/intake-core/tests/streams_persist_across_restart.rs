//! Streams, their state and their records survive a restart of the node;
//! streams declared in the config are created or updated at start.
#![allow(clippy::unwrap_used, reason = "a panic in a test is a failed test")]

use bytes::Bytes;
use intake_core::{CoreConfig, Error, IngestRequest, Node};
use intake_format::Framing;
use intake_format::api::{InlongBinding, StreamDefinition, StreamState};

#[tokio::test]
async fn definitions_state_and_records_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(CoreConfig::new(dir.path())).await.unwrap();
    let mut def = StreamDefinition::new("orders");
    def.partitions = 3;
    def.bindings.inlong.push(InlongBinding {
        group_id: "g1".into(),
        stream_id: "s1".into(),
    });
    node.create_stream(def.clone()).await.unwrap();
    let s = node.stream("orders").unwrap();
    let out = node
        .ingest(
            &s,
            IngestRequest::body(Bytes::from_static(b"[1,2,3]"), Framing::Json),
        )
        .await
        .unwrap();
    assert_eq!(out.records, 3);
    node.set_state("orders", StreamState::Paused).await.unwrap();
    node.shutdown().await;
    drop(node);

    let node = Node::open(CoreConfig::new(dir.path())).await.unwrap();
    let s = node.stream("orders").unwrap();
    assert_eq!(s.state(), StreamState::Paused);
    assert_eq!(s.partition_count(), 3);
    assert_eq!(node.stream_by_inlong("g1", "s1").unwrap().name(), "orders");
    let total: u64 = s.status().iter().map(|p| p.next_offset).sum();
    assert_eq!(total, 3);
    let err = node
        .ingest(
            &s,
            IngestRequest::body(Bytes::from_static(b"4"), Framing::Json),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::StreamPaused { .. }), "{err}");
    node.shutdown().await;
}

#[tokio::test]
async fn config_streams_are_created_and_cannot_change_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = CoreConfig::new(dir.path());
    config.streams.push(StreamDefinition::new("declared"));
    let node = Node::open(config.clone()).await.unwrap();
    assert!(node.stream("declared").is_ok());
    node.shutdown().await;
    drop(node);

    config.streams[0].partitions = 2;
    let err = Node::open(config).await.unwrap_err();
    assert!(
        err.to_string().contains("partitions cannot change"),
        "{err}"
    );
}

#[tokio::test]
async fn deleted_streams_are_gone_with_their_data() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(CoreConfig::new(dir.path())).await.unwrap();
    let s = node
        .create_stream(StreamDefinition::new("tmp"))
        .await
        .unwrap();
    node.ingest(
        &s,
        IngestRequest::body(Bytes::from_static(b"1"), Framing::Json),
    )
    .await
    .unwrap();
    node.delete_stream("tmp").await.unwrap();
    assert!(!dir.path().join("streams/tmp").exists());
    assert!(matches!(
        node.stream("tmp"),
        Err(Error::StreamNotFound { .. })
    ));
    assert!(matches!(
        node.delete_stream("tmp").await,
        Err(Error::StreamNotFound { .. })
    ));
    // The name can be reused and starts empty.
    let s = node
        .create_stream(StreamDefinition::new("tmp"))
        .await
        .unwrap();
    assert_eq!(s.status()[0].next_offset, 0);
    node.shutdown().await;
}
