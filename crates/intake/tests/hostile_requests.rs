//! Hostile requests against the real binary (issue 8): with `auth =
//! "tokens"` and small `[limits]`, a barrage of hostile requests on every
//! face (bodies over the limit with and without `Content-Length`, a gzip
//! bomb, a client sending one byte a second, the same big and slow bodies
//! on InLong Manager's paths, which take no token, 10 000 headers, JSON nested
//! 100 000 deep, invalid UTF-8, `..` stream names in push and create paths,
//! InLong reports with a wrong `cnt`, eKuiper DDL with a second statement
//! appended, missing and wrong tokens, an expired and a forged TC3
//! signature) each gets its clear 4xx (or the face's error code in a 200),
//! while a good client pushing one record per request sees only successes.
//! Afterwards every stream holds exactly the good client's acknowledged
//! records, and nothing appeared outside the data directory.
//!
//! The good client's latencies are kept in HDR histograms for a quiet and
//! a hostile phase and printed (`p99 quiet_us=... hostile_us=...
//! ratio=...`); nothing is asserted on them (speed is measured by
//! `bench/hostile.sh`, not by tests).
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use hdrhistogram::Histogram;
use intake_format::api::{AppendResponse, ReadResponse};
use serde_json::{Value, json};
use support::Intake;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The `admin_token` of the node's config.
const ADMIN: &str = "hostile-suite-admin-token-0123456789";
/// `limits.max_body_bytes`: the gzip bomb (about 100 KB) fits, so it is
/// refused for what it inflates to.
const MAX_BODY: usize = 256 * 1024;
/// `limits.max_decompressed_bytes`.
const MAX_DECOMPRESSED: usize = 1024 * 1024;
/// `limits.max_json_depth`.
const MAX_DEPTH: usize = 32;
/// `limits.request_read_timeout`, in seconds.
const READ_TIMEOUT_S: u64 = 2;
/// The DataHub binding of the hostile stream and its one credential.
const DATAHUB: &str = "datahub-hostile";
const SECRET_ID: &str = "AKIDhostilesuite";
const SECRET_KEY: &str = "hostile-suite-secret-key";
/// How long the good client runs alone, then with the hostile requests.
const QUIET_PHASE: Duration = Duration::from_secs(4);
const HOSTILE_PHASE: Duration = Duration::from_secs(6);
/// Each kind of hostile request is sent again after this pause until the
/// hostile phase ends: a steady background of abuse, not a load test.
const HOSTILE_PAUSE: Duration = Duration::from_millis(100);
/// No single hostile exchange may take longer than this (a hang).
const ANSWER_DEADLINE: Duration = Duration::from_secs(20);

const QUIET: u8 = 0;
const HOSTILE: u8 = 1;
const DONE: u8 = 2;

/// What the hostile checks share.
struct Ctx {
    addr: String,
    /// A client that opens a new connection per request, so a connection
    /// the server closes after a refusal is never reused.
    http: reqwest::Client,
    hostile_token: String,
    other_token: String,
    /// 100 MB of zeros, gzipped.
    bomb: Bytes,
}

impl Ctx {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// An answer read off a raw socket.
#[derive(Debug)]
struct RawAnswer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl RawAnswer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn show(&self) -> String {
        format!("{} {}", self.head, String::from_utf8_lossy(&self.body))
    }

    /// Asserts the status and the native error code; returns both as the
    /// suite's summary line.
    fn refused_with(&self, status: u16, error_code: &str) -> String {
        assert_eq!(self.status, status, "{}", self.show());
        assert_eq!(code(&self.json()), error_code, "{}", self.show());
        format!("{status} {error_code}")
    }
}

/// Splits `buf` into an answer once it holds a whole head and the body
/// its `Content-Length` announces (`eof`: whatever arrived is all).
fn parse_answer(buf: &[u8], eof: bool) -> Option<RawAnswer> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    let body = &buf[end + 4..];
    let body = match length {
        Some(len) if body.len() >= len => &body[..len],
        _ if eof => body,
        _ => return None,
    };
    Some(RawAnswer {
        status,
        head,
        body: body.to_vec(),
    })
}

