//! eKuiper's REST API for streams: both `CREATE STREAM` statements of the
//! httppush seed, verbatim, through `POST /streams`; a push to the path
//! lands and reads back; describe, show, replace (records kept), drop; the
//! method from `CONF_KEY`; bad statements refused with eKuiper's error body.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod fixture;

use axum::body::Body;
use axum::http::Request;
use fixture::TestNode;
use intake_server::{HttppushConfKey, HttppushConfig, Limits};
use serde_json::{Value, json};

async fn sql(node: &TestNode, path: &str, statement: &str) -> (u16, Value) {
    let (status, _, body) = node
        .post(
            path,
            Some("application/json"),
            json!({ "sql": statement }).to_string(),
        )
        .await;
    (status, body)
}

async fn call(node: &TestNode, method: &str, path: &str, body: Value) -> (u16, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let (status, _, body) = node.call(request).await;
    (status, body)
}

#[tokio::test]
async fn the_seed_statements_work_verbatim_and_pushes_land() {
    let node = TestNode::new(Limits::default()).await;
    let (status, body) = sql(
        &node,
        "/streams",
        r#"CREATE STREAM httpDemo() WITH (FORMAT="json", TYPE="httppush")"#,
    )
    .await;
    assert_eq!((status, body), (201, json!("Stream httpDemo is created.")));
    let (status, body) = node
        .post("/api/data", None, r#"{"temperature": 21.5}"#)
        .await
        .into_status_body();
    assert_eq!((status, body), (200, json!("ok")));
    assert_eq!(
        node.values("httpDemo").await,
        [json!({"temperature": 21.5})]
    );

    // The second statement binds the same path: refused while the first
    // holds it, accepted once it is dropped.
    let second = r#"CREATE STREAM httpDemo2() WITH (DATASOURCE="/api/data", FORMAT="json", TYPE="httppush")"#;
    let (status, body) = sql(&node, "/streams", second).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], 1000);
    assert!(
        body["message"].as_str().unwrap().contains("/api/data"),
        "{body}"
    );
    let (status, body) = call(&node, "DELETE", "/streams/httpDemo", Value::Null).await;
    assert_eq!((status, body), (200, json!("Stream httpDemo is dropped.")));
    let (status, _) = sql(&node, "/streams", second).await;
    assert_eq!(status, 201);
    let (status, _, _) = node.post("/api/data", None, r#"{"temperature": 22}"#).await;
    assert_eq!(status, 200);
    assert_eq!(node.values("httpDemo2").await, [json!({"temperature": 22})]);

    let (status, body) = node.get("/streams").await.into_status_body();
    assert_eq!((status, body), (200, json!(["httpDemo2"])));
    let (status, body) = sql(&node, "/streams", "SHOW STREAMS").await;
    assert_eq!((status, body), (200, json!(["httpDemo2"])));
}

