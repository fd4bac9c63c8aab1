//! `/metrics`: the node's figures in the Prometheus text format.
//!
//! Every node has its own recorder ([`Metrics`], in the shared state), never
//! the process-wide one: tests run many nodes in one process, and each must
//! count only its own traffic. Handles of the recorder go down to the log
//! (append and fsync latency, group-commit sizes, see
//! [`intake_core::Node::observe_logs`]).
//!
//! Traffic is counted by [`CountTraffic`], a layer around every route: it
//! learns the face from the path, and the stream, the records and the
//! refusal reason from what the handler notes on the way
//! ([`note_stream`], [`note_ingested`], [`note_refusal`]; calls outside a
//! counted request do nothing). The hot path touches only atomics; the
//! totals are copied into the Prometheus registry when it is scraped, along
//! with gauges read at that moment (offsets, queue depth, load).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use ::metrics::{Histogram, Key, Label, Metadata, Recorder, SharedString, Unit};
use axum::extract::State;
use axum::http::{HeaderValue, Method, Request, header};
use axum::response::{IntoResponse, Response};
use intake_core::{LogMetrics, Node};
use intake_format::api::StreamState;
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use parking_lot::{Mutex, RwLock};
use pin_project_lite::pin_project;
use serde::Serialize;
use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service};

use crate::faces::Face;
use crate::state::AppState;

/// Latency buckets, in seconds (100 µs to 10 s).
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Buckets for the appends of one group commit.
const GROUP_APPENDS_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];
/// Buckets for the bytes of one group commit.
const GROUP_BYTES_BUCKETS: &[f64] = &[
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
];

/// The faces, as metric labels; a [`Face`]'s index is its place here.
pub(crate) const FACE_LABELS: [&str; 6] = [
    "native",
    "inlong",
    "ckafka",
    "rest_proxy",
    "inlong_manager",
    "ekuiper_rest",
];

impl Face {
    fn index(self) -> usize {
        match self {
            Self::Native => 0,
            Self::Inlong => 1,
            Self::Ckafka => 2,
            Self::RestProxy => 3,
            Self::InlongManager => 4,
            Self::EkuiperRest => 5,
        }
    }
}

/// Counts of one stream on one face.
#[derive(Debug, Default)]
struct Traffic {
    requests: AtomicU64,
    records: AtomicU64,
    bytes: AtomicU64,
}

/// Counts of one stream (or of requests that named none, under "").
#[derive(Debug, Default)]
struct StreamTraffic {
    faces: [Traffic; FACE_LABELS.len()],
    /// (face index, reason) → refused requests.
    refusals: Mutex<BTreeMap<(usize, &'static str), u64>>,
}

/// A node's metrics: its own Prometheus recorder and the traffic counts.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    streams: RwLock<HashMap<Arc<str>, Arc<StreamTraffic>>>,
    request_seconds: [Histogram; FACE_LABELS.len()],
    in_flight: AtomicI64,
    connections_open: AtomicI64,
    connections_total: AtomicU64,
    started: Instant,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("in_flight", &self.in_flight)
            .field("connections_open", &self.connections_open)
            .finish_non_exhaustive()
    }
}

