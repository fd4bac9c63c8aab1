//! eKuiper httppush: each stream's own push path, on the main router and on
//! the push listener: 200 `ok` once durable, 400 with the reason, 405 with
//! `Allow`, 404 for unbound paths, shared paths fanned out all-or-nothing.
#![allow(clippy::unwrap_used, reason = "a panic in a test is a failed test")]

mod fixture;

use axum::body::Body;
use axum::http::Request;
use fixture::TestNode;
use intake_server::Limits;
use serde_json::json;

#[tokio::test]
async fn push_path_answers_like_ekuiper_but_never_drops() {
    let node = TestNode::new(Limits::default()).await;
    node.create(json!({
        "name": "demo",
        "schema": [{"name": "temperature", "type": "float"}],
        "strict_validation": true,
        "bindings": {"datasource": {"path": "/api/data", "method": "post"}}
    }))
    .await;

    let (status, headers, body) = node
        .post("/api/data", None, r#"{"temperature": 21.5}"#)
        .await;
    assert_eq!((status, body), (200, json!("ok")));
    assert_eq!(headers["content-type"], "text/plain");
    let (status, _, _) = node
        .post(
            "/api/data",
            Some("text/plain"),
            r#"[{"temperature": 1}, {"temperature": 2.5}]"#,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        node.values("demo").await,
        vec![
            json!({"temperature": 21.5}),
            json!({"temperature": 1}),
            json!({"temperature": 2.5})
        ]
    );

    let (status, _, body) = node
        .post(
            "/api/data",
            None,
            r#"[{"temperature": 1}, {"temperature": 2}, {"temperature": 3}, {"temperature": "hot"}]"#,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!(r#"record 3: field "temperature": expected float, got string "hot""#)
    );
    let (status, _, body) = node.post("/api/data", None, "{not json").await;
    assert_eq!(status, 400);
    assert!(
        body.as_str().unwrap().starts_with("malformed body"),
        "{body}"
    );
    assert_eq!(
        node.values("demo").await.len(),
        3,
        "nothing of a refused request is written"
    );

    let (status, headers, _) = node
        .call(
            Request::put("/api/data")
                .body(Body::from(r#"{"temperature": 1}"#))
                .unwrap(),
        )
        .await;
    assert_eq!(status, 405);
    assert_eq!(headers["allow"], "POST");
    let (status, _, body) = node.post("/api/other", None, "{}").await;
    assert_eq!(status, 404, "{body}");

    // The push listener serves the same paths, and only them.
    let push = intake_server::push_router(node.state.clone());
    use tower::ServiceExt;
    let response = push
        .clone()
        .oneshot(
            Request::post("/api/data")
                .body(Body::from(r#"{"temperature": 30}"#))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = push
        .oneshot(Request::get("/v1/streams").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(node.values("demo").await.len(), 4);

    // A paused stream refuses, it never accepts and drops.
    let (status, _, _) = node
        .call(
            Request::put("/v1/streams/demo/state")
                .header("content-type", "application/json")
                .body(Body::from(r#"{"state": "paused"}"#))
                .unwrap(),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _, _) = node.post("/api/data", None, r#"{"temperature": 1}"#).await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn shared_paths_fan_out_all_or_nothing() {
    let node = TestNode::new(Limits::default()).await;
    let binding = json!({"datasource": {"path": "/api/shared", "method": "PUT", "shared": true}});
    node.create(json!({"name": "a", "bindings": binding})).await;
    node.create(json!({
        "name": "b",
        "schema": [{"name": "v", "type": "bigint"}],
        "strict_validation": true,
        "bindings": binding
    }))
    .await;
    // A second stream may not take an unshared path, nor share one that is
    // not shared.
    node.create(json!({"name": "c", "bindings": {"datasource": {"path": "/api/own"}}}))
        .await;
    for (name, ds) in [
        ("d", json!({"path": "/api/own"})),
        ("e", json!({"path": "/api/own", "shared": true})),
        ("f", json!({"path": "/api/shared"})),
        (
            "g",
            json!({"path": "/api/shared", "shared": true, "method": "POST"}),
        ),
        ("h", json!({"path": "/v1/streams"})),
    ] {
        let (status, _, body) = node
            .post(
                "/v1/streams",
                Some("application/json"),
                json!({"name": name, "bindings": {"datasource": ds}}).to_string(),
            )
            .await;
        assert_eq!(status, 400, "{name}: {body}");
    }

    let put = |body: &'static str| Request::put("/api/shared").body(Body::from(body)).unwrap();
    let (status, _, body) = node.call(put(r#"[{"v": 1}, {"v": 2}]"#)).await;
    assert_eq!((status, body), (200, json!("ok")));
    assert_eq!(node.values("a").await.len(), 2);
    assert_eq!(node.values("b").await.len(), 2);

    // b refuses the second record: neither stream gets anything.
    let (status, _, body) = node.call(put(r#"[{"v": 3}, {"v": "x"}]"#)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(node.values("a").await.len(), 2);
    assert_eq!(node.values("b").await.len(), 2);
}
