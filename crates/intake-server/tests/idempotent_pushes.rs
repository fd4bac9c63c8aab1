//! Exactly-once pushes on every push face: `Idempotency-Key` and producer
//! sequences, through the router, with what was stored read back.
#![allow(clippy::unwrap_used, reason = "a panic in a test is a failed test")]

mod fixture;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request};
use fixture::TestNode;
use http_body_util::BodyExt;
use intake_core::{CoreConfig, Node};
use intake_server::{AppState, Limits, router};
use serde_json::{Value, json};
use tower::ServiceExt;

/// One push face: how to bind a stream to it and how to send it records.
#[derive(Debug, Clone, Copy)]
enum Face {
    Native,
    RestProxy,
    Ekuiper,
    Ckafka,
    Inlong,
}

const FACES: [Face; 5] = [
    Face::Native,
    Face::RestProxy,
    Face::Ekuiper,
    Face::Ckafka,
    Face::Inlong,
];

impl Face {
    /// The definition of stream `s`, bound to this face.
    fn definition(self, extra: Value) -> Value {
        let mut def = match self {
            Self::Native | Self::RestProxy => json!({"name": "s", "partitions": 2}),
            Self::Ekuiper => json!({"name": "s", "partitions": 2,
                "bindings": {"datasource": {"path": "/api/data", "method": "POST"}}}),
            Self::Ckafka => json!({"name": "s", "partitions": 2, "format": "binary",
                "bindings": {"datahub_id": "dh"}}),
            Self::Inlong => json!({"name": "s", "partitions": 2, "format": "binary",
                "bindings": {"inlong": [{"group_id": "g", "stream_id": "t"}]}}),
        };
        if let (Some(def), Some(extra)) = (def.as_object_mut(), extra.as_object()) {
            def.extend(extra.clone());
        }
        def
    }

    /// A push of two records whose content depends on `n`.
    fn push(self, n: u32, headers: &[(&str, &str)]) -> Request<Body> {
        let (path, content_type, body) = match self {
            Self::Native => (
                "/v1/streams/s/records",
                "application/json",
                json!([{"n": n, "i": 0}, {"n": n, "i": 1}]).to_string(),
            ),
            Self::RestProxy => (
                "/topics/s",
                "application/vnd.kafka.json.v2+json",
                // Keys spread the records over both partitions.
                json!({"records": [
                    {"key": format!("a{n}"), "value": {"n": n, "i": 0}},
                    {"key": format!("b{n}"), "value": {"n": n, "i": 1}},
                    {"key": format!("c{n}"), "value": {"n": n, "i": 2}},
                ]})
                .to_string(),
            ),
            Self::Ekuiper => ("/api/data", "application/json", json!({"n": n}).to_string()),
            Self::Ckafka => (
                "/",
                "application/json",
                json!({"DataHubId": "dh", "Message": [
                    {"Body": format!("{n}-0")}, {"Body": format!("{n}-1"), "Key": "k"}]})
                .to_string(),
            ),
            Self::Inlong => (
                "/dataproxy/message",
                "application/x-www-form-urlencoded",
                format!("groupId=g&streamId=t&body={n}-0%0A{n}-1"),
            ),
        };
        let mut req = Request::post(path).header("content-type", content_type);
        if let Self::Ckafka = self {
            req = req.header("x-tc-action", "SendMessage");
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.body(Body::from(body)).unwrap()
    }

    /// Records one push stores.
    fn records_per_push(self) -> u64 {
        match self {
            Self::Native | Self::Ckafka | Self::Inlong => 2,
            Self::RestProxy => 3,
            Self::Ekuiper => 1,
        }
    }

    /// The face's error code of `answer`, whatever its shape.
    fn error_code(self, status: u16, body: &[u8]) -> String {
        let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        match self {
            Self::Native => json["error"]["code"].as_str().unwrap_or_default().into(),
            Self::RestProxy => json["error_code"].to_string(),
            Self::Ekuiper => status.to_string(),
            Self::Ckafka => json["Response"]["Error"]["Code"]
                .as_str()
                .unwrap_or_default()
                .into(),
            Self::Inlong => json["code"].as_str().unwrap_or_default().into(),
        }
    }

    /// The answer without what differs per HTTP request by design (the
    /// CKafka `RequestId`).
    fn answer(self, body: &[u8]) -> Vec<u8> {
        match self {
            Self::Ckafka => {
                let mut json: Value = serde_json::from_slice(body).unwrap();
                json["Response"]
                    .as_object_mut()
                    .unwrap()
                    .remove("RequestId")
                    .unwrap();
                json.to_string().into_bytes()
            }
            _ => body.to_vec(),
        }
    }
}

/// Sends `req`; returns status, headers and the body's bytes.
async fn send(state: &AppState, req: Request<Body>) -> (u16, HeaderMap, Vec<u8>) {
    let response = router(state.clone()).oneshot(req).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, body.to_vec())
}

