//! The web dashboard at `/`: one page of plain HTML, CSS and JavaScript
//! embedded in the binary (no CDN, nothing to install), and the JSON it
//! polls, `GET /v1/overview`.
//!
//! The page shows every stream with its live request, record and byte
//! rates (differences between two polls of the totals), refusals by
//! reason, partitions with their offsets and write queues, the stream's
//! sinks with their lag, and its latest records (read through the native
//! read API); a button pauses or resumes a stream through
//! `PUT /v1/streams/{name}/state`. In a cluster it also lists the nodes
//! with their status and load: a manager from its own registry, a joined
//! node as it last read them from its manager.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use intake_format::api::{PartitionStatus, SinkStatus, StreamDefinition};
use intake_format::cluster::NodeView;
use intake_forward::StreamSinks;
use serde::Serialize;

use crate::metrics::StreamTotals;
use crate::state::AppState;

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const STYLE_CSS: &str = include_str!("dashboard/style.css");

/// The dashboard's routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| asset("text/html; charset=utf-8", INDEX_HTML)))
        .route(
            "/dashboard/app.js",
            get(|| asset("text/javascript; charset=utf-8", APP_JS)),
        )
        .route(
            "/dashboard/style.css",
            get(|| asset("text/css; charset=utf-8", STYLE_CSS)),
        )
        .route("/v1/overview", get(overview))
}

async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache")],
        body,
    )
}

/// `GET /v1/overview`: the node and every stream at this moment.
#[derive(Debug, Serialize)]
pub(crate) struct Overview {
    node: NodeOverview,
    streams: Vec<StreamOverview>,
    /// Absent when the node is neither a manager nor joined to one.
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<ClusterOverview>,
}

/// The cluster's nodes as this node knows them.
#[derive(Debug, Serialize)]
struct ClusterOverview {
    /// `manager` (this node keeps the registry) or `member` (it joined one).
    role: &'static str,
    /// The manager a member heartbeats to.
    #[serde(skip_serializing_if = "Option::is_none")]
    manager_url: Option<String>,
    /// When a member last read the node list (Unix ms; 0 before the first
    /// read); a manager's list is always current.
    read_at_ms: u64,
    /// Every node that ever reported, online or not.
    nodes: Vec<NodeView>,
}

fn cluster_overview(state: &AppState) -> Option<ClusterOverview> {
    let now = crate::cluster::now_ms();
    if let Some(registry) = crate::cluster::manager(state) {
        return Some(ClusterOverview {
            role: "manager",
            manager_url: None,
            read_at_ms: now,
            nodes: registry.nodes(now),
        });
    }
    state.joined.read().as_ref().map(|joined| ClusterOverview {
        role: "member",
        manager_url: Some(joined.manager_url.clone()),
        read_at_ms: joined.read_at_ms,
        nodes: joined.nodes.clone(),
    })
}

/// The node's figures.
#[derive(Debug, Serialize)]
struct NodeOverview {
    /// Milliseconds since the epoch when this was taken (rates divide by
    /// differences of it).
    now_ms: i64,
    uptime_s: f64,
    requests_in_flight: i64,
    connections_open: i64,
    /// 0–200, as `intake_node_load`.
    load: u32,
    draining: bool,
}

/// One stream: its definition, partitions and traffic since start.
#[derive(Debug, Serialize)]
struct StreamOverview {
    definition: StreamDefinition,
    partitions: Vec<PartitionOverview>,
    totals: StreamTotals,
    /// Each sink's progress (empty without sinks).
    sinks: Vec<SinkStatus>,
}

#[derive(Debug, Serialize)]
struct PartitionOverview {
    #[serde(flatten)]
    status: PartitionStatus,
    /// Bytes waiting for the writer.
    pending_bytes: u64,
}

async fn overview(State(state): State<AppState>) -> Json<Overview> {
    let metrics = &state.metrics;
    let mut totals = metrics.stream_totals();
    let streams = state
        .node
        .streams()
        .iter()
        .map(|s| StreamOverview {
            definition: s.definition().redacted(),
            partitions: s
                .status()
                .into_iter()
                .map(|status| PartitionOverview {
                    pending_bytes: s
                        .partition(status.partition)
                        .map_or(0, |p| p.pending_bytes()),
                    status,
                })
                .collect(),
            totals: totals.remove(s.name()).unwrap_or_default(),
            sinks: s.sinks().map(StreamSinks::status).unwrap_or_default(),
        })
        .collect();
    Json(Overview {
        node: NodeOverview {
            now_ms: intake_core::now_ms(),
            uptime_s: metrics.uptime().as_secs_f64(),
            requests_in_flight: metrics.in_flight(),
            connections_open: metrics.connections_open(),
            load: metrics.load(&state.node, state.limits.max_concurrent_requests),
            draining: state.draining.is_cancelled(),
        },
        streams,
        cluster: cluster_overview(&state),
    })
}
