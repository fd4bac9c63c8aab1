//! The dashboard's page and assets come from the binary itself, load
//! nothing from elsewhere, and `/v1/overview` shows streams with their
//! partitions and traffic; the page's reads are not counted as traffic.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod fixture;

use axum::body::Body;
use axum::http::Request;
use fixture::TestNode;
use http_body_util::BodyExt;
use intake_server::Limits;
use serde_json::json;
use tower::ServiceExt;

async fn asset(node: &TestNode, path: &str) -> (u16, String, String) {
    let response = node
        .router()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn page_and_assets_are_served_from_the_binary() {
    let node = TestNode::new(Limits::default()).await;
    let (status, ct, html) = asset(&node, "/").await;
    assert_eq!(status, 200);
    assert_eq!(ct, "text/html; charset=utf-8");
    assert!(html.contains(r#"<script src="/dashboard/app.js">"#));
    assert!(html.contains(r#"href="/dashboard/style.css""#));
    let (status, ct, js) = asset(&node, "/dashboard/app.js").await;
    assert_eq!(
        (status, ct.as_str()),
        (200, "text/javascript; charset=utf-8")
    );
    assert!(js.contains("/v1/overview"));
    let (status, ct, css) = asset(&node, "/dashboard/style.css").await;
    assert_eq!((status, ct.as_str()), (200, "text/css; charset=utf-8"));
    for text in [&html, &js, &css] {
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "an asset refers to another host"
        );
    }
    // POST / is still the CKafka face.
    let (status, _, body) = node.post("/", Some("application/json"), "{}").await;
    assert_eq!(status, 200);
    assert_eq!(
        body["Response"]["Error"]["Code"], "MissingParameter",
        "{body}"
    );
}

#[tokio::test]
async fn overview_shows_streams_partitions_and_traffic() {
    let node = TestNode::new(Limits::default()).await;
    node.create(json!({"name": "demo", "partitions": 2})).await;
    let (status, _, _) = node
        .post(
            "/v1/streams/demo/records",
            Some("application/json"),
            r#"[{"a":1},{"a":2},{"a":3}]"#,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _, _) = node
        .post("/v1/streams/demo/records", Some("application/json"), "[")
        .await;
    assert_eq!(status, 400);
    let (status, _, overview) = node.get("/v1/overview").await;
    assert_eq!(status, 200);
    let demo = &overview["streams"][0];
    assert_eq!(demo["definition"]["name"], "demo");
    assert_eq!(demo["definition"]["state"], "active");
    assert_eq!(demo["partitions"].as_array().unwrap().len(), 2);
    let stored: u64 = demo["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["next_offset"].as_u64().unwrap())
        .sum();
    assert_eq!(stored, 3);
    assert_eq!(demo["partitions"][0]["pending_bytes"], 0);
    assert_eq!(demo["totals"]["requests"], 2);
    assert_eq!(demo["totals"]["records"], 3);
    assert_eq!(demo["totals"]["bytes"], 25);
    assert_eq!(demo["totals"]["refusals"], json!({"malformed_body": 1}));
    assert_eq!(demo["totals"]["faces"], json!(["native"]));
    assert_eq!(overview["node"]["load"], 0);
    assert!(overview["node"]["now_ms"].as_i64().unwrap() > 1_700_000_000_000);
    // Reading the overview and the page counted nothing.
    let (_, _, again) = node.get("/v1/overview").await;
    assert_eq!(again["streams"][0]["totals"]["requests"], 2);
}