/// Every metric: name, type, unit and help text (the table of docs/operations.md is
/// written from this list).
const DESCRIPTIONS: &[(&str, &str, Option<Unit>, &str)] = &[
    (
        "intake_requests_total",
        "counter",
        None,
        "Requests answered by a face, by face and stream (stream is empty when the request named no existing stream).",
    ),
    (
        "intake_records_total",
        "counter",
        None,
        "Records acknowledged as durable, by face and stream.",
    ),
    (
        "intake_bytes_total",
        "counter",
        Some(Unit::Bytes),
        "Payload bytes of acknowledged requests, by face and stream (the body for native pushes, the record values for faces that split records).",
    ),
    (
        "intake_refusals_total",
        "counter",
        None,
        "Requests refused, by face, stream and reason (the native API's error code, e.g. stream_paused, invalid_record, overloaded).",
    ),
    (
        "intake_request_seconds",
        "histogram",
        Some(Unit::Seconds),
        "Time from a request's arrival to its answer, by face.",
    ),
    (
        "intake_log_append_seconds",
        "histogram",
        Some(Unit::Seconds),
        "Time of one append to a partition, queueing, write and fsync included.",
    ),
    (
        "intake_log_fsync_seconds",
        "histogram",
        Some(Unit::Seconds),
        "Time of one fdatasync of the journal, or of the write and fdatasync of a group written straight to a segment.",
    ),
    (
        "intake_log_group_appends",
        "histogram",
        None,
        "Appends, of any stream, written together by one group commit.",
    ),
    (
        "intake_log_group_bytes",
        "histogram",
        Some(Unit::Bytes),
        "Bytes written by one group commit.",
    ),
    (
        "intake_log_pending_bytes",
        "gauge",
        Some(Unit::Bytes),
        "Bytes of appends waiting for the writer, summed over a stream's partitions.",
    ),
    (
        "intake_partition_start_offset",
        "gauge",
        None,
        "Oldest retained offset, by stream and partition.",
    ),
    (
        "intake_partition_next_offset",
        "gauge",
        None,
        "Offset the next record will get, by stream and partition.",
    ),
    (
        "intake_partition_size_bytes",
        "gauge",
        Some(Unit::Bytes),
        "Bytes on disk, by stream and partition.",
    ),
    (
        "intake_dedup_keys",
        "gauge",
        None,
        "Request keys (Idempotency-Key, producer sequences) a stream holds within its dedup_window.",
    ),
    (
        "intake_dedup_bytes",
        "gauge",
        Some(Unit::Bytes),
        "Approximate memory a stream's request keys take.",
    ),
    (
        "intake_dedup_producers",
        "gauge",
        None,
        "Producers whose Intake-Sequence a stream follows.",
    ),
    (
        "intake_dedup_replayed_total",
        "counter",
        None,
        "Requests answered with the answer of an earlier request with the same key (nothing written), by stream.",
    ),
    (
        "intake_dedup_key_reused_total",
        "counter",
        None,
        "Requests refused (422 idempotency_key_reused) for a key seen with a different request, by stream.",
    ),
    (
        "intake_dedup_evicted_keys_total",
        "counter",
        None,
        "Request keys dropped before their window ended because the stream held dedup_max_keys, by stream.",
    ),
    (
        "intake_stream_paused",
        "gauge",
        None,
        "1 while a stream is paused, else 0.",
    ),
    (
        "intake_sink_lag_records",
        "gauge",
        None,
        "Records stored but not yet acknowledged by a sink's broker, by stream, sink and kind.",
    ),
    (
        "intake_sink_lag_bytes",
        "gauge",
        Some(Unit::Bytes),
        "Estimated bytes of those records, by stream, sink and kind.",
    ),
    (
        "intake_sink_sent_total",
        "counter",
        None,
        "Records acknowledged by a sink's broker since the node started, by stream, sink and kind.",
    ),
    (
        "intake_sink_errors_total",
        "counter",
        None,
        "Failed sends of a sink (each retried with backoff), by stream, sink and kind.",
    ),
    (
        "intake_sink_skipped_records_total",
        "counter",
        None,
        "Records retention deleted before a sink forwarded them (only past its max_lag_bytes), by stream, sink and kind.",
    ),
    (
        "intake_sink_lag_limit_exceeded",
        "gauge",
        None,
        "1 while a sink is further behind than its max_lag_bytes (retention no longer waits for it), else 0.",
    ),
    (
        "intake_connections_open",
        "gauge",
        None,
        "HTTP connections open now.",
    ),
    (
        "intake_connections_total",
        "counter",
        None,
        "HTTP connections accepted since start.",
    ),
    (
        "intake_requests_in_flight",
        "gauge",
        None,
        "Requests being handled now.",
    ),
    (
        "intake_node_load",
        "gauge",
        None,
        "Load from 0 to 200 (InLong's scale): 200 times the fuller of in-flight requests over limits.max_concurrent_requests and the longest partition write queue over log.max_pending_bytes.",
    ),
    (
        "intake_uptime_seconds",
        "gauge",
        Some(Unit::Seconds),
        "Seconds since the node started.",
    ),
];

