//! The pipeline writes every record of a request or none, names the record
//! at fault, enforces its limits, and places keyed records like Kafka.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

use bytes::Bytes;
use intake_core::partitioner::partition_for_key;
use intake_core::{CoreConfig, Error, IngestRequest, Item, Node};
use intake_format::Framing;
use intake_format::api::StreamDefinition;

async fn node() -> (tempfile::TempDir, std::sync::Arc<Node>) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = CoreConfig::new(dir.path());
    config.limits.max_records_per_request = 5;
    config.limits.max_record_bytes = 100;
    let node = Node::open(config).await.unwrap();
    (dir, node)
}

#[tokio::test]
async fn a_bad_record_fails_the_whole_request() {
    let (_dir, node) = node().await;
    let mut def = StreamDefinition::new("s");
    def.timestamp_field = Some("ts".into());
    let s = node.create_stream(def).await.unwrap();
    let body = Bytes::from_static(br#"[{"ts":1},{"ts":2},{"ts":"soon"}]"#);
    let err = node
        .ingest(&s, IngestRequest::body(body, Framing::Json))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"record 2: field "ts": expected epoch milliseconds or RFC 3339 text, got "soon""#
    );
    assert_eq!(s.status()[0].next_offset, 0, "nothing written");

    let items = vec![Item::new("1"), Item::new("{oops")];
    let err = node
        .ingest(&s, IngestRequest::items(items))
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("record 1: not JSON"), "{err}");
    assert_eq!(s.status()[0].next_offset, 0);
}

#[tokio::test]
async fn limits_are_enforced_at_and_past_the_edge() {
    let (_dir, node) = node().await;
    let s = node
        .create_stream(StreamDefinition::new("s"))
        .await
        .unwrap();
    let five = Bytes::from_static(b"[1,2,3,4,5]");
    assert_eq!(
        node.ingest(&s, IngestRequest::body(five, Framing::Json))
            .await
            .unwrap()
            .records,
        5
    );
    let six = Bytes::from_static(b"[1,2,3,4,5,6]");
    let err = node
        .ingest(&s, IngestRequest::body(six, Framing::Json))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::TooManyRecords { count: 6, limit: 5 }),
        "{err}"
    );

    let at = format!("\"{}\"", "x".repeat(98)); // 100 bytes with quotes
    node.ingest(&s, IngestRequest::items(vec![Item::new(at)]))
        .await
        .unwrap();
    let past = format!("\"{}\"", "x".repeat(99));
    let err = node
        .ingest(&s, IngestRequest::items(vec![Item::new(past)]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::RecordTooLarge {
                index: 0,
                len: 101,
                limit: 100
            }
        ),
        "{err}"
    );
    assert_eq!(s.status()[0].next_offset, 6);
}

#[tokio::test]
async fn keyed_records_go_where_kafka_would_put_them() {
    let (_dir, node) = node().await;
    let mut def = StreamDefinition::new("k");
    def.partitions = 4;
    def.key_field = Some("id".into());
    let s = node.create_stream(def).await.unwrap();
    let body = Bytes::from_static(br#"[{"id":"a"},{"id":"b"},{"id":"a"},{"id":"c"}]"#);
    let out = node
        .ingest(&s, IngestRequest::body(body, Framing::Json))
        .await
        .unwrap();
    for (i, id) in ["a", "b", "a", "c"].iter().enumerate() {
        let (p, offset) = out.offsets[i];
        assert_eq!(p, partition_for_key(id.as_bytes(), 4));
        let record = &s
            .partition(p)
            .unwrap()
            .read(offset, 1, 1000)
            .unwrap()
            .records[0];
        assert_eq!(record.key.as_deref(), Some(id.as_bytes()));
    }
    // Same key, same partition, in order.
    assert_eq!(out.offsets[0].0, out.offsets[2].0);
    assert!(out.offsets[2].1 > out.offsets[0].1);
}

#[tokio::test]
async fn unkeyed_requests_rotate_partitions_and_keep_face_metadata() {
    let (_dir, node) = node().await;
    let mut def = StreamDefinition::new("rr");
    def.partitions = 2;
    let s = node.create_stream(def).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let mut req = IngestRequest::items(vec![Item::new("1"), Item::new("2")]);
        req.timestamp = Some(42);
        req.headers.push(intake_core::Header {
            key: "groupId".into(),
            value: Bytes::from_static(b"g"),
        });
        let out = node.ingest(&s, req).await.unwrap();
        assert_eq!(out.partitions.len(), 1, "one request, one partition");
        seen.push(out.partitions[0].partition);
    }
    assert_eq!(seen, vec![0, 1, 0, 1]);
    let r = &s.partition(0).unwrap().read(0, 1, 1000).unwrap().records[0];
    assert_eq!(r.timestamp, 42);
    assert_eq!(r.headers[0].key, "groupId");
}

#[tokio::test]
async fn definitions_are_checked() {
    let (_dir, node) = node().await;
    for (def, field) in [
        (r#"{"name":"../etc"}"#, "name"),
        (r#"{"name":"a","partitions":0}"#, "partitions"),
        (
            r#"{"name":"a","fsync":"always","fsync_interval_ms":5}"#,
            "fsync_interval_ms",
        ),
        (
            r#"{"name":"a","bindings":{"datasource":{"path":"api","method":"POST"}}}"#,
            "bindings.datasource.path",
        ),
        (
            r#"{"name":"a","bindings":{"datasource":{"path":"/api","method":"GET"}}}"#,
            "bindings.datasource.method",
        ),
    ] {
        let def: StreamDefinition = serde_json::from_str(def).unwrap();
        match node.create_stream(def).await {
            Err(Error::InvalidDefinition { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    node.create_stream(
        serde_json::from_str(r#"{"name":"a","bindings":{"datahub_id":"dh"}}"#).unwrap(),
    )
    .await
    .unwrap();
    let err = node
        .create_stream(
            serde_json::from_str(r#"{"name":"b","bindings":{"datahub_id":"dh"}}"#).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("already bound to stream \"a\""),
        "{err}"
    );
    assert!(matches!(
        node.create_stream(StreamDefinition::new("a")).await,
        Err(Error::StreamExists { .. })
    ));
}
