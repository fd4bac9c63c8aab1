//! `auth = "tokens"` over the router: tokens made with the admin token,
//! scopes enforced on the native API, the REST Proxy, InLong (token in the
//! query), eKuiper push paths (X-Intake-Token) and CKafka (token, or a TC3
//! signature checked by the face); 401 for a
//! missing, wrong, revoked or expired token, 403 for a missing scope; open
//! paths stay open; nothing is written by a refused request.
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

const ADMIN: &str = "root-token-for-tests-only";

async fn node() -> TestNode {
    let node = TestNode::new(Limits::default()).await;
    TestNode {
        state: node
            .state
            .clone()
            .with_auth(AuthMode::Tokens, Some(ADMIN.into())),
        ..node
    }
}

async fn call(
    node: &TestNode,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = if body.is_null() {
        Body::empty()
    } else {
        Body::from(body.to_string())
    };
    let (status, _, body) = node.call(req.body(body).unwrap()).await;
    (status, body)
}

async fn make_token(node: &TestNode, scopes: Value, expires_in_s: Option<u64>) -> String {
    let mut body = json!({"name": "t", "scopes": scopes});
    if let Some(s) = expires_in_s {
        body["expires_in_s"] = s.into();
    }
    let (status, created) = call(node, "POST", "/v1/tokens", Some(ADMIN), body).await;
    assert_eq!(status, 201, "{created}");
    assert!(created["id"].is_string() && created["scopes"].is_array());
    created["token"].as_str().unwrap().to_owned()
}

async fn stored(node: &TestNode, stream: &str) -> usize {
    let (_, body) = call(
        node,
        "GET",
        &format!("/v1/streams/{stream}/partitions/0/records"),
        Some(ADMIN),
        Value::Null,
    )
    .await;
    body["records"].as_array().unwrap().len()
}