/// The description list, for the check that docs/operations.md has them.
pub fn metric_names() -> impl Iterator<Item = &'static str> {
    DESCRIPTIONS.iter().map(|(name, ..)| *name)
}

fn key(name: &'static str, labels: Vec<Label>) -> Key {
    Key::from_parts(name, labels)
}

fn metadata() -> Metadata<'static> {
    Metadata::new(module_path!(), ::metrics::Level::INFO, None)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh recorder with intake's histogram buckets and descriptions.
    pub fn new() -> Self {
        let builder = PrometheusBuilder::new();
        let builder = [
            ("intake_request_seconds", SECONDS_BUCKETS),
            ("intake_log_append_seconds", SECONDS_BUCKETS),
            ("intake_log_fsync_seconds", SECONDS_BUCKETS),
            ("intake_log_group_appends", GROUP_APPENDS_BUCKETS),
            ("intake_log_group_bytes", GROUP_BYTES_BUCKETS),
        ]
        .into_iter()
        .fold(builder, |b, (name, buckets)| {
            b.set_buckets_for_metric(Matcher::Full(name.into()), buckets)
                .unwrap_or_else(|_| PrometheusBuilder::new())
        });
        let recorder = builder.build_recorder();
        for (name, kind, unit, help) in DESCRIPTIONS {
            let help = SharedString::const_str(help);
            match *kind {
                "counter" => recorder.describe_counter((*name).into(), *unit, help),
                "gauge" => recorder.describe_gauge((*name).into(), *unit, help),
                _ => recorder.describe_histogram((*name).into(), *unit, help),
            }
        }
        let request_seconds = FACE_LABELS.map(|face| {
            recorder.register_histogram(
                &key("intake_request_seconds", vec![Label::new("face", face)]),
                &metadata(),
            )
        });
        let handle = recorder.handle();
        Self {
            recorder,
            handle,
            streams: RwLock::new(HashMap::new()),
            request_seconds,
            in_flight: AtomicI64::new(0),
            connections_open: AtomicI64::new(0),
            connections_total: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// The handles the node's log and its partitions record into: one set
    /// for the node, not one per stream (a node may hold thousands).
    pub fn log_metrics(&self) -> LogMetrics {
        let h = |name: &'static str| {
            self.recorder
                .register_histogram(&key(name, vec![]), &metadata())
        };
        LogMetrics {
            append_seconds: h("intake_log_append_seconds"),
            fsync_seconds: h("intake_log_fsync_seconds"),
            group_appends: h("intake_log_group_appends"),
            group_bytes: h("intake_log_group_bytes"),
        }
    }

    fn traffic(&self, stream: &str) -> Arc<StreamTraffic> {
        if let Some(t) = self.streams.read().get(stream) {
            return Arc::clone(t);
        }
        Arc::clone(self.streams.write().entry(Arc::from(stream)).or_default())
    }

    fn finish(&self, note: &RequestNote, elapsed: f64) {
        let face = note.face.get();
        let stream = note.stream.borrow();
        let traffic = self.traffic(stream.as_deref().unwrap_or(""));
        let counts = &traffic.faces[face.index()];
        counts.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(reason) = note.refusal.get() {
            *traffic
                .refusals
                .lock()
                .entry((face.index(), reason))
                .or_default() += 1;
        } else if note.records.get() > 0 {
            counts
                .records
                .fetch_add(note.records.get(), Ordering::Relaxed);
            counts.bytes.fetch_add(note.bytes.get(), Ordering::Relaxed);
        }
        self.request_seconds[face.index()].record(elapsed);
    }

    /// Time since the node started.
    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// HTTP connections open now.
    pub fn connections_open(&self) -> i64 {
        self.connections_open.load(Ordering::Relaxed)
    }

    /// Requests being handled now.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Load from 0 to 200: 200 times the fuller of the request limit and
    /// the longest partition write queue.
    pub fn load(&self, node: &Node, max_concurrent: usize) -> u32 {
        let requests = self.in_flight().max(0) as f64 / max_concurrent.max(1) as f64;
        let max_pending = node.config().log.max_pending_bytes.max(1) as f64;
        let queue = node
            .streams()
            .iter()
            .flat_map(|s| (0..s.partition_count()).filter_map(|p| s.partition(p).ok().cloned()))
            .map(|p| p.pending_bytes() as f64 / max_pending)
            .fold(0.0, f64::max);
        (requests.max(queue).min(1.0) * 200.0).round() as u32
    }

    /// Totals by stream, for the dashboard.
    pub fn stream_totals(&self) -> BTreeMap<String, StreamTotals> {
        self.streams
            .read()
            .iter()
            .map(|(name, t)| {
                let mut totals = StreamTotals::default();
                for (face, counts) in FACE_LABELS.iter().zip(&t.faces) {
                    let requests = counts.requests.load(Ordering::Relaxed);
                    if requests == 0 {
                        continue;
                    }
                    totals.requests += requests;
                    totals.records += counts.records.load(Ordering::Relaxed);
                    totals.bytes += counts.bytes.load(Ordering::Relaxed);
                    totals.faces.push((*face).to_owned());
                }
                for (&(_, reason), n) in t.refusals.lock().iter() {
                    *totals.refusals.entry(reason.to_owned()).or_default() += n;
                }
                (name.to_string(), totals)
            })
            .collect()
    }

    /// Copies the counts and the gauges of this moment into the registry
    /// and renders it.
    pub fn render(&self, node: &Node, max_concurrent: usize) -> String {
        let r = &self.recorder;
        let m = metadata();
        let counter = |name, labels: Vec<Label>, v: u64| {
            r.register_counter(&key(name, labels), &m).absolute(v);
        };
        let gauge = |name, labels: Vec<Label>, v: f64| {
            r.register_gauge(&key(name, labels), &m).set(v);
        };
        for (stream, t) in self.streams.read().iter() {
            for (face, counts) in FACE_LABELS.iter().zip(&t.faces) {
                let requests = counts.requests.load(Ordering::Relaxed);
                if requests == 0 {
                    continue;
                }
                let labels = || {
                    vec![
                        Label::new("face", *face),
                        Label::new("stream", stream.to_string()),
                    ]
                };
                counter("intake_requests_total", labels(), requests);
                counter(
                    "intake_records_total",
                    labels(),
                    counts.records.load(Ordering::Relaxed),
                );
                counter(
                    "intake_bytes_total",
                    labels(),
                    counts.bytes.load(Ordering::Relaxed),
                );
            }
            for (&(face, reason), &n) in t.refusals.lock().iter() {
                counter(
                    "intake_refusals_total",
                    vec![
                        Label::new("face", FACE_LABELS[face]),
                        Label::new("stream", stream.to_string()),
                        Label::new("reason", reason),
                    ],
                    n,
                );
            }
        }
        for stream in node.streams() {
            let name = stream.name().to_owned();
            let mut pending = 0u64;
            for status in stream.status() {
                let labels = || {
                    vec![
                        Label::new("stream", name.clone()),
                        Label::new("partition", status.partition.to_string()),
                    ]
                };
                gauge(
                    "intake_partition_start_offset",
                    labels(),
                    status.start_offset as f64,
                );
                gauge(
                    "intake_partition_next_offset",
                    labels(),
                    status.next_offset as f64,
                );
                gauge(
                    "intake_partition_size_bytes",
                    labels(),
                    status.size_bytes as f64,
                );
                if let Ok(p) = stream.partition(status.partition) {
                    pending += p.pending_bytes();
                }
            }
            let stream_label = || vec![Label::new("stream", name.clone())];
            gauge("intake_log_pending_bytes", stream_label(), pending as f64);
            let dedup = stream.dedup_counts();
            gauge("intake_dedup_keys", stream_label(), dedup.keys as f64);
            gauge("intake_dedup_bytes", stream_label(), dedup.bytes as f64);
            gauge(
                "intake_dedup_producers",
                stream_label(),
                dedup.producers as f64,
            );
            counter(
                "intake_dedup_replayed_total",
                stream_label(),
                dedup.replayed,
            );
            counter(
                "intake_dedup_key_reused_total",
                stream_label(),
                dedup.reused,
            );
            counter(
                "intake_dedup_evicted_keys_total",
                stream_label(),
                dedup.evicted,
            );
            let paused = stream.state() == StreamState::Paused;
            gauge(
                "intake_stream_paused",
                stream_label(),
                if paused { 1.0 } else { 0.0 },
            );
            for sink in stream.sinks().map(|s| s.status()).unwrap_or_default() {
                let labels = || {
                    vec![
                        Label::new("stream", name.clone()),
                        Label::new("sink", sink.name.clone()),
                        Label::new("kind", sink.kind.clone()),
                    ]
                };
                gauge("intake_sink_lag_records", labels(), sink.lag_records as f64);
                gauge("intake_sink_lag_bytes", labels(), sink.lag_bytes as f64);
                counter("intake_sink_sent_total", labels(), sink.sent);
                counter("intake_sink_errors_total", labels(), sink.errors);
                counter(
                    "intake_sink_skipped_records_total",
                    labels(),
                    sink.skipped_records,
                );
                gauge(
                    "intake_sink_lag_limit_exceeded",
                    labels(),
                    if sink.lag_limit_exceeded { 1.0 } else { 0.0 },
                );
            }
        }
        gauge(
            "intake_connections_open",
            vec![],
            self.connections_open.load(Ordering::Relaxed) as f64,
        );
        counter(
            "intake_connections_total",
            vec![],
            self.connections_total.load(Ordering::Relaxed),
        );
        gauge("intake_requests_in_flight", vec![], self.in_flight() as f64);
        gauge(
            "intake_node_load",
            vec![],
            f64::from(self.load(node, max_concurrent)),
        );
        gauge(
            "intake_uptime_seconds",
            vec![],
            self.started.elapsed().as_secs_f64(),
        );
        self.handle.render()
    }

    /// Drains histogram samples into their buckets so memory stays bounded
    /// between scrapes.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Counts a connection as open until the returned guard is dropped.
    pub(crate) fn connection_opened(self: &Arc<Self>) -> ConnectionGuard {
        self.connections_total.fetch_add(1, Ordering::Relaxed);
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(Arc::clone(self))
    }
}