/// Reads one answer from `rd`, within [`ANSWER_DEADLINE`]. A reset after
/// the answer arrived (the server closing with unread request bytes) ends
/// the read like an EOF.
async fn read_answer(rd: &mut tokio::net::tcp::OwnedReadHalf, what: &str) -> RawAnswer {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + ANSWER_DEADLINE;
    loop {
        let read = tokio::time::timeout_at(deadline, rd.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("{what}: no answer within {ANSWER_DEADLINE:?}"));
        match read {
            Ok(0) | Err(_) => {
                return parse_answer(&buf, true).unwrap_or_else(|| {
                    panic!(
                        "{what}: connection closed without an answer: {:?}",
                        String::from_utf8_lossy(&buf)
                    )
                });
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(answer) = parse_answer(&buf, false) {
            return answer;
        }
    }
}

/// Sends `request` on a new connection, writing it in a task of its own so
/// that an answer sent before the server read it all (and a write failing
/// after it) is still read.
async fn raw(addr: &str, request: Vec<u8>, what: &str) -> RawAnswer {
    let (mut rd, mut wr) = TcpStream::connect(addr).await.unwrap().into_split();
    let writer = tokio::spawn(async move {
        let written = wr.write_all(&request).await;
        (wr, written)
    });
    let answer = read_answer(&mut rd, what).await;
    writer.abort();
    answer
}

/// A request head; `extra` are whole header lines.
fn head(method: &str, path: &str, extra: &[String]) -> String {
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: intake\r\nconnection: close\r\n");
    for line in extra {
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head
}

/// The `error.code` of a native answer.
fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("(no code)")
}

/// Sends `request` and returns the status and the body as JSON (null when
/// it is not JSON) and as text.
async fn send(request: reqwest::RequestBuilder, what: &str) -> (u16, Value, String) {
    let answer = tokio::time::timeout(ANSWER_DEADLINE, request.send())
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {ANSWER_DEADLINE:?}"))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let status = answer.status().as_u16();
    let text = answer.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, json, text)
}

/// A JSON body over `limits.max_body_bytes`.
fn oversized_body() -> Vec<u8> {
    let mut body = b"[".to_vec();
    while body.len() < MAX_BODY + 40 * 1024 {
        body.extend_from_slice(br#"{"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},"#);
    }
    body.extend_from_slice(b"{}]");
    body
}

async fn over_limit_with_content_length(ctx: Arc<Ctx>) -> String {
    let body = oversized_body();
    let mut request = head(
        "POST",
        "/v1/streams/hostile/records",
        &[
            format!("authorization: Bearer {}", ctx.hostile_token),
            "content-type: application/json".into(),
            format!("content-length: {}", body.len()),
        ],
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let answer = raw(&ctx.addr, request, "body over the limit").await;
    answer.refused_with(413, "payload_too_large")
}

async fn over_limit_chunked(ctx: Arc<Ctx>) -> String {
    let body = oversized_body();
    let mut request = head(
        "POST",
        "/v1/streams/hostile/records",
        &[
            format!("authorization: Bearer {}", ctx.hostile_token),
            "content-type: application/json".into(),
            "transfer-encoding: chunked".into(),
        ],
    )
    .into_bytes();
    for chunk in body.chunks(8192) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let answer = raw(&ctx.addr, request, "chunked body over the limit").await;
    answer.refused_with(413, "payload_too_large")
}

async fn gzip_bomb(ctx: Arc<Ctx>) -> String {
    let request = ctx
        .http
        .post(ctx.url("/v1/streams/hostile/records"))
        .bearer_auth(&ctx.hostile_token)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(ctx.bomb.clone());
    let (status, body, text) = send(request, "gzip bomb").await;
    assert_eq!(
        (status, code(&body)),
        (413, "decompressed_too_large"),
        "{text}"
    );
    format!("{status} {}", code(&body))
}

/// Sends a head announcing a 100-byte body to `path`, then one byte a
/// second; returns the answer, how long it took and how many bytes were
/// sent by then.
async fn dribble(addr: &str, path: &str, extra: &[String]) -> (RawAnswer, Duration, usize) {
    let (mut rd, mut wr) = TcpStream::connect(addr).await.unwrap().into_split();
    let mut lines = extra.to_vec();
    lines.push("content-length: 100".into());
    wr.write_all(head("POST", path, &lines).as_bytes())
        .await
        .unwrap();
    let started = Instant::now();
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer = tokio::spawn({
        let sent = Arc::clone(&sent);
        async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            for _ in 0..100 {
                every.tick().await;
                if wr.write_all(b" ").await.is_err() {
                    break;
                }
                sent.fetch_add(1, Ordering::SeqCst);
            }
            wr
        }
    });
    let answer = read_answer(&mut rd, path).await;
    let waited = started.elapsed();
    writer.abort();
    (answer, waited, sent.load(Ordering::SeqCst))
}

/// A body announced as 100 bytes, sent one byte a second: refused with 408
/// once `limits.request_read_timeout` is up, long before the body is.
async fn slow_client(ctx: Arc<Ctx>) -> String {
    let (answer, waited, sent) = dribble(
        &ctx.addr,
        "/v1/streams/hostile/records",
        &[
            format!("authorization: Bearer {}", ctx.hostile_token),
            "content-type: application/json".into(),
        ],
    )
    .await;
    let refused = answer.refused_with(408, "request_read_timeout");
    // Not a timing assertion: the server must not wait for the whole body.
    assert!(
        sent < 100,
        "the answer came only after all 100 bytes, {waited:?}"
    );
    format!("{refused} after {waited:.1?} and {sent} of 100 bytes")
}

/// The InLong Manager paths are open without a token (InLong agents
/// report there): a body over `limits.max_admin_body_bytes`, announced or
/// chunked, and a slow body are refused there too, in the face's envelope
/// (HTTP 200, `success: false`), without reading the body to its end.
async fn open_manager_paths(ctx: Arc<Ctx>) -> String {
    let mut got = BTreeSet::new();
    let envelope = |answer: &RawAnswer, what: &str, needle: &str| {
        let body = answer.json();
        assert_eq!(answer.status, 200, "{what}: {}", answer.show());
        assert_eq!(body["success"], false, "{what}: {}", answer.show());
        let message = body["errMsg"].as_str().unwrap_or_default().to_owned();
        assert!(message.contains(needle), "{what}: {}", answer.show());
        message
    };
    for path in [
        "/inlong/manager/openapi/heartbeat/report",
        "/inlong/manager/openapi/dataproxy/getIpList/g-hostile",
    ] {
        let body = oversized_body();
        let mut announced = head(
            "POST",
            path,
            &[
                "content-type: application/json".into(),
                format!("content-length: {}", body.len()),
            ],
        )
        .into_bytes();
        announced.extend_from_slice(&body);
        let answer = raw(&ctx.addr, announced, path).await;
        got.insert(envelope(&answer, path, "larger than the limit"));
        let mut chunked = head(
            "POST",
            path,
            &[
                "content-type: application/json".into(),
                "transfer-encoding: chunked".into(),
            ],
        )
        .into_bytes();
        for chunk in body.chunks(8192) {
            chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            chunked.extend_from_slice(chunk);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let answer = raw(&ctx.addr, chunked, path).await;
        got.insert(envelope(&answer, path, "larger than the limit"));
    }
    let path = "/inlong/manager/openapi/heartbeat/report";
    let (answer, waited, sent) =
        dribble(&ctx.addr, path, &["content-type: application/json".into()]).await;
    let message = envelope(&answer, "slow heartbeat", "did not arrive");
    assert!(
        sent < 100,
        "the answer came only after all 100 bytes, {waited:?}"
    );
    got.insert(format!(
        "slow: {message} after {waited:.1?} and {sent} of 100 bytes"
    ));
    format!("200 success=false: {got:?}")
}

async fn ten_thousand_headers(ctx: Arc<Ctx>) -> String {
    let mut extra = vec![format!("authorization: Bearer {}", ctx.hostile_token)];
    extra.extend((0..10_000).map(|i| format!("x-hostile-{i}: v")));
    extra.push("content-length: 2".into());
    let mut request = head("POST", "/v1/streams/hostile/records", &extra).into_bytes();
    request.extend_from_slice(b"{}");
    let answer = raw(&ctx.addr, request, "10 000 headers").await;
    assert_eq!(answer.status, 431, "{}", answer.show());
    format!("{} (empty body: {})", answer.status, answer.body.is_empty())
}

async fn json_too_deep(ctx: Arc<Ctx>) -> String {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let request = ctx
        .http
        .post(ctx.url("/v1/streams/hostile/records"))
        .bearer_auth(&ctx.hostile_token)
        .header("content-type", "application/json")
        .body(deep);
    let (status, body, text) = send(request, "JSON 100 000 deep").await;
    assert_eq!((status, code(&body)), (400, "json_too_deep"), "{text}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("deeper than {MAX_DEPTH} levels"))
            && message.contains("limits.max_json_depth"),
        "{message}"
    );
    format!("{status} {}: {message}", code(&body))
}

async fn invalid_utf8(ctx: Arc<Ctx>) -> String {
    let mut got = Vec::new();
    for (content_type, body) in [
        ("application/json", &b"{\"a\":\"\xff\xfe\"}"[..]),
        ("application/json", &b"[{\"a\":1},{\"\xc3\x28\":2}]"[..]),
        (
            "application/x-ndjson",
            &b"{\"a\":1}\n{\"b\":\"\xed\xa0\x80\"}\n"[..],
        ),
    ] {
        let request = ctx
            .http
            .post(ctx.url("/v1/streams/hostile/records"))
            .bearer_auth(&ctx.hostile_token)
            .header("content-type", content_type)
            .body(body.to_vec());
        let (status, body, text) = send(request, "invalid UTF-8").await;
        assert_eq!(status, 400, "{text}");
        got.push(format!("{status} {}", code(&body)));
    }
    // The same in an InLong record of a JSON stream: code 123.
    let request = ctx
        .http
        .post(ctx.url(&format!("/dataproxy/message?token={}", ctx.hostile_token)))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("groupId=g-hostile&streamId=s-hostile&body=%7B%22a%22%3A%22%FF%22%7D&cnt=1");
    let (status, body, text) = send(request, "InLong invalid UTF-8").await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(body["code"], "123", "{text}");
    got.push(format!("InLong {status} code {}", body["code"]));
    got.join(", ")
}

/// `..` in the stream name of push paths, on the native face and the REST
/// Proxy: 400 or 404, never a stream (or a file) made of it.
async fn traversal_push(ctx: Arc<Ctx>) -> String {
    let mut got = Vec::new();
    for path in [
        "/v1/streams/../etc/records",
        "/v1/streams/..%2Fetc/records",
        "/v1/streams/..%2fetc/records",
        "/v1/streams/%2e%2e/records",
        "/v1/streams/%2E%2E%2F%2E%2E%2Fetc/records",
        "/v1/streams/..%2F..%2F..%2Fetc/records",
        "/v1/streams/..%5Cetc/records",
        "/topics/..%2Fetc",
        "/topics/%2e%2e",
    ] {
        let body = br#"{"records":[{"value":{"x":1}}]}"#;
        let content_type = if path.starts_with("/topics") {
            "application/vnd.kafka.json.v2+json"
        } else {
            "application/json"
        };
        let mut request = head(
            "POST",
            path,
            &[
                // Admin may write to any stream (and, with
                // auto_create_streams, make one), so only the name stops it.
                format!("authorization: Bearer {ADMIN}"),
                format!("content-type: {content_type}"),
                format!("content-length: {}", body.len()),
            ],
        )
        .into_bytes();
        request.extend_from_slice(body);
        let answer = raw(&ctx.addr, request, path).await;
        assert!(
            matches!(answer.status, 400 | 404),
            "{path}: {}",
            answer.show()
        );
        let body = answer.json();
        let said = match body.get("error_code") {
            // The REST Proxy's shape.
            Some(rest) => format!("error_code {rest} ({})", body["message"]),
            None => code(&body).to_owned(),
        };
        got.push(format!("{path} {} {said}", answer.status));
    }
    got.join(", ")
}

/// `..` in the names of streams to create, natively and by eKuiper DDL.
async fn traversal_create(ctx: Arc<Ctx>) -> String {
    let mut got = BTreeSet::new();
    for name in [
        "../etc",
        "..%2Fetc",
        "%2e%2e",
        "..",
        "a/../../etc",
        "/etc/x",
    ] {
        let request = ctx
            .http
            .post(ctx.url("/v1/streams"))
            .bearer_auth(ADMIN)
            .json(&json!({"name": name}));
        let (status, body, text) = send(request, name).await;
        assert_eq!((status, code(&body)), (400, "invalid_definition"), "{text}");
        got.insert(format!("{status} {}", code(&body)));
        let sql = format!(
            "CREATE STREAM `{name}` () WITH (DATASOURCE=\"/hostile-{}\", TYPE=\"httppush\")",
            got.len()
        );
        let request = ctx
            .http
            .post(ctx.url("/streams"))
            .bearer_auth(ADMIN)
            .json(&json!({ "sql": sql }));
        let (status, body, text) = send(request, &sql).await;
        assert_eq!(
            (status, &body["error"]),
            (400, &json!(1000)),
            "{sql}: {text}"
        );
        got.insert(format!("eKuiper {status} error {}", body["error"]));
    }
    format!("{got:?}")
}

/// InLong reports whose `cnt` is not the number of records.
async fn inlong_bad_count(ctx: Arc<Ctx>) -> String {
    let mut got = Vec::new();
    for cnt in ["-1", "99999999"] {
        let request = ctx
            .http
            .post(ctx.url(&format!("/dataproxy/message?token={}", ctx.hostile_token)))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "groupId=g-hostile&streamId=s-hostile&body=%7B%22x%22%3A1%7D&cnt={cnt}"
            ));
        let (status, body, text) = send(request, "InLong cnt").await;
        assert_eq!(status, 200, "{text}");
        let code = body["code"].as_str().unwrap_or("(none)");
        assert_ne!(code, "0", "cnt={cnt}: {text}");
        assert_eq!(code, "123", "cnt={cnt}: {text}");
        got.push(format!("cnt={cnt}: 200 code {code}"));
    }
    got.join(", ")
}

/// A second statement after the first, in eKuiper's REST API: 400, and
/// neither statement runs.
async fn ddl_injection(ctx: Arc<Ctx>) -> String {
    let create_a = r#"CREATE STREAM a () WITH (DATASOURCE="/a", TYPE="httppush")"#;
    let mut got = BTreeSet::new();
    for (method, path, sql) in [
        ("POST", "/streams", format!("{create_a}; DROP STREAM b")),
        ("POST", "/streams", format!("{create_a};DROP STREAM b;")),
        ("POST", "/tables", format!("{create_a}; DROP TABLE b")),
        ("POST", "/streams", "SHOW STREAMS; DROP STREAM b".to_owned()),
        (
            "POST",
            "/streams",
            "DESCRIBE STREAM b; DROP STREAM b".to_owned(),
        ),
        (
            "PUT",
            "/streams/b",
            r#"CREATE STREAM b () WITH (DATASOURCE="/b", TYPE="httppush"); DROP STREAM b"#
                .to_owned(),
        ),
    ] {
        let request = ctx
            .http
            .request(method.parse().unwrap(), ctx.url(path))
            .bearer_auth(ADMIN)
            .json(&json!({ "sql": sql }));
        let (status, body, text) = send(request, &sql).await;
        assert_eq!(
            (status, &body["error"]),
            (400, &json!(1000)),
            "{sql}: {text}"
        );
        got.insert(format!("{status} error {}", body["error"]));
    }
    for (name, expected) in [("b", 200), ("a", 404)] {
        let request = ctx
            .http
            .get(ctx.url(&format!("/v1/streams/{name}")))
            .bearer_auth(ADMIN);
        let (status, _, text) = send(request, name).await;
        assert_eq!(status, expected, "stream {name}: {text}");
    }
    format!("{got:?}; b still exists, a was not made")
}

/// Pushes to the good client's stream without a token, with a bogus one,
/// and with tokens for other streams; on the native face and InLong's.
async fn wrong_tokens(ctx: Arc<Ctx>) -> String {
    let mut got = Vec::new();
    let url = ctx.url("/v1/streams/good/records");
    let record = json!({"intruder": true});
    let (status, body, text) = send(ctx.http.post(&url).json(&record), "no token").await;
    assert_eq!((status, code(&body)), (401, "unauthorized"), "{text}");
    got.push(format!("none: {status} {}", code(&body)));
    let bogus = ctx
        .http
        .post(&url)
        .bearer_auth("itk_nobody_000")
        .json(&record);
    let (status, body, text) = send(bogus, "bogus token").await;
    assert_eq!((status, code(&body)), (401, "unauthorized"), "{text}");
    got.push(format!("bogus: {status} {}", code(&body)));
    for (name, token) in [
        ("write:other", &ctx.other_token),
        ("write:hostile", &ctx.hostile_token),
    ] {
        let request = ctx.http.post(&url).bearer_auth(token).json(&record);
        let (status, body, text) = send(request, name).await;
        assert_eq!((status, code(&body)), (403, "forbidden"), "{name}: {text}");
        got.push(format!("{name}: {status} {}", code(&body)));
    }
    for (name, query, expected) in [
        ("InLong none", String::new(), "401"),
        (
            "InLong write:other",
            format!("?token={}", ctx.other_token),
            "403",
        ),
    ] {
        let request = ctx
            .http
            .post(ctx.url(&format!("/dataproxy/message{query}")))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("groupId=g-hostile&streamId=s-hostile&body=%7B%22x%22%3A1%7D");
        let (status, body, text) = send(request, name).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (200, Some(expected)),
            "{name}: {text}"
        );
        got.push(format!("{name}: {status} code {expected}"));
    }
    got.join(", ")
}