#[tokio::test]
async fn scopes_are_enforced_on_every_face() {
    let node = node().await;
    let (status, body) = call(
        &node,
        "POST",
        "/v1/streams",
        None,
        json!({"name": "orders"}),
    )
    .await;
    assert_eq!((status, code(&body)), (401, "unauthorized"), "{body}");
    let (status, _) = call(
        &node,
        "POST",
        "/v1/streams",
        Some(ADMIN),
        json!({"name": "orders",
               "bindings": {"inlong": [{"group_id": "g", "stream_id": "s"}],
                            "datahub_id": "dh", "datasource": {"path": "/api/data"}}}),
    )
    .await;
    assert_eq!(status, 201);
    call(
        &node,
        "POST",
        "/v1/streams",
        Some(ADMIN),
        json!({"name": "other"}),
    )
    .await;

    let writer = make_token(&node, json!(["write:orders"]), None).await;
    let reader = make_token(&node, json!(["read:ord*"]), None).await;
    let push = "/v1/streams/orders/records";

    // Native: the writer writes, the reader reads, neither manages.
    assert_eq!(
        call(&node, "POST", push, Some(&writer), json!({"n": 1}))
            .await
            .0,
        200
    );
    let (status, body) = call(&node, "POST", push, Some(&reader), json!({"n": 2})).await;
    assert_eq!((status, code(&body)), (403, "forbidden"), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("write:orders")
    );
    let (status, _) = call(
        &node,
        "POST",
        "/v1/streams/other/records",
        Some(&writer),
        json!({}),
    )
    .await;
    assert_eq!(status, 403, "write:orders does not reach other");
    let read = "/v1/streams/orders/partitions/0/records";
    assert_eq!(
        call(&node, "GET", read, Some(&reader), Value::Null).await.0,
        200
    );
    assert_eq!(
        call(&node, "GET", read, Some(&writer), Value::Null).await.0,
        403
    );
    assert_eq!(
        call(
            &node,
            "DELETE",
            "/v1/streams/orders",
            Some(&writer),
            Value::Null
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(&node, "GET", "/v1/overview", Some(&reader), Value::Null)
            .await
            .0,
        403
    );
    let (status, _) = call(
        &node,
        "POST",
        push,
        Some("itk_0000000000000000_00000000000000000000000000000000"),
        json!({}),
    )
    .await;
    assert_eq!(status, 401, "unknown token");
    let (status, body) = call(&node, "POST", push, Some("nonsense"), json!({})).await;
    assert!(
        status == 401
            && body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("malformed"),
        "{body}"
    );

    // REST Proxy.
    let produce = json!({"records": [{"value": {"n": 3}}]});
    let rest = |token: Option<String>| {
        let mut req = Request::post("/topics/orders")
            .header("content-type", "application/vnd.kafka.json.v2+json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        req.body(Body::from(produce.to_string())).unwrap()
    };
    assert_eq!(node.call(rest(Some(writer.clone()))).await.0, 200);
    assert_eq!(node.call(rest(Some(reader.clone()))).await.0, 403);
    assert_eq!(node.call(rest(None)).await.0, 401);

    // InLong, with the token in the query string.
    let inlong = |token: &str| {
        Request::post(format!("/dataproxy/message?token={token}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(
                "groupId=g&streamId=s&body=%7B%22n%22%3A4%7D&cnt=1",
            ))
            .unwrap()
    };
    let (status, _, body) = node.call(inlong(&writer)).await;
    assert_eq!((status, body["code"].clone()), (200, json!("0")), "{body}");
    let (_, _, body) = node.call(inlong(&reader)).await;
    assert_eq!(body["code"], "403", "{body}");

    // eKuiper push path, with X-Intake-Token.
    let ekuiper = |token: &str| {
        Request::post("/api/data")
            .header("x-intake-token", token)
            .body(Body::from(r#"{"n": 5}"#))
            .unwrap()
    };
    assert_eq!(node.call(ekuiper(&writer)).await.0, 200);
    assert_eq!(node.call(ekuiper(&reader)).await.0, 403);

    // CKafka, with X-Intake-Token.
    let ckafka = |token: &str| {
        Request::post("/")
            .header("x-tc-action", "SendMessage")
            .header("x-intake-token", token)
            .body(Body::from(
                r#"{"DataHubId": "dh", "Message": [{"Body": "{\"n\": 6}"}]}"#,
            ))
            .unwrap()
    };
    let (_, _, body) = node.call(ckafka(&writer)).await;
    assert!(body["Response"]["MessageId"].is_array(), "{body}");
    let (_, _, body) = node.call(ckafka(&reader)).await;
    assert_eq!(
        body["Response"]["Error"]["Code"], "AuthFailure.UnauthorizedOperation",
        "{body}"
    );

    // A TC3 signature instead of a token reaches the face, which finds no
    // credentials on the binding for it.
    let signed = Request::post("/")
        .header("x-tc-action", "SendMessage")
        .header(
            "authorization",
            "TC3-HMAC-SHA256 Credential=AKIDx/2026-12-05/ckafka/tc3_request, SignedHeaders=content-type;host, Signature=00",
        )
        .body(Body::from(
            r#"{"DataHubId": "dh", "Message": [{"Body": "{\"n\": 7}"}]}"#,
        ))
        .unwrap();
    let (_, _, body) = node.call(signed).await;
    assert_eq!(
        body["Response"]["Error"]["Code"], "AuthFailure.SecretIdNotFound",
        "{body}"
    );

    // Open paths.
    for path in ["/healthz", "/metrics", "/", "/dataproxy/heartbeat"] {
        let (status, _) = call(&node, "GET", path, None, Value::Null).await;
        assert_eq!(status, 200, "{path}");
    }
    assert_eq!(
        stored(&node, "orders").await,
        5,
        "one record per accepted push"
    );
}

#[tokio::test]
async fn tokens_are_listed_revoked_and_expire() {
    let node = node().await;
    call(
        &node,
        "POST",
        "/v1/streams",
        Some(ADMIN),
        json!({"name": "s"}),
    )
    .await;
    let token = make_token(&node, json!(["write:s"]), None).await;
    let short = make_token(&node, json!(["write:s"]), Some(0)).await;
    let push = "/v1/streams/s/records";
    assert_eq!(
        call(&node, "POST", push, Some(&token), json!({})).await.0,
        200
    );
    let (status, body) = call(&node, "POST", push, Some(&short), json!({})).await;
    assert!(
        status == 401
            && body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("expired"),
        "{body}"
    );

    let (status, list) = call(&node, "GET", "/v1/tokens", Some(ADMIN), Value::Null).await;
    assert_eq!(status, 200);
    let tokens = list["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2);
    assert!(
        !list.to_string().contains(token.rsplit('_').next().unwrap()),
        "secrets are never listed"
    );
    let id = token.split('_').nth(1).unwrap();
    assert_eq!(
        call(
            &node,
            "DELETE",
            &format!("/v1/tokens/{id}"),
            Some(ADMIN),
            Value::Null
        )
        .await
        .0,
        204
    );
    assert_eq!(
        call(&node, "POST", push, Some(&token), json!({})).await.0,
        401,
        "revoked"
    );
    let (status, body) = call(
        &node,
        "DELETE",
        &format!("/v1/tokens/{id}"),
        Some(ADMIN),
        Value::Null,
    )
    .await;
    assert_eq!((status, code(&body)), (404, "token_not_found"));

    for (scopes, fault) in [
        (json!([]), "at least one scope"),
        (json!(["root"]), "not a scope"),
    ] {
        let (status, body) = call(
            &node,
            "POST",
            "/v1/tokens",
            Some(ADMIN),
            json!({"name": "x", "scopes": scopes}),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert!(body.to_string().contains(fault), "{body}");
    }
    assert_eq!(stored(&node, "s").await, 1);
}

#[tokio::test]
async fn each_token_has_its_own_request_rate() {
    let limits = Limits {
        token_requests_per_second: Some(3),
        ..Limits::default()
    };
    let node = TestNode::new(limits).await;
    let node = TestNode {
        state: node
            .state
            .clone()
            .with_auth(AuthMode::Tokens, Some(ADMIN.into())),
        ..node
    };
    let (status, _) = call(
        &node,
        "POST",
        "/v1/streams",
        Some(ADMIN),
        json!({"name": "s"}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, created) = call(
        &node,
        "POST",
        "/v1/tokens",
        Some(ADMIN),
        json!({"name": "w", "scopes": ["write:s"]}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let writer = created["token"].as_str().unwrap().to_owned();
    let push = |token: String| {
        Request::post("/v1/streams/s/records")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::from("{}"))
            .unwrap()
    };
    // A second's burst passes, the next waits; the admin's bucket (two
    // requests so far, a third below) is its own.
    for _ in 0..3 {
        assert_eq!(node.call(push(writer.clone())).await.0, 200);
    }
    let (status, headers, body) = node.call(push(writer.clone())).await;
    assert_eq!((status, code(&body)), (429, "rate_limited"), "{body}");
    assert_eq!(headers["retry-after"], "1");
    let id = created["id"].as_str().unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("token {id:?} is limited to 3 requests per second")),
        "{body}"
    );
    assert_eq!(stored(&node, "s").await, 3);
}