/// Counts one open connection while it lives.
#[derive(Debug)]
pub(crate) struct ConnectionGuard(Arc<Metrics>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the dashboard shows of a stream's traffic since start.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamTotals {
    /// Requests on every face.
    pub requests: u64,
    /// Records acknowledged.
    pub records: u64,
    /// Payload bytes acknowledged.
    pub bytes: u64,
    /// Refused requests by reason.
    pub refusals: BTreeMap<String, u64>,
    /// Faces that carried traffic.
    pub faces: Vec<String>,
}

/// What the handler of one request tells the counting layer.
#[derive(Debug)]
struct RequestNote {
    face: Cell<Face>,
    stream: RefCell<Option<Arc<str>>>,
    records: Cell<u64>,
    bytes: Cell<u64>,
    refusal: Cell<Option<&'static str>>,
}

tokio::task_local! {
    static REQUEST: RequestNote;
}

/// The request names this stream.
pub(crate) fn note_stream(stream: &str) {
    let _ = REQUEST.try_with(|note| {
        let mut current = note.stream.borrow_mut();
        if current.as_deref() != Some(stream) {
            *current = Some(Arc::from(stream));
        }
    });
}

/// The request's records were acknowledged.
pub(crate) fn note_ingested(records: u64, bytes: u64) {
    let _ = REQUEST.try_with(|note| {
        note.records.set(note.records.get() + records);
        note.bytes.set(note.bytes.get() + bytes);
    });
}

