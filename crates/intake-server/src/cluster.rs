//! Cluster membership: the manager's native routes, and the task by which
//! a node joins a manager (heartbeats with its real load, and its streams
//! synced from the manager's catalog).
//!
//! - `POST /v1/cluster/heartbeat` with [`Heartbeat`] → `{"id": N, "heartbeat_interval_ms": I}`
//! - `GET /v1/cluster/nodes` → [`NodeList`], online or not
//!
//! Both are served only when the node is a manager (`[cluster] manager`).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::Json;
use axum::routing::{get, post};
use intake_core::NodeRegistry;
use intake_format::api::StreamList;
use intake_format::cluster::{Heartbeat, MAX_LOAD, NodeList, NodeStatus};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::error::ApiError;
use crate::extract::AdminJson;
use crate::state::{AppState, JoinedCluster};

/// The current time in Unix milliseconds.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The node registry when this node is a manager.
pub(crate) fn manager(state: &AppState) -> Option<&Arc<NodeRegistry>> {
    state.manager.get()
}

/// The manager's native routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/cluster/heartbeat", post(heartbeat))
        .route("/v1/cluster/nodes", get(nodes))
}

fn not_a_manager(path: &str) -> ApiError {
    ApiError::RouteNotFound {
        method: "GET".into(),
        path: format!("{path} (this node is not a manager)"),
    }
}

async fn heartbeat(
    State(state): State<AppState>,
    AdminJson(beat): AdminJson<Heartbeat>,
) -> Result<Json<Value>, ApiError> {
    let registry = manager(&state).ok_or_else(|| not_a_manager("/v1/cluster/heartbeat"))?;
    if beat.ip.is_empty() || beat.port == 0 {
        return Err(ApiError::BadRequest(
            "heartbeat needs an ip and a port".into(),
        ));
    }
    let id = registry.report(&beat, now_ms());
    Ok(Json(
        json!({"id": id, "heartbeat_interval_ms": registry.interval_ms()}),
    ))
}

async fn nodes(State(state): State<AppState>) -> Result<Json<NodeList>, ApiError> {
    let registry = manager(&state).ok_or_else(|| not_a_manager("/v1/cluster/nodes"))?;
    Ok(Json(NodeList {
        nodes: registry.nodes(now_ms()),
    }))
}

/// Joins the manager at `manager_url`: every `interval`, sends a heartbeat
/// advertising `advertise` (`HOST:PORT`) with the node's current load, and
/// syncs the node's streams from the manager's catalog (kept in the node's
/// own catalog, so a restart without the manager serves the same streams).
/// When the node starts draining it reports `draining` once, so the
/// manager stops listing it at once, and the task ends. Failures are
/// logged and retried at the next interval.
pub fn spawn_membership(
    state: AppState,
    manager_url: String,
    advertise: String,
    interval: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let http = reqwest::Client::builder()
            .timeout(interval.max(Duration::from_secs(1)))
            .build()
            .unwrap_or_default();
        let base = manager_url.trim_end_matches('/').to_owned();
        let Some((ip, port)) = advertise.rsplit_once(':').and_then(|(h, p)| {
            Some((
                h.trim_matches(['[', ']']).to_owned(),
                p.parse::<u16>().ok()?,
            ))
        }) else {
            tracing::error!(%advertise, "advertise address is not HOST:PORT; not joining");
            return;
        };
        *state.joined.write() = Some(JoinedCluster {
            manager_url: base.clone(),
            nodes: Vec::new(),
            read_at_ms: 0,
        });
        let mut ticker = tokio::time::interval(interval);
        let mut synced_once = false;
        let mut cpu = CpuUse::default();
        loop {
            tokio::select! {
                () = state.draining.cancelled() => {
                    let beat = Heartbeat { ip, port, protocol: "HTTP".into(), load: 0, status: NodeStatus::Draining };
                    if let Err(e) = send_heartbeat(&http, &base, &beat).await {
                        tracing::warn!(error = %e, "could not tell the manager this node is draining");
                    }
                    return;
                }
                _ = ticker.tick() => {}
            }
            let load = state
                .metrics
                .load(&state.node, state.limits.max_concurrent_requests)
                .max((cpu.sample() * f64::from(MAX_LOAD)).round() as u32)
                .min(MAX_LOAD);
            let beat = Heartbeat {
                ip: ip.clone(),
                port,
                protocol: "HTTP".into(),
                load,
                status: NodeStatus::Online,
            };
            if let Err(e) = send_heartbeat(&http, &base, &beat).await {
                tracing::warn!(manager = %base, error = %e, "heartbeat failed");
            }
            match fetch_nodes(&http, &base).await {
                Ok(list) => {
                    if let Some(joined) = state.joined.write().as_mut() {
                        joined.nodes = list.nodes;
                        joined.read_at_ms = now_ms();
                    }
                }
                Err(e) => {
                    tracing::debug!(manager = %base, error = %e, "cannot read the manager's nodes")
                }
            }
            match fetch_streams(&http, &base).await {
                Ok(list) => {
                    let defs = list.streams.into_iter().map(|v| v.definition).collect();
                    match state.node.reconcile_from_manager(defs).await {
                        Ok(false) => {
                            tracing::warn!(manager = %base, "the manager lists no stream; keeping this node's streams (delete them on the node itself)");
                        }
                        Ok(true) if !synced_once => {
                            synced_once = true;
                            tracing::info!(manager = %base, "streams synced from the manager");
                        }
                        Ok(true) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "syncing streams from the manager failed")
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(manager = %base, error = %e, "cannot read the manager's streams")
                }
            }
        }
    })
}

async fn send_heartbeat(
    http: &reqwest::Client,
    base: &str,
    beat: &Heartbeat,
) -> reqwest::Result<()> {
    http.post(format!("{base}/v1/cluster/heartbeat"))
        .json(beat)
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

async fn fetch_nodes(http: &reqwest::Client, base: &str) -> reqwest::Result<NodeList> {
    http.get(format!("{base}/v1/cluster/nodes"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
}

async fn fetch_streams(http: &reqwest::Client, base: &str) -> reqwest::Result<StreamList> {
    http.get(format!("{base}/v1/streams"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
}

/// The process's CPU use between two samples, as a share of every core
/// (Linux `/proc/self/stat`; 0 elsewhere).
#[derive(Debug, Default)]
struct CpuUse {
    last: Option<(std::time::Instant, u64)>,
}

impl CpuUse {
    /// Clock ticks per second of `/proc` (USER_HZ, 100 on Linux).
    const TICKS_PER_SECOND: f64 = 100.0;

    /// Share of all cores used since the previous call, 0.0–1.0.
    fn sample(&mut self) -> f64 {
        let Some(ticks) = process_cpu_ticks() else {
            return 0.0;
        };
        let now = std::time::Instant::now();
        let share = match self.last {
            Some((at, before)) => {
                let wall = now.duration_since(at).as_secs_f64();
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
                let used = ticks.saturating_sub(before) as f64 / Self::TICKS_PER_SECOND;
                if wall > 0.0 {
                    (used / wall / cores).clamp(0.0, 1.0)
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        self.last = Some((now, ticks));
        share
    }
}

/// User plus system CPU ticks of this process.
fn process_cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 11 and 12 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_use_is_a_share_between_zero_and_one() {
        let mut cpu = CpuUse::default();
        assert_eq!(cpu.sample(), 0.0, "the first sample has nothing to compare");
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < std::time::Duration::from_millis(200) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let share = cpu.sample();
        assert!(share > 0.0 && share <= 1.0, "{share}");
        assert!(process_cpu_ticks().is_some());
    }
}
