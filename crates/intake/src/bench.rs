//! `intake bench`: a load generator that speaks every face.
//!
//! Each of `--concurrency` workers owns one HTTP/1.1 connection (like
//! `wrk -c`), sends a request, waits for its answer, and sends the next:
//! until `--duration` ends or `--count` requests have been sent. With
//! `--rate` the requests are spread evenly in time and each latency is
//! measured from the moment the request *should* have been sent, so a slow
//! server cannot hide its stalls by slowing the generator down.
//!
//! Every record is distinct (`{"bench":RUN,"w":WORKER,"n":SEQ,"pad":...}`,
//! padded to `--record-size`), so `--verify` can read the stream back over
//! the native API and check that every acknowledged record is there.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use http::header::{CONTENT_TYPE, HOST};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use indicatif::{ProgressBar, ProgressStyle};
use intake_format::api::{ReadResponse, StreamDefinition, StreamView};
use serde::{Deserialize, Serialize};

use crate::api::Client;

/// The face a bench speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum BenchFace {
    /// `POST /v1/streams/{stream}/records`.
    Native,
    /// InLong DataProxy `POST /dataproxy/message` (the stream's first
    /// InLong binding).
    Inlong,
    /// CKafka DataHub `SendMessage` (the stream's `datahub_id`).
    Ckafka,
    /// Kafka REST Proxy v2 `POST /topics/{stream}`.
    Rest,
    /// An eKuiper-style push path (`--path`, `--method`).
    Datasource,
}

/// Arguments of `intake bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// The stream to load (it must exist; its bindings give the InLong
    /// groupId/streamId and the DataHubId).
    #[arg(long)]
    pub(crate) stream: String,
    /// The face to speak.
    #[arg(long, value_enum, default_value = "native")]
    pub(crate) face: BenchFace,
    /// For `--face datasource`: the push path, e.g. `/api/data`.
    #[arg(long)]
    pub(crate) path: Option<String>,
    /// For `--face datasource`: POST or PUT.
    #[arg(long, default_value = "POST")]
    pub(crate) method: String,
    /// Connections, each with one request in flight.
    #[arg(long, default_value_t = 64)]
    pub(crate) concurrency: usize,
    /// Records in each request.
    #[arg(long, default_value_t = 1)]
    pub(crate) records_per_request: usize,
    /// Bytes of each record (its JSON text is padded to this length).
    #[arg(long, default_value_t = 200)]
    pub(crate) record_size: usize,
    /// How long to run, e.g. `30s` [default: 10s].
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "count")]
    pub(crate) duration: Option<Duration>,
    /// Send this many requests, then stop (instead of `--duration`).
    #[arg(long)]
    pub(crate) count: Option<u64>,
    /// Target rate in requests per second over all connections
    /// [default: as fast as the server answers].
    #[arg(long)]
    pub(crate) rate: Option<f64>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub(crate) json: bool,
    /// Afterwards, read the stream back and check every acknowledged
    /// record is in it.
    #[arg(long)]
    pub(crate) verify: bool,
    /// Threads of the load generator (like `wrk -t`).
    #[arg(long, default_value_t = 1)]
    pub(crate) threads: usize,
    /// Send requests without a producer id and sequence (by default each
    /// connection is a producer: `Intake-Producer-Id`, `Intake-Sequence`).
    #[arg(long)]
    pub(crate) no_sequences: bool,
}

/// Runs a bench; false when `--verify` found acknowledged records missing.
///
/// # Errors
/// Bad arguments, an unreachable node, a stream that does not fit the face.
pub(crate) fn run(url: &str, args: BenchArgs) -> anyhow::Result<bool> {
    anyhow::ensure!(args.concurrency >= 1, "--concurrency must be at least 1");
    anyhow::ensure!(args.threads >= 1, "--threads must be at least 1");
    anyhow::ensure!(
        args.records_per_request >= 1,
        "--records-per-request must be at least 1"
    );
    if let Some(rate) = args.rate {
        anyhow::ensure!(rate > 0.0, "--rate must be above 0");
    }
    // One thread is one event loop, like wrk -t1: no wake-ups across
    // threads on the generator's side.
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .context("cannot start the runtime")?;
    runtime.block_on(bench(url, args))
}

