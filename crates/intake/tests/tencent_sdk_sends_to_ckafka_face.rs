//! The official Tencent Cloud SDK (Python, `tencentcloud-sdk-python-common`)
//! pointed at a node sends CKafka DataHub `SendMessage` unchanged: the
//! MessageIds it gets back name the offsets the records read back from, and
//! an unknown DataHubId reaches it as the SDK's own `ResourceNotFound` error.
//! A binding with credentials checks the SDK's TC3-HMAC-SHA256 signature:
//! the right key passes, a wrong key, an unknown SecretId and a clock six
//! minutes off get their `AuthFailure.*` codes.
//! Needs `python3` with that package (`./test.sh` installs it); the test fails
//! when it is missing.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use intake_format::api::ReadResponse;
use serde_json::Value;

/// A running `intake serve`, killed on drop.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(data_dir: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_intake"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("INTAKE_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap()
            .to_owned();
        Self { child, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the SDK script and parses the one JSON line it prints.
fn sdk_send(addr: &str, datahub_id: &str, messages: &[&str]) -> Value {
    sdk_send_as(&[], addr, datahub_id, messages)
}

/// [`sdk_send`] with the script's environment (`TC_SECRET_ID`,
/// `TC_SECRET_KEY`, `TC_CLOCK_OFFSET_S`).
fn sdk_send_as(env: &[(&str, &str)], addr: &str, datahub_id: &str, messages: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tencent_sdk/send_message.py");
    let output = Command::new("python3")
        .arg(script)
        .envs(env.iter().copied())
        .args([addr, datahub_id])
        .args(messages)
        .output()
        .expect("python3 must be installed");
    assert!(
        output.status.success(),
        "the SDK script failed (is tencentcloud-sdk-python-common installed?): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn official_sdk_send_message_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let http = reqwest::Client::new();
    let created = http
        .post(format!("http://{}/v1/streams", server.addr))
        .json(&serde_json::json!({
            "name": "orders",
            "format": "binary",
            "bindings": {"datahub_id": "datahub-sdk"}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());

    let addr = server.addr.clone();
    let answer =
        tokio::task::spawn_blocking(move || sdk_send(&addr, "datahub-sdk", &["hello:k1", "world"]))
            .await
            .unwrap();
    let ids = answer["Response"]["MessageId"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"));
    assert_eq!(ids.len(), 2);
    let request_id = answer["Response"]["RequestId"].as_str().unwrap();
    assert_eq!(request_id.len(), 36, "a UUID: {request_id}");

    // A binary stream reads back values in base64: "hello", "world".
    for (id, (body, key)) in ids
        .iter()
        .zip([("aGVsbG8=", Value::from("k1")), ("d29ybGQ=", Value::Null)])
    {
        // <datahubId>:<stream>:<partition>:<offset>:<receivedMs>:<durableMs>
        let parts: Vec<&str> = id.as_str().unwrap().split(':').collect();
        assert_eq!(parts[..2], ["datahub-sdk", "orders"]);
        let (partition, offset) = (parts[2], parts[3]);
        let read: ReadResponse = http
            .get(format!(
                "http://{}/v1/streams/orders/partitions/{partition}/records?offset={offset}&limit=1",
                server.addr
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(read.records.len(), 1);
        let record = serde_json::to_value(&read.records[0]).unwrap();
        assert_eq!(record["offset"].as_u64(), Some(offset.parse().unwrap()));
        assert_eq!(record["value"], body, "{record}");
        assert_eq!(record["key"], key, "{record}");
        let received: u64 = parts[4].parse().unwrap();
        let durable: u64 = parts[5].parse().unwrap();
        assert!(received <= durable, "{id}");
    }

    let addr = server.addr.clone();
    let unknown = tokio::task::spawn_blocking(move || sdk_send(&addr, "no-such-hub", &["x"]))
        .await
        .unwrap();
    assert_eq!(unknown["sdk_error"], "ResourceNotFound", "{unknown}");
    assert!(
        unknown["message"].as_str().unwrap().contains("no-such-hub"),
        "{unknown}"
    );
}

#[tokio::test]
async fn official_sdk_signatures_are_checked_against_the_binding() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let http = reqwest::Client::new();
    let created = http
        .post(format!("http://{}/v1/streams", server.addr))
        .json(&serde_json::json!({
            "name": "signed",
            "format": "binary",
            "bindings": {"datahub_id": "datahub-signed", "datahub_credentials": [
                {"secret_id": "AKIDold", "secret_key": "old-key"},
                {"secret_id": "AKIDintaketest", "secret_key": "intake-test-secret"}
            ]}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
    let shown: Value = created.json().await.unwrap();
    assert_eq!(
        shown["bindings"]["datahub_credentials"][1],
        serde_json::json!({"secret_id": "AKIDintaketest", "secret_key": "<redacted>"}),
        "{shown}"
    );

    let send = |env: Vec<(&'static str, &'static str)>| {
        let addr = server.addr.clone();
        tokio::task::spawn_blocking(move || sdk_send_as(&env, &addr, "datahub-signed", &["x"]))
    };
    // The SDK's default test key, and the other (rotated) one.
    let signed = send(vec![]).await.unwrap();
    assert_eq!(
        signed["Response"]["MessageId"].as_array().map(Vec::len),
        Some(1),
        "{signed}"
    );
    let rotated = send(vec![
        ("TC_SECRET_ID", "AKIDold"),
        ("TC_SECRET_KEY", "old-key"),
    ])
    .await
    .unwrap();
    assert!(rotated["Response"]["MessageId"].is_array(), "{rotated}");

    for (env, code) in [
        (
            vec![("TC_SECRET_KEY", "wrong-key")],
            "AuthFailure.SignatureFailure",
        ),
        (
            vec![("TC_SECRET_ID", "AKIDnobody")],
            "AuthFailure.SecretIdNotFound",
        ),
        (
            vec![("TC_CLOCK_OFFSET_S", "-360")],
            "AuthFailure.SignatureExpire",
        ),
    ] {
        let shown = format!("{env:?}");
        let refused = send(env).await.unwrap();
        assert_eq!(refused["sdk_error"], code, "{shown}: {refused}");
    }

    // Only the two accepted requests were stored.
    let read: ReadResponse = http
        .get(format!(
            "http://{}/v1/streams/signed/partitions/0/records?offset=0&limit=10",
            server.addr
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read.records.len(), 2);
}
