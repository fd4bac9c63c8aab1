//! `intake stream create --sql`: an eKuiper statement through the CLI, the
//! push path it binds serving records, and a bad statement refused by the
//! CLI itself with the position of the fault.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod support;

use std::process::{Command, Output};

use serde_json::{Value, json};
use support::Intake;

fn create(node: &Intake, sql: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_intake"))
        .args(["stream", "create", "--url", &node.url(""), "--sql", sql])
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_statement_creates_a_stream_that_takes_pushes() {
    let data = tempfile::tempdir().unwrap();
    let node = Intake::serve(data.path(), &[]);
    let out = create(
        &node,
        r#"CREATE STREAM demo (temperature float) WITH (DATASOURCE="/api/data", FORMAT="json", TYPE="httppush")"#,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Stream demo is created."
    );

    let http = reqwest::Client::new();
    let r = http
        .post(node.url("/api/data"))
        .body(r#"{"temperature": 21.5}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page: Value = http
        .get(node.url("/v1/streams/demo/partitions/0/records"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["records"][0]["value"], json!({"temperature": 21.5}));

    let out = create(
        &node,
        r#"CREATE STREAM other (t decimal) WITH (TYPE="httppush")"#,
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("at character 23: unknown type decimal"),
        "{stderr}"
    );
    let out = create(&node, r#"CREATE STREAM demo () WITH (TYPE="httppush")"#);
    assert!(!out.status.success(), "a second demo");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("demo"),
        "the node's refusal is shown"
    );
}