/// Where and how requests go.
#[derive(Debug, Clone)]
struct Target {
    /// `host:port` to connect to.
    authority: String,
    method: Method,
    /// Path and query of every request.
    path: String,
    content_type: &'static str,
    /// Extra header (CKafka's action).
    action: Option<&'static str>,
    face: BenchFace,
    /// The stream stores JSON (else records are opaque bytes).
    json_stream: bool,
    /// InLong groupId and streamId.
    inlong: Option<(String, String)>,
    datahub_id: Option<String>,
    /// `path` parsed once.
    uri: Uri,
}

impl Target {
    fn new(url: &str, args: &BenchArgs, def: &StreamDefinition) -> anyhow::Result<Self> {
        let uri: Uri = url.parse().with_context(|| format!("bad --url {url:?}"))?;
        if uri.scheme_str() != Some("http") {
            bail!("intake bench speaks plain http://; got {url:?}");
        }
        let authority = uri
            .authority()
            .with_context(|| format!("--url {url:?} has no host"))?
            .to_string();
        let base = uri.path().trim_end_matches('/').to_owned();
        let json_stream = def.format.stores_json();
        let stream = &args.stream;
        let mut target = Self {
            authority,
            method: Method::POST,
            path: String::new(),
            content_type: "application/json",
            action: None,
            face: args.face,
            json_stream,
            inlong: None,
            datahub_id: None,
            uri: Uri::default(),
        };
        match args.face {
            BenchFace::Native => {
                target.path = format!("{base}/v1/streams/{stream}/records");
                if !json_stream {
                    anyhow::ensure!(
                        args.records_per_request == 1,
                        "stream {stream:?} is not JSON: a native push carries one record; use --records-per-request 1"
                    );
                    target.content_type = "application/octet-stream";
                }
            }
            BenchFace::Inlong => {
                let binding = def.bindings.inlong.first().with_context(|| {
                    format!("stream {stream:?} has no InLong binding (bindings.inlong)")
                })?;
                target.path = format!("{base}/dataproxy/message");
                target.content_type = "application/x-www-form-urlencoded";
                target.inlong = Some((binding.group_id.clone(), binding.stream_id.clone()));
            }
            BenchFace::Ckafka => {
                target.datahub_id =
                    Some(def.bindings.datahub_id.clone().with_context(|| {
                        format!("stream {stream:?} has no bindings.datahub_id")
                    })?);
                target.path = format!("{base}/");
                target.action = Some("SendMessage");
            }
            BenchFace::Rest => {
                target.path = format!("{base}/topics/{stream}");
                target.content_type = if json_stream {
                    "application/vnd.kafka.json.v2+json"
                } else {
                    "application/vnd.kafka.binary.v2+json"
                };
            }
            BenchFace::Datasource => {
                let path = args
                    .path
                    .clone()
                    .or_else(|| def.bindings.datasource.as_ref().map(|d| d.path.clone()))
                    .context(
                        "--face datasource needs --path (or a stream with bindings.datasource)",
                    )?;
                target.path = format!("{base}{path}");
                target.method = match args.method.to_ascii_uppercase().as_str() {
                    "POST" => Method::POST,
                    "PUT" => Method::PUT,
                    other => bail!("--method {other:?}: use POST or PUT"),
                };
            }
        }
        target.uri = target
            .path
            .parse()
            .with_context(|| format!("bad request path {:?}", target.path))?;
        Ok(target)
    }