/// Records stored in stream `s`, over its partitions.
async fn stored(node: &TestNode) -> u64 {
    let (status, _, view) = node.get("/v1/streams/s").await;
    assert_eq!(status, 200, "{view}");
    view["status"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["next_offset"].as_u64().unwrap())
        .sum()
}

/// The status, refusal code and answer of a push that must succeed.
async fn ok(face: Face, state: &AppState, n: u32, headers: &[(&str, &str)]) -> (bool, Vec<u8>) {
    let (status, h, body) = send(state, face.push(n, headers)).await;
    let code = face.error_code(status, &body);
    assert_eq!(status, 200, "{face:?}: {}", String::from_utf8_lossy(&body));
    assert!(
        matches!(code.as_str(), "" | "0" | "null" | "200"),
        "{face:?}: {code}: {}",
        String::from_utf8_lossy(&body)
    );
    let replayed = h.get("idempotent-replayed").map(|v| v.to_str().unwrap());
    assert!(matches!(replayed, None | Some("true")), "{replayed:?}");
    (replayed.is_some(), face.answer(&body))
}

#[tokio::test]
async fn a_replay_returns_the_first_answer_and_writes_nothing() {
    for face in FACES {
        let node = TestNode::new(Limits::default()).await;
        node.create(face.definition(json!({}))).await;
        let key = [("idempotency-key", "order-1")];
        let (replayed, first) = ok(face, &node.state, 1, &key).await;
        assert!(!replayed, "{face:?}: the first answer is not a replay");
        assert_eq!(stored(&node).await, face.records_per_push(), "{face:?}");
        for _ in 0..3 {
            let (replayed, again) = ok(face, &node.state, 1, &key).await;
            assert!(replayed, "{face:?}: Idempotent-Replayed: true");
            assert_eq!(
                String::from_utf8_lossy(&again),
                String::from_utf8_lossy(&first),
                "{face:?}"
            );
        }
        assert_eq!(stored(&node).await, face.records_per_push(), "{face:?}");
        // Another key is another request; no key at all is never deduplicated.
        ok(face, &node.state, 1, &[("idempotency-key", "order-2")]).await;
        ok(face, &node.state, 1, &[]).await;
        ok(face, &node.state, 1, &[]).await;
        assert_eq!(stored(&node).await, 4 * face.records_per_push(), "{face:?}");
        let (_, _, view) = node.get("/v1/streams/s").await;
        assert_eq!(view["dedup"]["keys"], 2, "{face:?}: {view}");
        assert_eq!(view["dedup_window"], "24h");
        assert_eq!(view["dedup_max_keys"], 10_000_000);
    }
}

