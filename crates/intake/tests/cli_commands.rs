//! Every client command of the CLI against a real node: its exit status,
//! what it prints, and what the node stored. `stream create|list|show|
//! pause|resume|delete`, `push` (batches, stdin, and the stop at the first
//! refused batch), `read`, `tail`, and `token create|list|revoke`.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::Intake;

/// `intake ARGS --url NODE`, with `stdin` written to it, and `token` as
/// `INTAKE_TOKEN`.
fn intake(node: &Intake, args: &[&str], stdin: &str, token: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_intake"));
    command
        .args(args)
        .args(["--url", &node.url("")])
        .env_remove("INTAKE_TOKEN")
        .env_remove("INTAKE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(token) = token {
        command.env("INTAKE_TOKEN", token);
    }
    let mut child = command.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the command succeeded; its stdout.
fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Asserts the command failed with exit status 1; its stderr.
fn fails(out: Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected a failure\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    stderr(&out)
}

async fn get(node: &Intake, path: &str) -> (u16, Value) {
    let r = reqwest::get(node.url(path)).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The values stored in `stream`'s partition `p`, in offset order.
async fn values(node: &Intake, stream: &str, p: u32) -> Vec<Value> {
    let (status, page) = get(
        node,
        &format!("/v1/streams/{stream}/partitions/{p}/records"),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_commands_manage_streams() {
    let data = tempfile::tempdir().unwrap();
    let node = Intake::serve(data.path(), &[]);

    // create NAME with flags
    let created: Value = serde_json::from_str(&ok(intake(
        &node,
        &[
            "stream",
            "create",
            "demo",
            "--partitions",
            "2",
            "--fsync",
            "interval",
            "--key-field",
            "id",
            "--timestamp-field",
            "ts",
        ],
        "",
        None,
    )))
    .unwrap();
    assert_eq!(created["name"], "demo");
    let (status, stored) = get(&node, "/v1/streams/demo").await;
    assert_eq!(status, 200);
    assert_eq!(stored["partitions"], 2);
    assert_eq!(stored["fsync"], "interval");
    assert_eq!(stored["key_field"], "id");
    assert_eq!(stored["timestamp_field"], "ts");

    // --definition from a file, the flags overriding it; and from stdin
    let file = data.path().join("definition.json");
    std::fs::write(
        &file,
        json!({"name": "ignored", "partitions": 1, "format": "ndjson", "retention_ms": 60000})
            .to_string(),
    )
    .unwrap();
    ok(intake(
        &node,
        &[
            "stream",
            "create",
            "fromfile",
            "--definition",
            file.to_str().unwrap(),
            "--partitions",
            "3",
        ],
        "",
        None,
    ));
    let (_, stored) = get(&node, "/v1/streams/fromfile").await;
    assert_eq!(
        (
            &stored["partitions"],
            &stored["format"],
            &stored["retention_ms"]
        ),
        (&json!(3), &json!("ndjson"), &json!(60000)),
        "{stored}"
    );
    ok(intake(
        &node,
        &["stream", "create", "fromstdin", "--definition", "-"],
        r#"{"format": "binary"}"#,
        None,
    ));
    assert_eq!(
        get(&node, "/v1/streams/fromstdin").await.1["format"],
        "binary"
    );

    // the node's refusals reach the user, with a failing exit status
    let err = fails(intake(&node, &["stream", "create", "demo"], "", None));
    assert!(
        err.contains("stream_exists") && err.contains("\"demo\" already exists"),
        "{err}"
    );
    let err = fails(intake(
        &node,
        &["stream", "create", "bad", "--definition", "-"],
        r#"{"partitions": 0}"#,
        None,
    ));
    assert!(err.contains("invalid_definition"), "{err}");
    let err = fails(intake(
        &node,
        &["stream", "create", "bad", "--definition", "-"],
        "[1]",
        None,
    ));
    assert!(
        err.contains("the definition must be a JSON object"),
        "{err}"
    );

    // list: a header, then one line per stream with its figures
    ok(intake(
        &node,
        &["push", "demo"],
        "{\"id\": 1}\n{\"id\": 2}\n",
        None,
    ));
    let list = ok(intake(&node, &["stream", "list"], "", None));
    let lines: Vec<Vec<&str>> = list
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["NAME", "PARTITIONS", "STATE", "RECORDS"],
        "{list}"
    );
    assert!(lines.contains(&vec!["demo", "2", "active", "2"]), "{list}");
    assert!(
        lines.contains(&vec!["fromfile", "3", "active", "0"]),
        "{list}"
    );
    assert_eq!(lines.len(), 4, "{list}");

    // show: the definition and per-partition status
    let shown: Value =
        serde_json::from_str(&ok(intake(&node, &["stream", "show", "demo"], "", None))).unwrap();
    assert_eq!(shown["name"], "demo");
    let next: Vec<u64> = shown["status"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["next_offset"].as_u64().unwrap())
        .collect();
    assert_eq!(next.iter().sum::<u64>(), 2, "{shown}");

    // pause and resume
    let out = intake(&node, &["stream", "pause", "demo"], "", None);
    assert!(
        stderr(&out).contains("stream demo is paused"),
        "{}",
        stderr(&out)
    );
    ok(out);
    assert_eq!(get(&node, "/v1/streams/demo").await.1["state"], "paused");
    let err = fails(intake(&node, &["push", "demo"], "{\"id\": 3}\n", None));
    assert!(err.contains("stream_paused"), "{err}");
    let out = intake(&node, &["stream", "resume", "demo"], "", None);
    assert!(
        stderr(&out).contains("stream demo is active"),
        "{}",
        stderr(&out)
    );
    ok(out);
    ok(intake(&node, &["push", "demo"], "{\"id\": 3}\n", None));

    // delete
    let out = intake(&node, &["stream", "delete", "demo"], "", None);
    assert!(
        stderr(&out).contains("deleted stream demo"),
        "{}",
        stderr(&out)
    );
    ok(out);
    assert_eq!(get(&node, "/v1/streams/demo").await.0, 404);
    let err = fails(intake(&node, &["stream", "show", "demo"], "", None));
    assert!(
        err.contains("stream_not_found") && err.contains("\"demo\" does not exist"),
        "{err}"
    );
    let err = fails(intake(&node, &["stream", "delete", "demo"], "", None));
    assert!(err.contains("stream_not_found"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn push_sends_batches_and_stops_at_the_first_refused_one() {
    let data = tempfile::tempdir().unwrap();
    let node = Intake::serve(data.path(), &[]);
    let http = reqwest::Client::new();
    support::create_stream(
        &http,
        &node,
        json!({"name": "strict", "strict_validation": true,
               "schema": [{"name": "n", "type": "bigint"}]}),
    )
    .await;

    // From a file, in batches of 2 records: 5 records in 3 requests.
    let file = data.path().join("records.ndjson");
    std::fs::write(
        &file,
        "{\"n\": 1}\n{\"n\": 2}\n\n{\"n\": 3}\n{\"n\": 4}\n{\"n\": 5}\n",
    )
    .unwrap();
    let out = intake(
        &node,
        &[
            "push",
            "strict",
            file.to_str().unwrap(),
            "--batch-records",
            "2",
        ],
        "",
        None,
    );
    assert!(
        stderr(&out).contains("pushed 5 records in 3 requests"),
        "{}",
        stderr(&out)
    );
    ok(out);
    let stored: Vec<Value> = (1..=5).map(|n| json!({"n": n})).collect();
    assert_eq!(values(&node, "strict", 0).await, stored);
    // One producer, one sequence per batch: a retried batch is stored once.
    let view: Value = http
        .get(node.url("/v1/streams/strict"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["dedup"]["producers"], 1, "{view}");
    assert_eq!(view["dedup"]["keys"], 3, "{view}");

    // --batch-bytes cuts batches too: each ~9-byte line alone.
    let out = intake(
        &node,
        &["push", "strict", "-", "--batch-bytes", "12"],
        "{\"n\": 6}\n{\"n\": 7}\n",
        None,
    );
    assert!(
        stderr(&out).contains("pushed 2 records in 2 requests"),
        "{}",
        stderr(&out)
    );
    ok(out);

    // The second batch holds a bad record: the first batch is stored, the
    // second refused whole, the third never sent.
    let lines = "{\"n\": 8}\n{\"n\": 9}\n{\"n\": 10}\n{\"n\": \"ten\"}\n{\"n\": 11}\n";
    let err = fails(intake(
        &node,
        &["push", "strict", "--batch-records", "2"],
        lines,
        None,
    ));
    assert!(
        err.contains("2 records were acknowledged before this batch failed"),
        "{err}"
    );
    assert!(
        err.contains("invalid_record") && err.contains("record 1: field \"n\""),
        "the node's reason is shown: {err}"
    );
    let stored: Vec<Value> = (1..=9).map(|n| json!({"n": n})).collect();
    assert_eq!(values(&node, "strict", 0).await, stored);

    // A stream that does not exist, an unreadable file.
    let err = fails(intake(&node, &["push", "nowhere"], "{}\n", None));
    assert!(err.contains("stream_not_found"), "{err}");
    let err = fails(intake(
        &node,
        &["push", "strict", "/nonexistent/file"],
        "",
        None,
    ));
    assert!(err.contains("cannot open /nonexistent/file"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn read_and_tail_print_records() {
    let data = tempfile::tempdir().unwrap();
    let node = Intake::serve(data.path(), &[]);
    let http = reqwest::Client::new();
    support::create_stream(
        &http,
        &node,
        json!({"name": "s", "partitions": 2, "key_field": "k"}),
    )
    .await;
    let first: String = (0..6)
        .map(|i| format!("{{\"k\": \"a\", \"i\": {i}}}\n"))
        .collect();
    ok(intake(&node, &["push", "s"], &first, None));
    let partition_of_a = if values(&node, "s", 0).await.len() == 6 {
        0
    } else {
        1
    };
    assert_eq!(
        values(&node, "s", partition_of_a).await.len(),
        6,
        "one partition holds key a"
    );

    // read: one JSON record per line, the next offset on stderr
    let out = intake(
        &node,
        &[
            "read",
            "s",
            "--partition",
            &partition_of_a.to_string(),
            "--offset",
            "2",
            "--limit",
            "3",
        ],
        "",
        None,
    );
    assert!(stderr(&out).contains("next offset: 5"), "{}", stderr(&out));
    let records: Vec<Value> = ok(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let offsets: Vec<u64> = records
        .iter()
        .map(|r| r["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [2, 3, 4]);
    assert_eq!(records[0]["value"], json!({"k": "a", "i": 2}));
    assert_eq!(records[0]["key"], "a");
    assert_eq!(records[0]["partition"], partition_of_a);
    let err = fails(intake(&node, &["read", "s", "--partition", "7"], "", None));
    assert!(err.contains("partition_not_found"), "{err}");

    // tail: from the beginning of one partition, then live
    let mut tail = Command::new(env!("CARGO_BIN_EXE_intake"))
        .args(["tail", "s", "--from", "beginning", "--partition"])
        .arg(partition_of_a.to_string())
        .args(["--url", &node.url("")])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::unbounded_channel();
    let out = tail.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            if lines_tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let mut next_line = async || -> Value {
        let line = tokio::time::timeout(Duration::from_secs(10), lines_rx.recv())
            .await
            .expect("tail printed nothing within 10 s")
            .expect("tail ended");
        serde_json::from_str(&line).unwrap()
    };
    for i in 0..6 {
        let record = next_line().await;
        assert_eq!(record["value"], json!({"k": "a", "i": i}));
        assert_eq!(record["offset"], i);
    }
    ok(intake(
        &node,
        &["push", "s"],
        "{\"k\": \"a\", \"i\": 6}\n",
        None,
    ));
    let live = next_line().await;
    assert_eq!(
        (live["offset"].clone(), live["value"]["i"].clone()),
        (json!(6), json!(6))
    );
    tail.kill().unwrap();
    tail.wait().unwrap();

    // tail --from end sees only what comes after it started
    let mut tail = Command::new(env!("CARGO_BIN_EXE_intake"))
        .args(["tail", "s", "--url", &node.url("")])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(tail.stdout.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        line
    });
    // Pushed until the tail, connected at some moment, sees one.
    let mut i = 100;
    while !reader.is_finished() {
        ok(intake(
            &node,
            &["push", "s"],
            &format!("{{\"k\": \"b\", \"i\": {i}}}\n"),
            None,
        ));
        i += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(i < 150, "tail --from end printed nothing");
    }
    let first_seen: Value = serde_json::from_str(&reader.join().unwrap()).unwrap();
    assert_eq!(
        first_seen["value"]["k"], "b",
        "nothing from before the tail: {first_seen}"
    );
    tail.kill().unwrap();
    tail.wait().unwrap();
    let err = fails(intake(&node, &["tail", "nowhere"], "", None));
    assert!(err.contains("stream_not_found"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn token_commands_create_list_and_revoke() {
    const ADMIN: &str = "cli-test-admin-token-0123456789";
    let data = tempfile::tempdir().unwrap();
    let node = Intake::serve_with_env(
        data.path(),
        &[],
        &[
            ("INTAKE_AUTH", "tokens"),
            ("INTAKE_ADMIN_TOKEN", ADMIN),
            // The client commands' variables, exported in the same shell
            // as the docs show: not settings of the node.
            ("INTAKE_TOKEN", ADMIN),
            ("INTAKE_URL", "http://127.0.0.1:9"),
        ],
    );
    ok(intake(
        &node,
        &["stream", "create", "orders"],
        "",
        Some(ADMIN),
    ));

    // Without a token every command is refused, saying why.
    let err = fails(intake(&node, &["stream", "list"], "", None));
    assert!(err.contains("unauthorized (401 Unauthorized)"), "{err}");

    let created: Value = serde_json::from_str(&ok(intake(
        &node,
        &[
            "token",
            "create",
            "devices",
            "--scope",
            "write:orders",
            "--scope",
            "read:orders",
            "--expires-in",
            "30d",
        ],
        "",
        Some(ADMIN),
    )))
    .unwrap();
    let (id, token) = (
        created["id"].as_str().unwrap().to_owned(),
        created["token"].as_str().unwrap().to_owned(),
    );
    assert!(token.starts_with(&format!("itk_{id}_")), "{created}");
    assert_eq!(created["scopes"], json!(["write:orders", "read:orders"]));
    let expires_in =
        created["expires_at_ms"].as_i64().unwrap() - created["created_at_ms"].as_i64().unwrap();
    assert_eq!(expires_in, 30 * 24 * 3600 * 1000);
    ok(intake(
        &node,
        &["token", "create", "reader", "--scope", "read:*"],
        "",
        Some(ADMIN),
    ));

    // The new token pushes and reads its stream, and nothing else.
    ok(intake(
        &node,
        &["push", "orders"],
        "{\"id\": 1}\n",
        Some(&token),
    ));
    let out = intake(&node, &["read", "orders"], "", Some(&token));
    assert_eq!(ok(out).lines().count(), 1);
    let err = fails(intake(&node, &["stream", "list"], "", Some(&token)));
    assert!(err.contains("forbidden (403 Forbidden)"), "{err}");

    // list: no secrets, one line per token
    let list = ok(intake(&node, &["token", "list"], "", Some(ADMIN)));
    assert!(!list.contains(&token), "secrets are never listed: {list}");
    let lines: Vec<Vec<&str>> = list
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["ID", "NAME", "EXPIRES_AT_MS", "SCOPES"],
        "{list}"
    );
    let devices = lines
        .iter()
        .find(|l| l[0] == id)
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(
        devices[1..],
        [
            "devices",
            &created["expires_at_ms"].to_string(),
            "write:orders",
            "read:orders"
        ]
    );
    let reader = lines
        .iter()
        .find(|l| l[1] == "reader")
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(reader[2..], ["never", "read:*"]);
    assert_eq!(lines.len(), 3, "{list}");

    // revoke: refused at once, and gone from the list
    let out = intake(&node, &["token", "revoke", &id], "", Some(ADMIN));
    assert!(
        stderr(&out).contains(&format!("token {id} revoked")),
        "{}",
        stderr(&out)
    );
    ok(out);
    let err = fails(intake(
        &node,
        &["push", "orders"],
        "{\"id\": 2}\n",
        Some(&token),
    ));
    assert!(err.contains("unauthorized"), "{err}");
    assert!(!ok(intake(&node, &["token", "list"], "", Some(ADMIN))).contains(&id));
    let err = fails(intake(&node, &["token", "revoke", &id], "", Some(ADMIN)));
    assert!(err.contains("token_not_found"), "{err}");
    let err = fails(intake(
        &node,
        &["token", "create", "x", "--scope", "bogus"],
        "",
        Some(ADMIN),
    ));
    assert!(err.contains("bogus"), "the refused scope is named: {err}");
}
