//! A stream's `allowed_ips` over a real socket: a client inside the list
//! pushes on every face; outside it, each face refuses in its own shape
//! and nothing is stored; a request whose address is unknown (served in
//! process) is refused too.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod fixture;

use axum::body::Body;
use axum::http::Request;
use fixture::{TestNode, code};
use intake_server::{Limits, run};
use serde_json::{Value, json};

/// Creates `name` bound on every face, taking records from `allowed`.
async fn create(http: &reqwest::Client, url: &str, name: &str, allowed: &[&str]) {
    let created = http
        .post(format!("{url}/v1/streams"))
        .json(&json!({"name": name, "allowed_ips": allowed,
            "bindings": {"inlong": [{"group_id": "g", "stream_id": name}],
                         "datahub_id": format!("dh-{name}"),
                         "datasource": {"path": format!("/push/{name}")}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
}

/// Pushes one record to `name` on each face; returns (face, status, body).
async fn push_everywhere(
    http: &reqwest::Client,
    url: &str,
    name: &str,
) -> Vec<(&'static str, u16, String)> {
    let requests = [
        (
            "native",
            http.post(format!("{url}/v1/streams/{name}/records"))
                .json(&json!({"n": 1})),
        ),
        (
            "inlong",
            http.post(format!("{url}/dataproxy/message")).form(&[
                ("groupId", "g"),
                ("streamId", name),
                ("body", "{\"n\":1}"),
            ]),
        ),
        (
            "ckafka",
            http.post(format!("{url}/"))
                .header("x-tc-action", "SendMessage")
                .json(&json!({"DataHubId": format!("dh-{name}"),
                              "Message": [{"Body": "{\"n\":1}"}]})),
        ),
        (
            "rest",
            http.post(format!("{url}/topics/{name}"))
                .header("content-type", "application/vnd.kafka.json.v2+json")
                .body(json!({"records": [{"value": {"n": 1}}]}).to_string()),
        ),
        (
            "datasource",
            http.post(format!("{url}/push/{name}")).body("{\"n\":1}"),
        ),
    ];
    let mut answers = Vec::new();
    for (face, request) in requests {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        answers.push((face, status, response.text().await.unwrap()));
    }
    answers
}

async fn stored(http: &reqwest::Client, url: &str, name: &str) -> usize {
    let read: Value = http
        .get(format!("{url}/v1/streams/{name}/partitions/0/records"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    read["records"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_listed_addresses_push() {
    let node = TestNode::new(Limits::default()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(listener, node.state.clone(), async move {
        stopped.await.ok();
    }));
    let http = reqwest::Client::new();
    create(&http, &url, "local", &["127.0.0.0/8", "::1"]).await;
    create(&http, &url, "lan", &["10.0.0.0/8", "192.168.1.7"]).await;

    for (face, status, body) in push_everywhere(&http, &url, "local").await {
        assert_eq!(status, 200, "{face}: {body}");
        assert!(!body.contains("Error"), "{face}: {body}");
    }
    assert_eq!(stored(&http, &url, "local").await, 5);

    let refused = push_everywhere(&http, &url, "lan").await;
    for (face, status, body) in &refused {
        let said = body.contains("takes no records from 127.0.0.1");
        match *face {
            // InLong and CKafka answer 200 with their own error codes.
            "inlong" => assert!(body.contains(r#""code":"403""#) && said, "{body}"),
            "ckafka" => assert!(
                body.contains("AuthFailure.UnauthorizedOperation") && said,
                "{body}"
            ),
            _ => assert_eq!((*status, said), (403, true), "{face}: {body}"),
        }
    }
    assert_eq!(stored(&http, &url, "lan").await, 0);
    let shown: Value = http
        .get(format!("{url}/v1/streams/lan"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["allowed_ips"], json!(["10.0.0.0/8", "192.168.1.7"]));

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_unknown_address_is_outside_every_list() {
    let node = TestNode::new(Limits::default()).await;
    let create = Request::post("/v1/streams")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"name": "lan", "allowed_ips": ["10.0.0.0/8"]}).to_string(),
        ))
        .unwrap();
    assert_eq!(node.call(create).await.0, 201);
    let push = Request::post("/v1/streams/lan/records")
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let (status, _, body) = node.call(push).await;
    assert_eq!((status, code(&body)), (403, "forbidden"), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("address is unknown"),
        "{body}"
    );

    let bad = Request::post("/v1/streams")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"name": "typo", "allowed_ips": ["10.0.0.0/40"]}).to_string(),
        ))
        .unwrap();
    let (status, _, body) = node.call(bad).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("10.0.0.0/40"), "{body}");
}
