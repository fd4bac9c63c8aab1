//! `intake bench` against a real node on every face: the counts it reports
//! are what the node stored and counted, `--verify` reads every
//! acknowledged record back, `--rate` holds the rate down, and a stream
//! that cannot take the face is refused with a reason.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_intake"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env("INTAKE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
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
        Self {
            child,
            url: format!("http://{addr}"),
            _dir: dir,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn bench(url: &str, args: &[&str]) -> (Option<i32>, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_intake"))
        .args(["bench", "--url", url, "--json"])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let summary = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), summary, stderr)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn create(url: &str, def: Value) {
    let status = runtime().block_on(async {
        reqwest::Client::new()
            .post(format!("{url}/v1/streams"))
            .json(&def)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 201, "create {def}");
}

fn get(url: &str) -> String {
    runtime().block_on(async {
        let response = reqwest::get(url).await.unwrap();
        assert!(response.status().is_success(), "GET {url}");
        response.text().await.unwrap()
    })
}

#[test]
fn every_face_is_loaded_counted_and_verified() {
    let server = Server::start();
    let url = &server.url;
    create(url, json!({"name": "j", "partitions": 2}));
    create(
        url,
        json!({"name": "bin", "format": "binary",
               "bindings": {"inlong": [{"group_id": "g1", "stream_id": "s1"}], "datahub_id": "dh1"}}),
    );
    let cases: &[(&str, &str, &str)] = &[
        ("native", "j", "3"),
        ("rest", "j", "2"),
        ("native", "bin", "1"),
        ("inlong", "bin", "4"),
        ("ckafka", "bin", "2"),
        ("rest", "bin", "3"),
    ];
    let mut stored = std::collections::HashMap::<&str, u64>::new();
    for &(face, stream, per_request) in cases {
        let (code, s, stderr) = bench(
            url,
            &[
                "--stream",
                stream,
                "--face",
                face,
                "--count",
                "120",
                "--concurrency",
                "4",
                "--records-per-request",
                per_request,
                "--record-size",
                "150",
                "--verify",
            ],
        );
        assert_eq!(code, Some(0), "{face} on {stream}: {s} {stderr}");
        let per_request: u64 = per_request.parse().unwrap();
        assert_eq!(s["requests"], 120, "{s}");
        assert_eq!(s["failed"], 0, "{s}");
        assert_eq!(s["records"], 120 * per_request, "{s}");
        assert_eq!(s["verify"]["acknowledged"], 120 * per_request, "{s}");
        assert_eq!(s["verify"]["found"], 120 * per_request, "{s}");
        assert_eq!(s["verify"]["ok"], true, "{s}");
        for q in ["p50", "p90", "p99", "p99.9", "max"] {
            assert!(s["latency_ms"][q].as_f64().unwrap() > 0.0, "{q}: {s}");
        }
        assert!(s["latency_ms"]["p50"].as_f64() <= s["latency_ms"]["max"].as_f64());
        assert!(s["requests_per_s"].as_f64().unwrap() > 0.0);
        assert!(s["mb_per_s"].as_f64().unwrap() > 0.0);
        *stored.entry(stream).or_default() += 120 * per_request;
    }

    // The node stored exactly what the bench says was acknowledged, and
    // its metrics counted the same per face.
    for (stream, records) in &stored {
        let view: Value =
            serde_json::from_str(&get(&format!("{url}/v1/streams/{stream}"))).unwrap();
        let total: u64 = view["status"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["next_offset"].as_u64().unwrap())
            .sum();
        assert_eq!(total, *records, "{stream}");
    }
    let metrics = get(&format!("{url}/metrics"));
    for line in [
        "intake_records_total{face=\"inlong\",stream=\"bin\"} 480",
        "intake_records_total{face=\"ckafka\",stream=\"bin\"} 240",
        "intake_records_total{face=\"native\",stream=\"j\"} 360",
        "intake_records_total{face=\"rest_proxy\",stream=\"j\"} 240",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} not in\n{metrics}"
        );
    }

    // --rate holds the rate: 100 requests/s for 1.5 s is about 150.
    let (code, s, stderr) = bench(
        url,
        &[
            "--stream",
            "j",
            "--rate",
            "100",
            "--duration",
            "1500ms",
            "--concurrency",
            "2",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let requests = s["requests"].as_u64().unwrap();
    assert!(
        (100..=160).contains(&requests),
        "{requests} requests at --rate 100: {s}"
    );

    // A face the stream has no binding for is refused up front.
    let (code, _, stderr) = bench(url, &["--stream", "j", "--face", "inlong", "--count", "1"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no InLong binding"), "{stderr}");
    // Several records per native request need a JSON stream.
    let (code, _, stderr) = bench(
        url,
        &[
            "--stream",
            "bin",
            "--records-per-request",
            "2",
            "--count",
            "1",
        ],
    );
    assert_eq!(code, Some(1));
    assert!(stderr.contains("--records-per-request 1"), "{stderr}");
}