/// A civil date `YYYY-MM-DD` (UTC) of Unix seconds.
fn utc_day(unix_s: i64) -> String {
    // Howard Hinnant's days-to-civil.
    let z = unix_s.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// CKafka `SendMessage` signed with TC3 by the binding's SecretId: once
/// with a timestamp ten minutes old, once current with a made-up signature.
async fn tc3_signatures(ctx: Arc<Ctx>) -> String {
    let now_s = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let body = json!({"DataHubId": DATAHUB, "Message": [{"Body": "{\"x\":1}"}]});
    let mut got = Vec::new();
    for (timestamp, expected) in [
        (now_s - 600, "AuthFailure.SignatureExpire"),
        (now_s, "AuthFailure.SignatureFailure"),
    ] {
        let authorization = format!(
            "TC3-HMAC-SHA256 Credential={SECRET_ID}/{}/ckafka/tc3_request, \
             SignedHeaders=content-type;host, Signature={}",
            utc_day(timestamp),
            "0f".repeat(32)
        );
        let request = ctx
            .http
            .post(ctx.url("/"))
            .header("x-tc-action", "SendMessage")
            .header("x-tc-version", "2019-08-19")
            .header("x-tc-timestamp", timestamp.to_string())
            .header("authorization", authorization)
            .json(&body);
        let (status, body, text) = send(request, expected).await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(body["Response"]["Error"]["Code"], expected, "{text}");
        if timestamp == now_s {
            // Refused by the comparison itself, not by the date.
            let message = body["Response"]["Error"]["Message"].as_str().unwrap();
            assert!(message.contains("does not match the request"), "{text}");
        }
        got.push(format!("{status} {expected}"));
    }
    got.join(", ")
}

/// One kind of hostile request: returns what it got.
type Check = fn(Arc<Ctx>) -> BoxFuture<'static, String>;

fn checks() -> Vec<(&'static str, Check)> {
    vec![
        ("body over the limit, Content-Length", |c| {
            Box::pin(over_limit_with_content_length(c))
        }),
        ("body over the limit, chunked", |c| {
            Box::pin(over_limit_chunked(c))
        }),
        ("gzip bomb (100 MB of zeros)", |c| Box::pin(gzip_bomb(c))),
        ("one byte a second", |c| Box::pin(slow_client(c))),
        ("InLong Manager's open paths: big and slow bodies", |c| {
            Box::pin(open_manager_paths(c))
        }),
        ("10 000 headers", |c| Box::pin(ten_thousand_headers(c))),
        ("JSON nested 100 000 deep", |c| Box::pin(json_too_deep(c))),
        ("invalid UTF-8", |c| Box::pin(invalid_utf8(c))),
        ("'..' stream names in push paths", |c| {
            Box::pin(traversal_push(c))
        }),
        ("'..' stream names in create", |c| {
            Box::pin(traversal_create(c))
        }),
        ("InLong cnt=-1 and cnt=99999999", |c| {
            Box::pin(inlong_bad_count(c))
        }),
        ("eKuiper DDL with a second statement", |c| {
            Box::pin(ddl_injection(c))
        }),
        ("missing and wrong tokens", |c| Box::pin(wrong_tokens(c))),
        ("TC3 expired and forged signatures", |c| {
            Box::pin(tc3_signatures(c))
        }),
    ]
}

/// Everything the good client saw.
#[derive(Default)]
struct GoodClient {
    /// Acknowledged records by offset (one partition).
    acked: BTreeMap<u64, Value>,
    /// Every answer that was not a success, or a client error.
    failures: Vec<String>,
    /// Latency in µs per phase.
    quiet: Option<Histogram<u64>>,
    hostile: Option<Histogram<u64>>,
}

/// Pushes one record per request to `good`, sequentially, until the phase
/// is [`DONE`].
async fn good_client(addr: String, token: String, phase: Arc<AtomicU8>) -> GoodClient {
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/v1/streams/good/records");
    let histogram = || Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let (mut quiet, mut hostile) = (histogram(), histogram());
    let mut seen = GoodClient::default();
    let pad = "g".repeat(150);
    for seq in 0u64.. {
        let now = phase.load(Ordering::SeqCst);
        if now == DONE {
            break;
        }
        let record = json!({"seq": seq, "pad": pad});
        let started = Instant::now();
        let answer = http
            .post(&url)
            .bearer_auth(&token)
            .json(&record)
            .send()
            .await;
        let answer = match answer {
            Ok(answer) if answer.status() == 200 => answer.json::<AppendResponse>().await,
            Ok(answer) => {
                let status = answer.status();
                let text = answer.text().await.unwrap_or_default();
                seen.failures.push(format!("seq {seq}: {status} {text}"));
                continue;
            }
            Err(e) => {
                seen.failures.push(format!("seq {seq}: {e}"));
                continue;
            }
        };
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        match answer {
            Ok(a) if a.records == 1 && a.partitions.len() == 1 => {
                let offset = a.partitions[0].first_offset;
                assert!(
                    seen.acked.insert(offset, record).is_none(),
                    "offset {offset} twice"
                );
            }
            Ok(a) => seen.failures.push(format!("seq {seq}: odd answer {a:?}")),
            Err(e) => seen.failures.push(format!("seq {seq}: {e}")),
        }
        let into = if now == QUIET {
            &mut quiet
        } else {
            &mut hostile
        };
        into.saturating_record(micros);
    }
    seen.quiet = Some(quiet);
    seen.hostile = Some(hostile);
    seen
}

/// Every path under `root` (relative), skipping the subtree `skip`.
fn tree(root: &Path, skip: Option<&Path>) -> BTreeSet<PathBuf> {
    fn walk(dir: &Path, root: &Path, skip: Option<&Path>, out: &mut BTreeSet<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if Some(path.as_path()) == skip {
                continue;
            }
            out.insert(path.strip_prefix(root).unwrap().to_owned());
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&path, root, skip, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, skip, &mut out);
    out
}

/// The names directly in `dir`.
fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Every record of partition 0 of `stream`, by offset.
async fn read_all(http: &reqwest::Client, addr: &str, stream: &str) -> BTreeMap<u64, Value> {
    let mut records = BTreeMap::new();
    let mut offset = 0;
    loop {
        let page: ReadResponse = http
            .get(format!(
                "http://{addr}/v1/streams/{stream}/partitions/0/records?offset={offset}&limit=10000"
            ))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if page.records.is_empty() {
            return records;
        }
        for r in page.records {
            records.insert(r.offset, serde_json::from_str(r.value.get()).unwrap());
        }
        offset = page.next_offset;
    }
}

/// `next_offset` of every partition of `stream`.
async fn next_offsets(http: &reqwest::Client, addr: &str, stream: &str) -> Vec<u64> {
    let view: Value = http
        .get(format!("http://{addr}/v1/streams/{stream}"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    view["status"]
        .as_array()
        .unwrap_or_else(|| panic!("{view}"))
        .iter()
        .map(|p| p["next_offset"].as_u64().unwrap())
        .collect()
}

async fn admin_post(http: &reqwest::Client, addr: &str, path: &str, body: Value) -> Value {
    let answer = http
        .post(format!("http://{addr}{path}"))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = answer.status();
    let text = answer.text().await.unwrap();
    assert_eq!(status, 201, "{path} {body}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn p99(h: &Histogram<u64>) -> u64 {
    h.value_at_quantile(0.99)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_4xx_and_a_good_client_only_successes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("intake.toml");
    std::fs::write(
        &config,
        format!(
            r#"auth = "tokens"
admin_token = "{ADMIN}"
auto_create_streams = true

[cluster]
manager = true           # serves InLong Manager's open paths

[limits]
max_body_bytes = {MAX_BODY}
max_admin_body_bytes = 65536
max_decompressed_bytes = {MAX_DECOMPRESSED}
max_json_depth = {MAX_DEPTH}
max_headers = 100
max_header_bytes = 16384
request_read_timeout = "{READ_TIMEOUT_S}s"
"#
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let node = Intake::serve(&data, &["--config", config.to_str().unwrap()]);
    let addr = node.addr.clone();
    let http = reqwest::Client::new();

    // The good client's stream, the hostile requests' own, one whose token
    // is the "wrong stream" token, and eKuiper's victim `b`.
    admin_post(&http, &addr, "/v1/streams", json!({"name": "good"})).await;
    admin_post(
        &http,
        &addr,
        "/v1/streams",
        json!({"name": "hostile", "bindings": {
            "inlong": [{"group_id": "g-hostile", "stream_id": "s-hostile"}],
            "datahub_id": DATAHUB,
            "datahub_credentials": [{"secret_id": SECRET_ID, "secret_key": SECRET_KEY}]}}),
    )
    .await;
    admin_post(&http, &addr, "/v1/streams", json!({"name": "other"})).await;
    let b = http
        .post(format!("http://{addr}/streams"))
        .bearer_auth(ADMIN)
        .json(&json!({"sql": r#"CREATE STREAM b () WITH (DATASOURCE="/b", TYPE="httppush")"#}))
        .send()
        .await
        .unwrap();
    assert_eq!(b.status(), 201, "{}", b.text().await.unwrap());
    let token = |scope: &str| {
        let (http, addr) = (http.clone(), addr.clone());
        let scope = scope.to_owned();
        async move {
            let made = admin_post(
                &http,
                &addr,
                "/v1/tokens",
                json!({"name": scope, "scopes": [scope]}),
            )
            .await;
            made["token"].as_str().unwrap().to_owned()
        }
    };
    let good_token = token("write:good").await;
    let ctx = Arc::new(Ctx {
        addr: addr.clone(),
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap(),
        hostile_token: token("write:hostile").await,
        other_token: token("write:other").await,
        bomb: tokio::task::spawn_blocking(|| {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            let zeros = vec![0u8; 1 << 20];
            for _ in 0..100 {
                gz.write_all(&zeros).unwrap();
            }
            Bytes::from(gz.finish().unwrap())
        })
        .await
        .unwrap(),
    });
    assert!(ctx.bomb.len() < MAX_BODY, "{} bytes", ctx.bomb.len());

    // What lies outside the data directory, and in it, before the abuse.
    let outside = tree(dir.path(), Some(&data));
    let data_top = names(&data);

    let phase = Arc::new(AtomicU8::new(QUIET));
    // The good client runs on a runtime of its own, so the test's own work
    // for the hostile requests does not delay it.
    let good = std::thread::spawn({
        let (addr, phase) = (addr.clone(), Arc::clone(&phase));
        move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(good_client(addr, good_token, phase))
        }
    });
    tokio::time::sleep(QUIET_PHASE).await;

    phase.store(HOSTILE, Ordering::SeqCst);
    let hostile_started = Instant::now();
    let tasks: Vec<_> = checks()
        .into_iter()
        .map(|(name, check)| {
            let ctx = Arc::clone(&ctx);
            tokio::spawn(async move {
                let mut rounds = 0;
                loop {
                    let got = check(Arc::clone(&ctx)).await;
                    rounds += 1;
                    if hostile_started.elapsed() >= HOSTILE_PHASE {
                        return (name, rounds, got);
                    }
                    tokio::time::sleep(HOSTILE_PAUSE).await;
                }
            })
        })
        .collect();
    let mut report = Vec::new();
    for task in tasks {
        report.push(task.await.unwrap());
    }
    phase.store(DONE, Ordering::SeqCst);
    let seen = tokio::task::spawn_blocking(move || good.join().unwrap())
        .await
        .unwrap();

    for (name, rounds, got) in &report {
        eprintln!("{name} (x{rounds}): {got}");
    }
    assert!(
        seen.failures.is_empty(),
        "the good client was refused or failed {} time(s): {:#?}",
        seen.failures.len(),
        seen.failures
    );
    let (quiet, hostile) = (seen.quiet.unwrap(), seen.hostile.unwrap());
    assert!(
        !quiet.is_empty() && !hostile.is_empty(),
        "each phase sent requests"
    );

    // Exactly the good client's records, and nothing anywhere else.
    let stored = read_all(&http, &addr, "good").await;
    assert_eq!(stored.len(), seen.acked.len(), "records in `good`");
    assert_eq!(stored, seen.acked, "`good` holds the acknowledged records");
    for stream in ["hostile", "other", "b"] {
        let offsets = next_offsets(&http, &addr, stream).await;
        assert!(
            offsets.iter().all(|&o| o == 0),
            "{stream} got records: {offsets:?}"
        );
    }
    assert_eq!(
        names(&data.join("streams")),
        BTreeSet::from(["good", "hostile", "other", "b"].map(String::from)),
        "stream directories"
    );
    assert_eq!(names(&data), data_top, "the data directory's top level");
    assert_eq!(
        tree(dir.path(), Some(&data)),
        outside,
        "nothing appeared outside the data directory"
    );
    let etc: Vec<_> = tree(dir.path(), None)
        .into_iter()
        .filter(|p| p.components().any(|c| c.as_os_str() == "etc"))
        .collect();
    assert!(etc.is_empty(), "{etc:?}");

    let (q, h) = (p99(&quiet), p99(&hostile));
    eprintln!(
        "good client: {} acknowledged, quiet phase {} requests, hostile phase {} requests",
        seen.acked.len(),
        quiet.len(),
        hostile.len()
    );
    eprintln!(
        "p99 quiet_us={q} hostile_us={h} ratio={:.2} (target: hostile p99 <= 2x quiet p99)",
        h as f64 / q.max(1) as f64
    );
}