/// The request was refused for `reason` (a snake_case code).
pub(crate) fn note_refusal(reason: &'static str) {
    let _ = REQUEST.try_with(|note| note.refusal.set(Some(reason)));
}

/// The request belongs to `face` whatever its path says.
#[allow(dead_code, reason = "for faces served on paths of their own choosing")]
pub(crate) fn note_face(face: Face) {
    let _ = REQUEST.try_with(|note| note.face.set(face));
}

/// True for requests that are not traffic: reads (GET and HEAD, except
/// InLong's GET report), and the InLong heartbeat.
fn is_uncounted(method: &Method, path: &str) -> bool {
    let read = *method == Method::GET || *method == Method::HEAD;
    (read && path != "/dataproxy/message") || path == "/dataproxy/heartbeat"
}

/// Layer of [`CountTraffic`].
#[derive(Debug, Clone)]
pub(crate) struct CountTrafficLayer {
    pub(crate) metrics: Arc<Metrics>,
}

impl<S> Layer<S> for CountTrafficLayer {
    type Service = CountTraffic<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountTraffic {
            inner,
            metrics: Arc::clone(&self.metrics),
        }
    }
}

/// Counts every request but reads (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct CountTraffic<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B> Service<Request<B>> for CountTraffic<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Counted<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if is_uncounted(req.method(), req.uri().path()) {
            return Counted::Plain {
                inner: self.inner.call(req),
            };
        }
        let note = RequestNote {
            face: Cell::new(Face::of(req.uri().path())),
            stream: RefCell::new(None),
            records: Cell::new(0),
            bytes: Cell::new(0),
            refusal: Cell::new(None),
        };
        self.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        Counted::Scoped {
            inner: REQUEST.scope(note, self.inner.call(req)),
            done: InFlight(Some(Arc::clone(&self.metrics))),
            started: Instant::now(),
        }
    }
}