#[tokio::test]
async fn describe_replace_and_errors() {
    let mut conf_keys = std::collections::BTreeMap::new();
    conf_keys.insert(
        "application_conf".to_owned(),
        HttppushConfKey {
            method: "PUT".into(),
        },
    );
    let node = TestNode::new(Limits::default()).await;
    let node = TestNode {
        state: node.state.clone().with_httppush(HttppushConfig {
            default: HttppushConfKey::default(),
            conf_keys,
        }),
        ..node
    };
    let (status, body) = sql(
        &node,
        "/streams",
        "create stream demo (temperature float, ts bigint, loc struct(lat float), tags array(string)) \
         WITH (datasource=\"/sensors\", format=\"JSON\", type=\"httppush\", key=\"ts\", \
         strict_validation=\"true\", conf_key=\"application_conf\")",
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = node.get("/streams/demo").await.into_status_body();
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({
            "Name": "demo",
            "StreamFields": [
                {"Name": "temperature", "FieldType": {"Type": 2}},
                {"Name": "ts", "FieldType": {"Type": 1}},
                {"Name": "loc", "FieldType": {"Type": 8, "StreamFields": [
                    {"Name": "lat", "FieldType": {"Type": 2}}]}},
                {"Name": "tags", "FieldType": {"Type": 7, "FieldType": {"Type": 3}}}
            ],
            "Options": {"DATASOURCE": "/sensors", "FORMAT": "JSON", "TYPE": "httppush",
                        "KEY": "ts", "SHARED": "false", "STRICT_VALIDATION": "true"},
            "StreamType": 0
        })
    );
    // The same definition through the native API: one catalog row.
    let (_, _, native) = node.get("/v1/streams/demo").await;
    assert_eq!(native["bindings"]["datasource"]["method"], "PUT");
    assert_eq!(native["key_field"], "ts");
    assert_eq!(
        native["schema"][0],
        json!({"name": "temperature", "type": "float"})
    );

    // CONF_KEY picked PUT: POST is refused with Allow, PUT lands.
    let (status, headers, _) = node
        .post("/sensors", None, r#"{"temperature": 1.5, "ts": 1}"#)
        .await;
    assert_eq!((status, &headers["allow"]), (405, &"PUT".parse().unwrap()));
    let (status, _) = call(
        &node,
        "PUT",
        "/sensors",
        json!({"temperature": 1.5, "ts": 1, "loc": {"lat": 0.5}, "tags": ["a"]}),
    )
    .await;
    assert_eq!(status, 200);

    // Replace: new fields, records kept, strict validation now off.
    let (status, body) = call(
        &node,
        "PUT",
        "/streams/demo",
        json!({"sql": "CREATE STREAM demo (temperature float, humidity float) WITH (DATASOURCE=\"/sensors\", TYPE=\"httppush\")"}),
    )
    .await;
    assert_eq!((status, body), (200, json!("Stream demo is replaced.")));
    let (_, _, native) = node.get("/v1/streams/demo").await;
    assert_eq!(native["schema"].as_array().unwrap().len(), 2);
    assert_eq!(native["strict_validation"], false);
    let (status, _, _) = node
        .post("/sensors", None, r#"{"temperature": "2.5"}"#)
        .await;
    assert_eq!(status, 200, "POST, the default method, after the replace");
    assert_eq!(
        node.values("demo").await,
        [
            json!({"temperature": 1.5, "ts": 1, "loc": {"lat": 0.5}, "tags": ["a"]}),
            json!({"temperature": 2.5, "humidity": null})
        ]
    );

    // Errors: eKuiper's body, the fault named.
    for (statement, expected) in [
        (
            "CREATE STREAM s () WITH (COLOR=\"red\")",
            "unknown WITH key COLOR; accepted: DATASOURCE",
        ),
        (
            "CREATE STREAM s (a decimal) WITH (TYPE=\"httppush\")",
            "unknown type decimal; accepted: bigint",
        ),
        ("CREATE STREAM s () WITH (TYPE=\"mqtt\")", "TYPE \"mqtt\""),
        (
            "CREATE STREAM s () WITH (TYPE=\"httppush\"); DROP STREAM demo",
            "after the end",
        ),
        (
            "CREATE STREAM s () WITH (CONF_KEY=\"nope\")",
            "CONF_KEY \"nope\" is not configured; configured keys: [application_conf]",
        ),
        (
            "CREATE TABLE t (id bigint) WITH (TYPE=\"httppush\", RETAIN_SIZE=\"10\")",
            "a table statement was sent to /streams",
        ),
        ("CREATE STREAM demo () WITH (DATASOURCE=\"/other\")", "demo"),
    ] {
        let (status, body) = sql(&node, "/streams", statement).await;
        assert_eq!(status, 400, "{statement}: {body}");
        assert_eq!(body["error"], 1000);
        assert!(
            body["message"].as_str().unwrap().contains(expected),
            "{statement}: {body}"
        );
    }
    // A table: created, listed apart from streams, fed by its path, read
    // as rows.
    let (status, body) = sql(
        &node,
        "/tables",
        "CREATE TABLE t (id bigint, v float) WITH (DATASOURCE=\"/t\", TYPE=\"httppush\", KEY=\"id\", RETAIN_SIZE=\"10\")",
    )
    .await;
    assert_eq!((status, body), (201, json!("Table t is created.")));
    assert_eq!(
        node.get("/tables").await.into_status_body(),
        (200, json!(["t"]))
    );
    assert_eq!(
        node.get("/streams").await.into_status_body(),
        (200, json!(["demo"]))
    );
    for v in [1.5, 2.5] {
        let (status, _, _) = node
            .post("/t", None, json!({"id": 7, "v": v}).to_string())
            .await;
        assert_eq!(status, 200);
    }
    let (_, _, rows) = node.get("/v1/tables/t/rows").await;
    assert_eq!(rows["rows"], json!([{"id": 7, "v": 2.5}]));
    let (_, body) = node.get("/tables/t").await.into_status_body();
    assert_eq!(body["StreamType"], 1, "{body}");
    assert_eq!(body["Options"]["RETAIN_SIZE"], "10", "{body}");
    let (status, body) = node.get("/streams/nope").await.into_status_body();
    assert_eq!(status, 404);
    assert_eq!(body["error"], 1002);
    let (status, body) = call(
        &node,
        "PUT",
        "/streams/demo",
        json!({"sql": "CREATE STREAM other () WITH (TYPE=\"httppush\")"}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().contains("not \"demo\""),
        "{body}"
    );
    let (status, body) = call(&node, "POST", "/streams", json!({"query": "x"})).await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().contains("\"sql\""),
        "{body}"
    );
    assert_eq!(
        node.values("demo").await.len(),
        2,
        "nothing written by refusals"
    );
}

/// `(status, body)` of a fixture answer.
trait StatusBody {
    fn into_status_body(self) -> (u16, Value);
}

impl StatusBody for (u16, axum::http::HeaderMap, Value) {
    fn into_status_body(self) -> (u16, Value) {
        (self.0, self.2)
    }
}