#[tokio::test]
async fn a_key_reused_for_another_request_is_422_in_each_faces_shape() {
    for face in FACES {
        let node = TestNode::new(Limits::default()).await;
        node.create(face.definition(json!({}))).await;
        let key = [("idempotency-key", "k")];
        ok(face, &node.state, 1, &key).await;
        let (status, h, body) = send(&node.state, face.push(2, &key)).await;
        let expected = match face {
            Face::Native => (422, "idempotency_key_reused".to_owned()),
            Face::RestProxy => (422, "422".to_owned()),
            Face::Ekuiper => (422, "422".to_owned()),
            Face::Ckafka => (200, "FailedOperation.IdempotencyKeyReused".to_owned()),
            Face::Inlong => (200, "422".to_owned()),
        };
        assert_eq!(
            (status, face.error_code(status, &body)),
            expected,
            "{face:?}: {}",
            String::from_utf8_lossy(&body)
        );
        assert!(h.get("idempotent-replayed").is_none());
        assert!(
            String::from_utf8_lossy(&body).contains("different request"),
            "{face:?}: the message says why: {}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(stored(&node).await, face.records_per_push(), "{face:?}");
    }
}

#[tokio::test]
async fn sixteen_concurrent_requests_with_one_key_write_once() {
    for face in FACES {
        let node = TestNode::new(Limits::default()).await;
        node.create(face.definition(json!({}))).await;
        let answers = futures::future::join_all((0..16).map(|_| {
            let state = node.state.clone();
            tokio::spawn(async move { ok(face, &state, 7, &[("idempotency-key", "same")]).await })
        }))
        .await;
        let answers: Vec<(bool, Vec<u8>)> = answers.into_iter().map(Result::unwrap).collect();
        assert_eq!(stored(&node).await, face.records_per_push(), "{face:?}");
        assert_eq!(
            answers.iter().filter(|(replayed, _)| !replayed).count(),
            1,
            "{face:?}: one request wrote, the others replayed its answer"
        );
        assert!(answers.iter().all(|(_, a)| *a == answers[0].1), "{face:?}");
    }
}

#[tokio::test]
async fn an_expired_key_is_accepted_as_new() {
    let mut nodes = Vec::new();
    for face in FACES {
        let node = TestNode::new(Limits::default()).await;
        node.create(face.definition(json!({"dedup_window": "1s"})))
            .await;
        let key = [("idempotency-key", "short-lived")];
        ok(face, &node.state, 1, &key).await;
        let (replayed, _) = ok(face, &node.state, 1, &key).await;
        assert!(replayed, "{face:?}");
        nodes.push((face, node));
    }
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for (face, node) in nodes {
        let key = [("idempotency-key", "short-lived")];
        let (replayed, _) = ok(face, &node.state, 1, &key).await;
        assert!(!replayed, "{face:?}: past the window the key is new");
        assert_eq!(stored(&node).await, 2 * face.records_per_push(), "{face:?}");
    }
}

#[tokio::test]
async fn bad_keys_are_400_and_write_nothing() {
    let long = "k".repeat(255);
    let too_long = "k".repeat(256);
    let producer_long = "p".repeat(65);
    for face in FACES {
        let node = TestNode::new(Limits::default()).await;
        node.create(face.definition(json!({}))).await;
        // At the edge: 1 and 255 characters.
        ok(face, &node.state, 1, &[("idempotency-key", "x")]).await;
        ok(face, &node.state, 2, &[("idempotency-key", &long)]).await;
        let bad: [&[(&str, &str)]; 8] = [
            &[("idempotency-key", "")],
            &[("idempotency-key", &too_long)],
            &[("idempotency-key", "has space")],
            &[("intake-producer-id", "p")],
            &[("intake-sequence", "1")],
            &[("intake-producer-id", "p"), ("intake-sequence", "-1")],
            &[
                ("intake-producer-id", &producer_long),
                ("intake-sequence", "0"),
            ],
            &[
                ("idempotency-key", "k"),
                ("intake-producer-id", "p"),
                ("intake-sequence", "0"),
            ],
        ];
        for headers in bad {
            let (status, _, body) = send(&node.state, face.push(3, headers)).await;
            let expected = match face {
                Face::Native => (400, "invalid_idempotency_key".to_owned()),
                Face::RestProxy | Face::Ekuiper => (400, "400".to_owned()),
                Face::Ckafka => (200, "InvalidParameterValue.IdempotencyKey".to_owned()),
                Face::Inlong => (200, "400".to_owned()),
            };
            assert_eq!(
                (status, face.error_code(status, &body)),
                expected,
                "{face:?} {headers:?}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        // A non-ASCII key.
        let mut req = face.push(3, &[]);
        req.headers_mut().insert(
            "idempotency-key",
            axum::http::HeaderValue::from_bytes("clé".as_bytes()).unwrap(),
        );
        let (status, _, body) = send(&node.state, req).await;
        assert_eq!(face.error_code(status, &body), expected_invalid(face));
        assert_eq!(stored(&node).await, 2 * face.records_per_push(), "{face:?}");
    }
}

fn expected_invalid(face: Face) -> String {
    match face {
        Face::Native => "invalid_idempotency_key".into(),
        Face::RestProxy | Face::Ekuiper | Face::Inlong => "400".into(),
        Face::Ckafka => "InvalidParameterValue.IdempotencyKey".into(),
    }
}

#[tokio::test]
async fn a_refused_request_is_not_remembered() {
    let node = TestNode::new(Limits::default()).await;
    node.create(Face::Native.definition(json!({}))).await;
    let req = Request::post("/v1/streams/s/records")
        .header("content-type", "application/json")
        .header("idempotency-key", "fix-me")
        .body(Body::from("[{\"broken\": }]"))
        .unwrap();
    let (status, _, _) = send(&node.state, req).await;
    assert_eq!(status, 400);
    // The same key with the corrected body is a first request.
    let (replayed, _) = ok(
        Face::Native,
        &node.state,
        1,
        &[("idempotency-key", "fix-me")],
    )
    .await;
    assert!(!replayed);
    assert_eq!(stored(&node).await, 2);
}

fn producer(id: &str, sequence: &str) -> [(&'static str, String); 2] {
    [
        ("intake-producer-id", id.to_owned()),
        ("intake-sequence", sequence.to_owned()),
    ]
}

async fn push_seq(
    face: Face,
    state: &AppState,
    n: u32,
    id: &str,
    seq: u64,
) -> (u16, Vec<u8>, bool) {
    let headers = producer(id, &seq.to_string());
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, h, body) = send(state, face.push(n, &headers)).await;
    (status, body, h.contains_key("idempotent-replayed"))
}

#[tokio::test]
async fn producer_sequences_replay_duplicates_and_refuse_gaps() {
    for face in FACES {
        let node = TestNode::new(Limits::default()).await;
        node.create(face.definition(json!({}))).await;
        let state = &node.state;
        // A new producer may start anywhere.
        for seq in 5..8u64 {
            let (status, body, replayed) = push_seq(face, state, seq as u32, "p1", seq).await;
            assert_eq!(status, 200, "{face:?}");
            assert_eq!(
                face.error_code(status, &body).trim_matches('"'),
                match face {
                    Face::Native | Face::Ckafka => "",
                    Face::RestProxy => "null",
                    Face::Ekuiper => "200",
                    Face::Inlong => "0",
                }
            );
            assert!(!replayed);
        }
        // A duplicate of an acknowledged sequence is replayed.
        let (status, first, _) = push_seq(face, state, 6, "p1", 6).await;
        assert_eq!(status, 200);
        let (_, again, replayed) = push_seq(face, state, 6, "p1", 6).await;
        assert!(replayed, "{face:?}");
        assert_eq!(face.answer(&first), face.answer(&again));
        assert_eq!(stored(&node).await, 3 * face.records_per_push(), "{face:?}");
        // A gap is refused, naming the next sequence.
        let (status, body, _) = push_seq(face, state, 10, "p1", 10).await;
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("8 is the next one"), "{face:?}: {text}");
        match face {
            Face::Native => {
                assert_eq!(status, 409);
                let json: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(json["error"]["code"], "out_of_order_sequence");
                assert_eq!(json["error"]["expected"], 8);
            }
            Face::RestProxy | Face::Ekuiper => assert_eq!(status, 409, "{face:?}"),
            Face::Ckafka => assert_eq!(
                face.error_code(status, &body),
                "FailedOperation.OutOfOrderSequence"
            ),
            Face::Inlong => assert_eq!(face.error_code(status, &body), "409"),
        }
        // Producers are counted apart.
        let (status, _, _) = push_seq(face, state, 1, "p2", 0).await;
        assert_eq!(status, 200);
        let (status, _, replayed) = push_seq(face, state, 8, "p1", 8).await;
        assert_eq!((status, replayed), (200, false));
        assert_eq!(stored(&node).await, 5 * face.records_per_push(), "{face:?}");
        let (_, _, view) = node.get("/v1/streams/s").await;
        assert_eq!(view["dedup"]["producers"], 2, "{view}");
    }
}

#[tokio::test]
async fn keys_and_sequences_survive_a_restart() {
    for face in FACES {
        let dir = tempfile::tempdir().unwrap();
        let open = || async {
            let node = Node::open(CoreConfig::new(dir.path())).await.unwrap();
            AppState::new(node, Limits::default())
        };
        let state = open().await;
        let create = Request::post("/v1/streams")
            .header("content-type", "application/json")
            .body(Body::from(face.definition(json!({})).to_string()))
            .unwrap();
        assert_eq!(send(&state, create).await.0, 201);
        let key = [("idempotency-key", "before")];
        let (_, keyed) = ok(face, &state, 1, &key).await;
        let (status, sequenced, _) = push_seq(face, &state, 2, "p", 41).await;
        assert_eq!(status, 200);
        state.node.shutdown().await;
        drop(state);

        let state = open().await;
        let (replayed, again) = ok(face, &state, 1, &key).await;
        assert!(replayed, "{face:?}");
        assert_eq!(
            String::from_utf8_lossy(&again),
            String::from_utf8_lossy(&keyed),
            "{face:?}"
        );
        let (status, again, replayed) = push_seq(face, &state, 2, "p", 41).await;
        assert_eq!((status, replayed), (200, true), "{face:?}");
        assert_eq!(face.answer(&again), face.answer(&sequenced), "{face:?}");
        let (_, body, _) = push_seq(face, &state, 3, "p", 43).await;
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("42 is the next one"), "{face:?}: {text}");
        let (status, _, replayed) = push_seq(face, &state, 3, "p", 42).await;
        assert_eq!((status, replayed), (200, false), "{face:?}");
        // A different request under a key seen before the restart.
        let (status, _, body) = send(&state, face.push(9, &key)).await;
        assert!(
            String::from_utf8_lossy(&body).contains("different request"),
            "{face:?} {status}: {}",
            String::from_utf8_lossy(&body)
        );
        let req = Request::get("/v1/streams/s").body(Body::empty()).unwrap();
        let (_, _, view) = send(&state, req).await;
        let view: Value = serde_json::from_slice(&view).unwrap();
        let stored: u64 = view["status"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["next_offset"].as_u64().unwrap())
            .sum();
        assert_eq!(stored, 3 * face.records_per_push(), "{face:?}: {view}");
        state.node.shutdown().await;
    }
}

#[tokio::test]
async fn dedup_settings_are_checked() {
    let node = TestNode::new(Limits::default()).await;
    for (def, field) in [
        (json!({"name": "a", "dedup_window": "soon"}), "dedup_window"),
        (
            json!({"name": "a", "dedup_window": "500ms"}),
            "dedup_window",
        ),
        (json!({"name": "a", "dedup_max_keys": 0}), "dedup_max_keys"),
    ] {
        let (status, _, body) = node
            .post("/v1/streams", Some("application/json"), def.to_string())
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(fixture::message(&body).contains(field), "{body}");
    }
    let view = node
        .create(json!({"name": "b", "dedup_window": "90m", "dedup_max_keys": 5}))
        .await;
    assert_eq!(view["dedup_window"], "90m");
    assert_eq!(view["dedup_max_keys"], 5);
}

#[tokio::test]
async fn a_retry_writes_only_the_partitions_a_failed_attempt_missed() {
    let fs = intake_log::MemoryFilesystem::new();
    // The catalog is a file on the real disk; the log is in `fs`.
    let dir = tempfile::tempdir().unwrap();
    let mut core = CoreConfig::new(dir.path());
    // Partition 1's part goes straight to its segment, where the fault is;
    // partition 0's small part goes through the journal, which works.
    core.log.direct_write_bytes = 4096;
    let node = Node::open_with_filesystem(core, Arc::new(fs.clone()))
        .await
        .unwrap();
    let state = AppState::new(node, Limits::default());
    let create = Request::post("/v1/streams")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"name": "s", "partitions": 2}"#))
        .unwrap();
    assert_eq!(send(&state, create).await.0, 201);
    let pad = "p".repeat(3000);
    let body = json!({"records": [
        {"partition": 0, "value": {"i": 0}},
        {"partition": 1, "value": {"i": 1, "pad": pad}},
        {"partition": 0, "value": {"i": 2}},
        {"partition": 1, "value": {"i": 3, "pad": pad}},
    ]})
    .to_string();
    let push = || {
        Request::post("/topics/s")
            .header("content-type", "application/vnd.kafka.json.v2+json")
            .header("idempotency-key", "split")
            .body(Body::from(body.clone()))
            .unwrap()
    };
    let read = |partition: u32| {
        let state = state.clone();
        async move {
            let req = Request::get(format!("/v1/streams/s/partitions/{partition}/records"))
                .body(Body::empty())
                .unwrap();
            let (_, _, body) = send(&state, req).await;
            let body: Value = serde_json::from_slice(&body).unwrap();
            body["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["value"]["i"].as_u64().unwrap())
                .collect::<Vec<_>>()
        }
    };

    fs.set_full_under(Some(dir.path().join("streams/s/1")));
    let (status, _, failed) = send(&state, push()).await;
    assert_eq!(status, 507, "{}", String::from_utf8_lossy(&failed));
    assert_eq!(read(0).await, [0, 2], "partition 0 was written");
    assert_eq!(read(1).await, Vec::<u64>::new(), "partition 1 was not");

    fs.set_full_under(None);
    let (status, h, answer) = send(&state, push()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    assert!(
        !h.contains_key("idempotent-replayed"),
        "partition 1 was written now"
    );
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(
        answer["offsets"],
        json!([
            {"partition": 0, "offset": 0, "error_code": null, "error": null},
            {"partition": 1, "offset": 0, "error_code": null, "error": null},
            {"partition": 0, "offset": 1, "error_code": null, "error": null},
            {"partition": 1, "offset": 1, "error_code": null, "error": null},
        ]),
        "the full answer, in request order"
    );
    assert_eq!(read(0).await, [0, 2], "each record once");
    assert_eq!(read(1).await, [1, 3]);
    let (status, h, again) = send(&state, push()).await;
    assert_eq!(
        (status, h["idempotent-replayed"].to_str().unwrap()),
        (200, "true")
    );
    assert_eq!(serde_json::from_slice::<Value>(&again).unwrap(), answer);
    assert_eq!(read(0).await, [0, 2]);
    assert_eq!(read(1).await, [1, 3]);
}
