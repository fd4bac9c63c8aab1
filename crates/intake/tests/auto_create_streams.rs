//! `--auto-create-streams` on every face: the first push to a name or
//! binding no stream has creates the stream, and its records are stored.
//! InLong's seed curl line makes `{groupId}.{streamId}`, bound to the pair,
//! `binary`; a CKafka DataHubId makes a `binary` stream bound to it; a REST
//! Proxy topic a stream of its embedding's format; a native push a
//! schemaless JSON stream. Off by default: the same requests are refused
//! by a node started without the flag.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use support::Intake;

/// The InLong seed's curl line (`curl -X POST -d '...'`): a form body.
const SEED_REPORT: &str = "groupId=give_your_group_id&streamId=give_your_stream_id&dt=data_time&body=give_your_data_body&cnt=1";

async fn post(
    http: &reqwest::Client,
    url: String,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    let mut request = http.post(url).body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn get(http: &reqwest::Client, url: String) -> (u16, Value) {
    let r = http.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// One push on each face to a stream that does not exist.
async fn push_on_every_face(http: &reqwest::Client, node: &Intake) -> [(u16, Value); 5] {
    [
        post(http, node.url("/dataproxy/message"), &[FORM], SEED_REPORT).await,
        post(
            http,
            node.url("/"),
            &[
                ("X-TC-Action", "SendMessage"),
                ("content-type", "application/json"),
            ],
            r#"{"DataHubId": "datahub-auto", "Message": [{"Body": "hello", "Key": "k1"}]}"#,
        )
        .await,
        post(
            http,
            node.url("/topics/rest-json"),
            &[("content-type", "application/vnd.kafka.json.v2+json")],
            r#"{"records": [{"value": {"temp": 21.5}}]}"#,
        )
        .await,
        post(
            http,
            node.url("/topics/rest-binary"),
            &[("content-type", "application/vnd.kafka.binary.v2+json")],
            &json!({"records": [{"value": BASE64.encode(b"\x00raw\xff")}]}).to_string(),
        )
        .await,
        post(
            http,
            node.url("/v1/streams/native-auto/records"),
            &[("content-type", "application/json")],
            r#"{"temp": 22.5}"#,
        )
        .await,
    ]
}

/// The value of the first record of `stream`, as the native API shows it.
async fn first_value(http: &reqwest::Client, node: &Intake, stream: &str) -> Value {
    let (status, page) = get(
        http,
        node.url(&format!("/v1/streams/{stream}/partitions/0/records")),
    )
    .await;
    assert_eq!(status, 200, "{stream}: {page}");
    page["records"][0]["value"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_face_creates_its_stream() {
    let data = tempfile::tempdir().unwrap();
    let node = Intake::serve(data.path(), &["--auto-create-streams"]);
    let http = reqwest::Client::new();
    let [inlong, ckafka, rest_json, rest_binary, native] = push_on_every_face(&http, &node).await;

    assert_eq!(inlong, (200, json!({"code": "0", "msg": "Ok"})));
    let (_, def) = get(
        &http,
        node.url("/v1/streams/give_your_group_id.give_your_stream_id"),
    )
    .await;
    assert_eq!(def["format"], "binary");
    assert_eq!(
        def["bindings"]["inlong"],
        json!([{"group_id": "give_your_group_id", "stream_id": "give_your_stream_id"}])
    );
    assert_eq!(
        first_value(&http, &node, "give_your_group_id.give_your_stream_id").await,
        BASE64.encode("give_your_data_body")
    );

    assert_eq!(ckafka.0, 200);
    let message_id = ckafka.1["Response"]["MessageId"][0]
        .as_str()
        .unwrap_or_else(|| panic!("{}", ckafka.1));
    assert!(
        message_id.starts_with("datahub-auto:datahub-auto:0:0:"),
        "{message_id}"
    );
    let (_, def) = get(&http, node.url("/v1/streams/datahub-auto")).await;
    assert_eq!(
        (&def["format"], &def["bindings"]["datahub_id"]),
        (&json!("binary"), &json!("datahub-auto"))
    );
    assert_eq!(
        first_value(&http, &node, "datahub-auto").await,
        BASE64.encode("hello")
    );

    assert_eq!(rest_json.0, 200, "{}", rest_json.1);
    assert_eq!(rest_json.1["offsets"][0]["offset"], 0);
    assert_eq!(
        get(&http, node.url("/v1/streams/rest-json")).await.1["format"],
        "json"
    );
    assert_eq!(
        first_value(&http, &node, "rest-json").await,
        json!({"temp": 21.5})
    );
    assert_eq!(rest_binary.0, 200, "{}", rest_binary.1);
    assert_eq!(
        get(&http, node.url("/v1/streams/rest-binary")).await.1["format"],
        "binary"
    );
    assert_eq!(
        first_value(&http, &node, "rest-binary").await,
        BASE64.encode(b"\x00raw\xff")
    );

    assert_eq!(native.0, 200, "{}", native.1);
    let (_, def) = get(&http, node.url("/v1/streams/native-auto")).await;
    assert_eq!(
        (&def["format"], &def["schema"]),
        (&json!("json"), &Value::Null)
    );
    assert_eq!(
        first_value(&http, &node, "native-auto").await,
        json!({"temp": 22.5})
    );

    // A second report of the pair goes to the stream made for it.
    assert_eq!(
        post(&http, node.url("/dataproxy/message"), &[FORM], SEED_REPORT)
            .await
            .1["code"],
        "0"
    );
    let (_, def) = get(
        &http,
        node.url("/v1/streams/give_your_group_id.give_your_stream_id"),
    )
    .await;
    assert_eq!(def["status"][0]["next_offset"], 2);
    let (_, list) = get(&http, node.url("/v1/streams")).await;
    assert_eq!(list["streams"].as_array().unwrap().len(), 5, "{list}");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_first_reports_make_one_stream() {
    let data = tempfile::tempdir().unwrap();
    let node = Intake::serve(data.path(), &["--auto-create-streams"]);
    let http = reqwest::Client::new();
    let reports = (0..16).map(|i| {
        let (http, url) = (http.clone(), node.url("/dataproxy/message"));
        async move {
            post(
                &http,
                url,
                &[FORM],
                &format!("groupId=g&streamId=s&body=r{i}"),
            )
            .await
        }
    });
    for answer in futures::future::join_all(reports).await {
        assert_eq!(answer, (200, json!({"code": "0", "msg": "Ok"})));
    }
    let (_, list) = get(&http, node.url("/v1/streams")).await;
    assert_eq!(list["streams"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["streams"][0]["status"][0]["next_offset"], 16);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_that_cannot_be_made_is_refused_with_the_reason() {
    let data = tempfile::tempdir().unwrap();
    let node = Intake::serve(data.path(), &["--auto-create-streams"]);
    let http = reqwest::Client::new();
    // Taken by a stream without the binding: never rebound silently.
    support::create_stream(&http, &node, json!({"name": "g2.s2"})).await;
    support::create_stream(&http, &node, json!({"name": "datahub-taken"})).await;
    let (status, answer) = post(
        &http,
        node.url("/dataproxy/message"),
        &[FORM],
        "groupId=g2&streamId=s2&body=x",
    )
    .await;
    assert_eq!((status, &answer["code"]), (200, &json!("113")));
    let msg = answer["msg"].as_str().unwrap();
    assert!(
        msg.contains("auto_create_streams cannot make stream \"g2.s2\"")
            && msg.contains("exists without this binding"),
        "{msg}"
    );
    let (_, answer) = post(
        &http,
        node.url("/"),
        &[
            ("X-TC-Action", "SendMessage"),
            ("content-type", "application/json"),
        ],
        r#"{"DataHubId": "datahub-taken", "Message": [{"Body": "x"}]}"#,
    )
    .await;
    assert_eq!(
        answer["Response"]["Error"]["Code"], "ResourceNotFound",
        "{answer}"
    );
    let msg = answer["Response"]["Error"]["Message"].as_str().unwrap();
    assert!(msg.contains("exists without this binding"), "{msg}");
    // A pair that makes no valid stream name.
    let (_, answer) = post(
        &http,
        node.url("/dataproxy/message"),
        &[FORM],
        "groupId=g%2F1&streamId=s&body=x",
    )
    .await;
    assert_eq!(answer["code"], "113");
    let msg = answer["msg"].as_str().unwrap();
    assert!(
        msg.contains("cannot make stream \"g/1.s\"") && msg.contains("name"),
        "{msg}"
    );
    let (_, list) = get(&http, node.url("/v1/streams")).await;
    assert_eq!(
        list["streams"].as_array().unwrap().len(),
        2,
        "nothing made: {list}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn off_by_default() {
    let data = tempfile::tempdir().unwrap();
    let node = Intake::serve(data.path(), &[]);
    let http = reqwest::Client::new();
    let [inlong, ckafka, rest_json, rest_binary, native] = push_on_every_face(&http, &node).await;
    assert_eq!(inlong.1["code"], "113");
    assert_eq!(ckafka.1["Response"]["Error"]["Code"], "ResourceNotFound");
    assert_eq!(
        (rest_json.0, &rest_json.1["error_code"]),
        (404, &json!(40401))
    );
    assert_eq!(
        (rest_binary.0, &rest_binary.1["error_code"]),
        (404, &json!(40401))
    );
    assert_eq!(
        (native.0, &native.1["error"]["code"]),
        (404, &json!("stream_not_found"))
    );
    let (_, list) = get(&http, node.url("/v1/streams")).await;
    assert_eq!(list["streams"], json!([]));
}
