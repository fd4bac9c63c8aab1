//! `intake serve --log-format json`: every log line on stderr is one JSON
//! object with a level, a target and the event's fields; with debug
//! logging, a request's events carry its span.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

/// Starts `intake serve --log-format json` with the log filter `filter`,
/// runs `during` with the node's address, stops the node with SIGTERM and
/// returns its log events.
fn json_logs_of(filter: &str, during: impl FnOnce(&str)) -> (Vec<serde_json::Value>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_intake"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("INTAKE_LOG", filter)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .trim()
        .to_owned();
    during(&addr);
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(child.wait().unwrap().success(), "{stderr}");
    let events = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?} is not JSON: {e}")))
        .collect();
    (events, stderr)
}

#[test]
fn every_log_line_is_a_json_object() {
    let (events, stderr) = json_logs_of("info", |_| {});
    let listening = events
        .iter()
        .find(|e| e["fields"]["message"] == "listening")
        .unwrap_or_else(|| panic!("no listening event in {stderr}"));
    assert_eq!(listening["level"], "INFO");
    assert!(
        listening["fields"]["addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert!(listening["timestamp"].is_string());
    assert!(
        events.iter().any(|e| e["fields"]["message"] == "stopped"),
        "{stderr}"
    );
}

/// With debug logging of the server and of `tower_http`, a request's
/// events carry its span (method and path); at info, requests log nothing.
#[test]
fn debug_logging_puts_each_request_in_a_span() {
    let get_healthz = |addr: &str| {
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.write_all(b"GET /healthz HTTP/1.1\r\nhost: intake\r\nconnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    };
    let (events, stderr) = json_logs_of("intake_server=debug,tower_http=debug,info", get_healthz);
    let from_trace_layer = |e: &&serde_json::Value| {
        e["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("tower_http"))
    };
    let traced = events.iter().filter(from_trace_layer).collect::<Vec<_>>();
    assert!(traced.len() >= 2, "no request start and end in {stderr}");
    for event in traced {
        assert_eq!(event["span"]["name"], "request", "{event}");
        assert_eq!(event["span"]["method"], "GET", "{event}");
        assert_eq!(event["span"]["path"], "/healthz", "{event}");
    }
    let (events, stderr) = json_logs_of("tower_http=debug,info", get_healthz);
    assert!(
        events.iter().any(|e| from_trace_layer(&e)),
        "tower_http's events alone: {stderr}"
    );
    let (events, stderr) = json_logs_of("info", get_healthz);
    assert!(
        !events.iter().any(|e| e.get("span").is_some()),
        "a span at info: {stderr}"
    );
}