    /// The body of one request holding `records`.
    fn body(&self, records: &[String], buf: &mut String) {
        buf.clear();
        match self.face {
            BenchFace::Native | BenchFace::Datasource => {
                if records.len() == 1 {
                    buf.push_str(&records[0]);
                } else {
                    buf.push('[');
                    buf.push_str(&records.join(","));
                    buf.push(']');
                }
            }
            BenchFace::Inlong => {
                let (group, stream) = self.inlong.as_ref().map_or(("", ""), |(g, s)| (g, s));
                let mut form = form_urlencoded::Serializer::new(std::mem::take(buf));
                form.append_pair("groupId", group)
                    .append_pair("streamId", stream)
                    .append_pair("dt", &intake_core::now_ms().to_string())
                    .append_pair("cnt", &records.len().to_string())
                    .append_pair("body", &records.join("\n"));
                *buf = form.finish();
            }
            BenchFace::Ckafka => {
                let id = self.datahub_id.as_deref().unwrap_or_default();
                let _ = write!(buf, r#"{{"DataHubId":{},"Message":["#, quoted(id));
                for (i, r) in records.iter().enumerate() {
                    if i > 0 {
                        buf.push(',');
                    }
                    let _ = write!(buf, r#"{{"Body":{}}}"#, quoted(r));
                }
                buf.push_str("]}");
            }
            BenchFace::Rest => {
                buf.push_str(r#"{"records":["#);
                for (i, r) in records.iter().enumerate() {
                    if i > 0 {
                        buf.push(',');
                    }
                    if self.json_stream {
                        let _ = write!(buf, r#"{{"value":{r}}}"#);
                    } else {
                        let _ = write!(buf, r#"{{"value":"{}"}}"#, BASE64.encode(r));
                    }
                }
                buf.push_str("]}");
            }
        }
    }

    /// True when the answer acknowledges the request.
    fn accepted(&self, status: u16, body: &[u8]) -> bool {
        let contains = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
        match self.face {
            BenchFace::Inlong => status == 200 && contains(br#""code":"0""#),
            BenchFace::Ckafka => status == 200 && contains(br#""MessageId""#),
            _ => (200..300).contains(&status),
        }
    }
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// Makes the distinct records of a run.
#[derive(Debug, Clone)]
struct RecordMaker {
    run: String,
    size: usize,
}

impl RecordMaker {
    /// Writes record `seq` of `worker` into `text` (reusing its buffer).
    fn write_record(&self, text: &mut String, worker: usize, seq: u64) {
        text.clear();
        let _ = write!(
            text,
            r#"{{"bench":"{}","w":{worker},"n":{seq},"pad":""#,
            self.run
        );
        let pad = self.size.saturating_sub(text.len() + 2);
        text.extend(std::iter::repeat_n('x', pad));
        text.push_str("\"}");
    }
}

/// The identity of a bench record read back.
#[derive(Debug, Deserialize)]
struct Identity {
    bench: String,
    w: usize,
    n: u64,
}

/// What one worker saw.
#[derive(Debug)]
struct WorkerReport {
    /// The worker's number (its records' `w`).
    id: usize,
    latency: Histogram<u64>,
    ok: u64,
    failed: BTreeMap<String, u64>,
    /// Per request index: acknowledged.
    acked: Vec<bool>,
    body_bytes: u64,
}

/// Counters the progress bar reads.
#[derive(Debug, Default)]
struct Live {
    ok: AtomicU64,
    failed: AtomicU64,
    claimed: AtomicU64,
    stop: AtomicBool,
}

/// One connection, reopened after a failure.
struct Connection {
    authority: String,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    async fn sender(&mut self) -> anyhow::Result<&mut SendRequest<Full<Bytes>>> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let tcp = tokio::net::TcpStream::connect(&self.authority)
                .await
                .with_context(|| format!("cannot connect to {}", self.authority))?;
            tcp.set_nodelay(true).ok();
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().context("no connection")?;
        sender.ready().await?;
        Ok(sender)
    }

    async fn send(&mut self, request: Request<Full<Bytes>>) -> anyhow::Result<(u16, Bytes)> {
        let result = async {
            let response = self.sender().await?.send_request(request).await?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, anyhow::Error>((status, body))
        }
        .await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }
}

/// How long a worker runs.
#[derive(Debug, Clone, Copy)]
enum Until {
    Deadline(Instant),
    Count(u64),
}

struct Worker {
    id: usize,
    target: Arc<Target>,
    maker: RecordMaker,
    records_per_request: usize,
    until: Until,
    /// Time between two sends of this worker under `--rate`.
    interval: Option<Duration>,
    live: Arc<Live>,
    /// The producer id prefix of this run, unless `--no-sequences`.
    producer: Option<Arc<str>>,
}

impl Worker {
    async fn run(self) -> WorkerReport {
        let mut report = WorkerReport {
            id: self.id,
            latency: latency_histogram(),
            ok: 0,
            failed: BTreeMap::new(),
            acked: Vec::new(),
            body_bytes: 0,
        };
        let mut conn = Connection {
            authority: self.target.authority.clone(),
            sender: None,
        };
        let started = Instant::now();
        // Buffers reused across requests: the generator's own cost per
        // request stays small next to the node's.
        let mut records =
            vec![String::with_capacity(self.maker.size + 64); self.records_per_request];
        let mut body = String::with_capacity(self.records_per_request * (self.maker.size + 16));
        let mut index: u64 = 0;
        // After a failed request the worker is a new producer: the node
        // may or may not have stored it, so its sequence is not reused.
        let mut lane = 0u32;
        let mut sequence = 0u64;
        loop {
            if self.live.stop.load(Ordering::Relaxed) {
                break;
            }
            match self.until {
                Until::Deadline(end) if Instant::now() >= end => break,
                Until::Count(total)
                    if self.live.claimed.fetch_add(1, Ordering::Relaxed) >= total =>
                {
                    break;
                }
                _ => {}
            }
            let scheduled = match self.interval {
                Some(every) => {
                    let at = started + every.mul_f64(index as f64);
                    tokio::time::sleep_until(at.into()).await;
                    at
                }
                None => Instant::now(),
            };
            let first = index * self.records_per_request as u64;
            for (seq, record) in (first..).zip(records.iter_mut()) {
                self.maker.write_record(record, self.id, seq);
            }
            self.target.body(&records, &mut body);
            let len = body.len() as u64;
            let mut request = Request::builder()
                .method(self.target.method.clone())
                .uri(self.target.uri.clone())
                .header(HOST, &self.target.authority)
                .header(CONTENT_TYPE, self.target.content_type);
            if let Some(action) = self.target.action {
                request = request.header("x-tc-action", action);
            }
            if let Some(producer) = &self.producer {
                request = request
                    .header(
                        "intake-producer-id",
                        format!("{producer}-{}-{lane}", self.id),
                    )
                    .header("intake-sequence", sequence);
            }
            let payload = Bytes::from(std::mem::replace(
                &mut body,
                String::with_capacity(len as usize),
            ));
            let Ok(request) = request.body(Full::new(payload)) else {
                break;
            };
            let outcome = conn.send(request).await;
            let took = scheduled.elapsed().as_micros().max(1) as u64;
            let acked = match outcome {
                Ok((status, answer)) if self.target.accepted(status, &answer) => true,
                Ok((status, _)) => {
                    *report.failed.entry(format!("http {status}")).or_default() += 1;
                    false
                }
                Err(e) => {
                    *report.failed.entry(format!("{e:#}")).or_default() += 1;
                    false
                }
            };
            report.latency.saturating_record(took);
            report.acked.push(acked);
            if acked {
                report.ok += 1;
                report.body_bytes += len;
                self.live.ok.fetch_add(1, Ordering::Relaxed);
                sequence += 1;
            } else {
                self.live.failed.fetch_add(1, Ordering::Relaxed);
                lane += 1;
                sequence = 0;
            }
            index += 1;
        }
        report
    }
}

/// Latencies in microseconds from 1 µs to an hour, 3 significant figures
/// (longer ones count as an hour).
fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .unwrap_or_else(|e| unreachable!("valid histogram bounds: {e}"))
}

/// The summary of a run.
#[derive(Debug, Serialize)]
struct Summary {
    url: String,
    face: BenchFace,
    stream: String,
    concurrency: usize,
    records_per_request: usize,
    record_size: usize,
    elapsed_s: f64,
    requests: u64,
    failed: u64,
    failures: BTreeMap<String, u64>,
    records: u64,
    bytes: u64,
    requests_per_s: f64,
    records_per_s: f64,
    mb_per_s: f64,
    latency_ms: Latency,
    #[serde(skip_serializing_if = "Option::is_none")]
    verify: Option<Verify>,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Serialize)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    #[serde(rename = "p99.9")]
    p99_9: f64,
    max: f64,
}

/// What `--verify` found.
#[derive(Debug, Serialize)]
struct Verify {
    /// Acknowledged records.
    acknowledged: u64,
    /// Acknowledged records found in the stream.
    found: u64,
    /// Acknowledged records not in the stream (must be 0).
    missing: u64,
    /// Records of this run in the stream whose request was not
    /// acknowledged (a timeout or a lost answer; allowed).
    unacknowledged_present: u64,
    /// Records of this run found more than once.
    duplicates: u64,
    ok: bool,
}

async fn bench(url: &str, args: BenchArgs) -> anyhow::Result<bool> {
    let client = Client::new(url, None)?;
    let view: StreamView = client
        .json(
            client
                .http()
                .get(client.url(&format!("/v1/streams/{}", args.stream))),
        )
        .await
        .with_context(|| format!("cannot look up stream {:?}", args.stream))?;
    let target = Arc::new(Target::new(url, &args, &view.definition)?);
    let start_offsets: Vec<u64> = view.status.iter().map(|p| p.next_offset).collect();
    let maker = RecordMaker {
        run: format!(
            "{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        ),
        size: args.record_size,
    };
    let live = Arc::new(Live::default());
    let producer: Option<Arc<str>> =
        (!args.no_sequences).then(|| Arc::from(format!("bench-{}", uuid::Uuid::new_v4().simple())));
    let duration = args.duration.unwrap_or(Duration::from_secs(10));
    let started = Instant::now();
    let until = match args.count {
        Some(n) => Until::Count(n),
        None => Until::Deadline(started + duration),
    };
    let interval = args
        .rate
        .map(|rate| Duration::from_secs_f64(args.concurrency as f64 / rate));
    let progress = progress_bar(&args, duration);
    let ticker = tokio::spawn(tick(
        progress.clone(),
        Arc::clone(&live),
        args.records_per_request,
        until,
    ));
    let mut workers = tokio::task::JoinSet::new();
    for id in 0..args.concurrency {
        workers.spawn(
            Worker {
                id,
                target: Arc::clone(&target),
                maker: maker.clone(),
                records_per_request: args.records_per_request,
                until,
                interval,
                live: Arc::clone(&live),
                producer: producer.clone(),
            }
            .run(),
        );
    }
    let mut reports = Vec::new();
    while let Some(report) = workers.join_next().await {
        reports.push(report.context("a worker panicked")?);
    }
    reports.sort_by_key(|r| r.id);
    let elapsed = started.elapsed().as_secs_f64();
    live.stop.store(true, Ordering::Relaxed);
    ticker.abort();
    progress.finish_and_clear();

    let mut latency = latency_histogram();
    let mut failures = BTreeMap::new();
    let (mut ok, mut bytes) = (0u64, 0u64);
    for r in &reports {
        latency.add(&r.latency).context("merging latencies")?;
        ok += r.ok;
        bytes += r.body_bytes;
        for (k, v) in &r.failed {
            *failures.entry(k.clone()).or_default() += v;
        }
    }
    let failed = failures.values().sum();
    let records = ok * args.records_per_request as u64;
    let ms = |us: u64| us as f64 / 1000.0;
    let verify = if args.verify {
        Some(
            verify(
                &client,
                &args,
                &view.definition,
                &start_offsets,
                &maker,
                &reports,
            )
            .await?,
        )
    } else {
        None
    };
    let summary = Summary {
        url: url.to_owned(),
        face: args.face,
        stream: args.stream.clone(),
        concurrency: args.concurrency,
        records_per_request: args.records_per_request,
        record_size: args.record_size,
        elapsed_s: elapsed,
        requests: ok,
        failed,
        failures,
        records,
        bytes,
        requests_per_s: ok as f64 / elapsed,
        records_per_s: records as f64 / elapsed,
        mb_per_s: bytes as f64 / elapsed / 1e6,
        latency_ms: Latency {
            p50: ms(latency.value_at_quantile(0.5)),
            p90: ms(latency.value_at_quantile(0.9)),
            p99: ms(latency.value_at_quantile(0.99)),
            p99_9: ms(latency.value_at_quantile(0.999)),
            max: ms(latency.max()),
        },
        verify,
    };
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print_summary(&summary);
    }
    Ok(summary.verify.as_ref().is_none_or(|v| v.ok))
}

fn progress_bar(args: &BenchArgs, duration: Duration) -> ProgressBar {
    let bar = match args.count {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new(duration.as_millis() as u64),
    };
    let template = if args.count.is_some() {
        "{bar:30} {pos}/{len} requests  {msg}"
    } else {
        "{bar:30} {elapsed}/{duration}  {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// Updates the progress bar with the live rate four times a second.
async fn tick(bar: ProgressBar, live: Arc<Live>, per_request: usize, until: Until) {
    let started = Instant::now();
    let mut every = tokio::time::interval(Duration::from_millis(250));
    let (mut last_ok, mut last_at) = (0u64, Instant::now());
    loop {
        every.tick().await;
        let ok = live.ok.load(Ordering::Relaxed);
        let failed = live.failed.load(Ordering::Relaxed);
        let rate = (ok - last_ok) as f64 / last_at.elapsed().as_secs_f64().max(1e-3);
        (last_ok, last_at) = (ok, Instant::now());
        match until {
            Until::Count(_) => bar.set_position(ok + failed),
            Until::Deadline(_) => bar.set_position(started.elapsed().as_millis() as u64),
        }
        bar.set_message(format!(
            "{rate:.0} req/s  {:.0} records/s  {failed} failed",
            rate * per_request as f64
        ));
    }
}

fn print_summary(s: &Summary) {
    println!(
        "intake bench: {:?} face, {} stream {:?}: {} connections, {} record(s) of {} bytes per request, {:.1} s",
        s.face, s.url, s.stream, s.concurrency, s.records_per_request, s.record_size, s.elapsed_s
    );
    println!(
        "requests    {} acknowledged, {} failed",
        s.requests, s.failed
    );
    for (why, n) in &s.failures {
        println!("            {n} × {why}");
    }
    println!(
        "throughput  {:.0} requests/s, {:.0} records/s, {:.2} MB/s",
        s.requests_per_s, s.records_per_s, s.mb_per_s
    );
    let l = &s.latency_ms;
    println!(
        "latency     p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms",
        l.p50, l.p90, l.p99, l.p99_9, l.max
    );
    if let Some(v) = &s.verify {
        println!(
            "verify      {} of {} acknowledged records read back, {} missing, {} duplicates, {} unacknowledged present: {}",
            v.found,
            v.acknowledged,
            v.missing,
            v.duplicates,
            v.unacknowledged_present,
            if v.ok { "ok" } else { "FAILED" }
        );
    }
}

/// Reads every partition from where it stood before the run and checks
/// every acknowledged record of this run is there.
async fn verify(
    client: &Client,
    args: &BenchArgs,
    def: &StreamDefinition,
    start_offsets: &[u64],
    maker: &RecordMaker,
    reports: &[WorkerReport],
) -> anyhow::Result<Verify> {
    // seen[worker][seq]: times found.
    let per_request = args.records_per_request;
    let mut seen: Vec<Vec<u8>> = reports
        .iter()
        .map(|r| vec![0u8; r.acked.len() * per_request])
        .collect();
    let json = def.format.stores_json();
    let (mut unacked_present, mut strangers) = (0u64, 0u64);
    for (partition, &from) in start_offsets.iter().enumerate() {
        let mut offset = from;
        loop {
            let path = format!(
                "/v1/streams/{}/partitions/{partition}/records?offset={offset}&limit=10000",
                args.stream
            );
            let page: ReadResponse = client
                .json(client.http().get(client.url(&path)))
                .await
                .with_context(|| format!("reading partition {partition} at {offset}"))?;
            if page.records.is_empty() {
                break;
            }
            for record in &page.records {
                let text = if json {
                    record.value.get().to_owned()
                } else {
                    let b64: String = serde_json::from_str(record.value.get())?;
                    String::from_utf8_lossy(&BASE64.decode(b64)?).into_owned()
                };
                let Ok(id) = serde_json::from_str::<Identity>(&text) else {
                    strangers += 1;
                    continue;
                };
                if id.bench != maker.run {
                    strangers += 1;
                    continue;
                }
                match seen.get_mut(id.w).and_then(|s| s.get_mut(id.n as usize)) {
                    Some(count) => *count = count.saturating_add(1),
                    None => unacked_present += 1,
                }
            }
            offset = page.next_offset;
        }
    }
    let (mut acknowledged, mut found, mut duplicates) = (0u64, 0u64, 0u64);
    for (report, seen) in reports.iter().zip(&seen) {
        for (index, &acked) in report.acked.iter().enumerate() {
            for i in 0..per_request {
                let count = seen[index * per_request + i];
                if count > 1 {
                    duplicates += u64::from(count - 1);
                }
                if acked {
                    acknowledged += 1;
                    if count > 0 {
                        found += 1;
                    }
                } else if count > 0 {
                    unacked_present += 1;
                }
            }
        }
    }
    tracing::debug!(strangers, "records of other writers skipped");
    let missing = acknowledged - found;
    Ok(Verify {
        acknowledged,
        found,
        missing,
        unacknowledged_present: unacked_present,
        duplicates,
        ok: missing == 0 && duplicates == 0,
    })
}
