//! `GET /openapi.json`: open under `auth = "tokens"`, OpenAPI 3.1, with
//! every native and admin operation, the errors every operation may
//! answer, and schemas that say what the node enforces. (schemathesis,
//! run by `tests/schemathesis/run.sh`, checks live answers against it.)
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod fixture;

use axum::body::Body;
use axum::http::Request;
use fixture::{TestNode, code};
use intake_server::{AuthMode, Limits};
use serde_json::{Value, json};

async fn spec() -> Value {
    let plain = TestNode::new(Limits::default()).await;
    let node = TestNode {
        state: plain.state.clone().with_auth(
            AuthMode::Tokens,
            Some("admin-token-for-the-spec-test".into()),
        ),
        ..plain
    };
    let (status, headers, spec) = node.get("/openapi.json").await;
    assert_eq!(status, 200, "open without a token: {spec}");
    assert_eq!(headers["content-type"], "application/json");
    spec
}

#[tokio::test]
async fn every_native_and_admin_operation_is_described() {
    let spec = spec().await;
    assert_eq!(spec["openapi"], "3.1.0");
    let expected = [
        ("/v1/streams", "post", "201"),
        ("/v1/streams", "get", "200"),
        ("/v1/streams/{name}", "get", "200"),
        ("/v1/streams/{name}", "delete", "204"),
        ("/v1/streams/{name}/state", "put", "200"),
        ("/v1/streams/{name}/records", "post", "200"),
        (
            "/v1/streams/{name}/partitions/{partition}/records",
            "get",
            "200",
        ),
        ("/v1/streams/{name}/tail", "get", "200"),
        ("/v1/tables/{name}/rows", "get", "200"),
        ("/v1/streams/{name}/sinks", "get", "200"),
        ("/v1/streams/{name}/sinks/{sink}/pause", "post", "200"),
        ("/v1/streams/{name}/sinks/{sink}/resume", "post", "200"),
        ("/v1/streams/{name}/sinks/{sink}/reset", "post", "200"),
        ("/v1/tokens", "get", "200"),
        ("/v1/tokens", "post", "201"),
        ("/v1/tokens/{id}", "delete", "204"),
        ("/healthz", "get", "200"),
        ("/readyz", "get", "200"),
        ("/metrics", "get", "200"),
    ];
    let paths = spec["paths"].as_object().unwrap();
    let described: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(described, expected.len(), "{:?}", paths.keys());
    for (path, method, success) in expected {
        let operation = &spec["paths"][path][method];
        let responses = operation["responses"].as_object().unwrap();
        assert!(
            responses.contains_key(success),
            "{method} {path}: {responses:?}"
        );
        // What any operation may meet: the node's limits and the token checks.
        for shared in ["401", "403", "408", "429", "503"] {
            let schema = &responses[shared]["content"]["application/json"]["schema"]["$ref"];
            let own = path == "/readyz" && shared == "503";
            let expected = if own { "Health" } else { "ErrorResponse" };
            assert_eq!(
                schema,
                &format!("#/components/schemas/{expected}"),
                "{method} {path} {shared}"
            );
        }
        assert!(
            operation["description"].is_string() || operation["summary"].is_string(),
            "{method} {path} is documented"
        );
    }
    // Tokens are needed except on the health routes.
    assert_eq!(spec["security"], json!([{"token": []}]));
    assert_eq!(spec["paths"]["/healthz"]["get"]["security"], json!([{}]));
}

#[tokio::test]
async fn schemas_state_what_the_node_enforces() {
    let spec = spec().await;
    let schemas = &spec["components"]["schemas"];
    let definition = &schemas["StreamDefinition"];
    assert_eq!(definition["required"], json!(["name"]));
    assert_eq!(definition["additionalProperties"], false);
    assert_eq!(
        definition["properties"]["name"]["pattern"],
        "^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"
    );
    assert_eq!(definition["properties"]["partitions"]["minimum"], 1);
    assert_eq!(definition["properties"]["partitions"]["maximum"], 1024);
    // A stream as shown: the definition's fields and its status, in one
    // object (a flattened allOf would refuse `status`).
    let view = &schemas["StreamView"];
    assert!(view["properties"]["status"].is_object(), "{view}");
    assert!(view["properties"]["bindings"].is_object(), "{view}");
    assert!(view.get("additionalProperties").is_none(), "{view}");
    assert_eq!(
        schemas["ErrorResponse"]["properties"]["error"]["$ref"],
        "#/components/schemas/ErrorDetail"
    );
    assert_eq!(schemas["Scope"]["type"], "string");
    let tail = &spec["paths"]["/v1/streams/{name}/tail"]["get"]["responses"]["200"]["content"];
    assert_eq!(
        tail["text/event-stream"]["schema"]["$ref"],
        "#/components/schemas/TailEvent"
    );
    assert_eq!(
        schemas["TailEvent"]["properties"]["data"]["contentSchema"]["$ref"],
        "#/components/schemas/RecordView"
    );
}

#[tokio::test]
async fn admin_bodies_take_whole_numbers_written_as_floats() {
    let node = TestNode::new(Limits::default()).await;
    // Python's json.dumps writes 2.0; JSON Schema calls it an integer.
    let created = node
        .create(json!({"name": "floaty", "partitions": 2.0, "retention_ms": 6.0e4}))
        .await;
    assert_eq!(created["partitions"], 2);
    assert_eq!(created["retention_ms"], 60_000);
    for (partitions, says) in [
        (json!(2.5), "floating point `2.5`"),
        (json!(1e300), "floating point"),
        (json!("2"), "invalid type: string"),
    ] {
        let (status, _, body) = node
            .post(
                "/v1/streams",
                Some("application/json"),
                json!({"name": "bad", "partitions": partitions}).to_string(),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(code(&body), "bad_request");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{partitions}: {message}");
        assert!(message.contains("line 1 column"), "{message}");
    }
}

#[tokio::test]
async fn octet_stream_bodies_are_read_as_the_streams_format() {
    let node = TestNode::new(Limits::default()).await;
    node.create(json!({"name": "bytes-as-json"})).await;
    let (status, _, body) = node
        .post(
            "/v1/streams/bytes-as-json/records",
            Some("application/octet-stream"),
            r#"[{"n":1},{"n":2}]"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["records"], 2);
    assert_eq!(
        node.values("bytes-as-json").await,
        vec![json!({"n": 1}), json!({"n": 2})]
    );
    let (status, _, body) = node
        .call(
            Request::post("/v1/streams/bytes-as-json/records")
                .header("content-type", "text/plain")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(status, 415, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("application/octet-stream"),
        "{body}"
    );
}