/// Takes a request off the in-flight count when it ends, answered or not.
#[derive(Debug)]
pub(crate) struct InFlight(Option<Arc<Metrics>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(metrics) = self.0.take() {
            metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

pin_project! {
    /// The future of a [`CountTraffic`] request.
    #[project = CountedProj]
    pub(crate) enum Counted<F> {
        /// A request that is not counted.
        Plain { #[pin] inner: F },
        /// A counted request.
        Scoped {
            #[pin] inner: TaskLocalFuture<RequestNote, F>,
            done: InFlight,
            started: Instant,
        },
    }
}

impl<F, E> Future for Counted<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            CountedProj::Plain { inner } => inner.poll(cx),
            CountedProj::Scoped {
                mut inner,
                done,
                started,
            } => {
                let output = std::task::ready!(inner.as_mut().poll(cx));
                if let (Some(note), Some(metrics)) = (inner.take_value(), done.0.as_ref()) {
                    metrics.finish(&note, started.elapsed().as_secs_f64());
                }
                if let Some(metrics) = done.0.take() {
                    metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
                }
                Poll::Ready(output)
            }
        }
    }
}

/// `GET /metrics`: every metric in Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "health", security(()),
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain", body = String)))]
pub(crate) async fn scrape(State(state): State<AppState>) -> Response {
    let text = state
        .metrics
        .render(&state.node, state.limits.max_concurrent_requests);
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
