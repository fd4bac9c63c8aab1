//! Scan tables over the router: the latest `retain_size` rows by key or
//! by record, filters (and bad ones, 400), and refusals of definitions a
//! table cannot have.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod fixture;

use fixture::{TestNode, code, message};
use intake_server::Limits;
use serde_json::{Value, json};

async fn rows(node: &TestNode, table: &str, query: &str) -> (u16, Value) {
    let (status, _, body) = node.get(&format!("/v1/tables/{table}/rows{query}")).await;
    (status, body)
}

async fn push(node: &TestNode, stream: &str, records: Value) {
    let (status, _, body) = node
        .post(
            &format!("/v1/streams/{stream}/records"),
            Some("application/json"),
            records.to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_keyed_table_keeps_the_latest_row_per_key() {
    let node = TestNode::new(Limits::default()).await;
    node.create(json!({"name": "devices", "kind": "table", "retain_size": 3,
                       "key_field": "id", "partitions": 2}))
        .await;
    push(
        &node,
        "devices",
        json!([{"id": "a", "temp": 20}, {"id": "b", "temp": 25}]),
    )
    .await;
    push(&node, "devices", json!({"id": "a", "temp": 21})).await;
    push(
        &node,
        "devices",
        json!({"id": "c", "temp": 30, "room": "lab"}),
    )
    .await;
    let (status, body) = rows(&node, "devices", "").await;
    assert_eq!(status, 200, "{body}");
    let mut got: Vec<Value> = body["rows"].as_array().unwrap().clone();
    got.sort_by_key(|r| r["id"].as_str().unwrap().to_owned());
    assert_eq!(
        got,
        [
            json!({"id": "a", "temp": 21}),
            json!({"id": "b", "temp": 25}),
            json!({"id": "c", "temp": 30, "room": "lab"})
        ]
    );
    // A fourth key pushes out the least recently written one.
    push(&node, "devices", json!({"id": "d", "temp": 10})).await;
    let (_, body) = rows(&node, "devices", "").await;
    let ids: Vec<&str> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(!ids.contains(&"b"), "{ids:?}");

    for (filter, expected) in [
        ("temp > 20", vec!["a", "c"]),
        ("temp >= 21 AND NOT room = 'lab'", vec!["a"]),
        ("(id = 'd' OR id = 'c') AND temp < 100", vec!["c", "d"]),
        ("room = null", vec!["a", "d"]),
        ("missing > 1", vec![]),
    ] {
        let query = format!("?filter={}", percent(filter));
        let (status, body) = rows(&node, "devices", &query).await;
        assert_eq!(status, 200, "{filter}: {body}");
        let mut ids: Vec<&str> = body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, expected, "{filter}");
    }
    let (_, body) = rows(&node, "devices", "?limit=1").await;
    assert_eq!(body["rows"].as_array().unwrap().len(), 1);

    for (filter, fault) in [
        ("temp >", "at character 6: expected a literal"),
        ("temp ~ 1", "unexpected character '~'"),
        ("(temp > 1", "expected `)`"),
    ] {
        let (status, body) = rows(&node, "devices", &format!("?filter={}", percent(filter))).await;
        assert_eq!(status, 400, "{filter}: {body}");
        assert_eq!(code(&body), "bad_request");
        assert!(message(&body).contains(fault), "{filter}: {body}");
    }
}

#[tokio::test]
async fn an_unkeyed_table_keeps_the_last_records_and_refusals_are_clear() {
    let node = TestNode::new(Limits::default()).await;
    node.create(json!({"name": "last", "kind": "table", "retain_size": 2}))
        .await;
    for n in 0..5 {
        push(&node, "last", json!({ "n": n })).await;
    }
    let (_, body) = rows(&node, "last", "").await;
    assert_eq!(body["rows"], json!([{"n": 3}, {"n": 4}]));

    node.create(json!({"name": "plain"})).await;
    let (status, body) = rows(&node, "plain", "").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "table_not_found", "{body}");
    assert!(message(&body).contains("not a table"), "{body}");
    let (status, body) = rows(&node, "nope", "").await;
    assert_eq!(status, 404, "{body}");

    for (definition, field) in [
        (json!({"name": "t1", "kind": "table"}), "retain_size"),
        (
            json!({"name": "t2", "kind": "table", "retain_size": 2_000_000}),
            "retain_size",
        ),
        (
            json!({"name": "t3", "kind": "table", "retain_size": 5, "format": "binary"}),
            "format",
        ),
    ] {
        let (status, _, body) = node
            .post(
                "/v1/streams",
                Some("application/json"),
                definition.to_string(),
            )
            .await;
        assert_eq!(status, 400, "{definition}: {body}");
        assert!(message(&body).contains(field), "{definition}: {body}");
    }
}

/// Percent-encodes a query value.
fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
