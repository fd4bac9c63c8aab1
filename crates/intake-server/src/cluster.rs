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
use intake_format::cluster::{Heartbeat, NodeList, NodeStatus};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::error::ApiError;
use crate::extract::AdminJson;
use crate::state::AppState;

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
        let mut ticker = tokio::time::interval(interval);
        let mut synced_once = false;
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
                .load(&state.node, state.limits.max_concurrent_requests);
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
            match fetch_streams(&http, &base).await {
                Ok(list) => {
                    let defs = list.streams.into_iter().map(|v| v.definition).collect();
                    match state.node.reconcile(defs, true).await {
                        Ok(()) if !synced_once => {
                            synced_once = true;
                            tracing::info!(manager = %base, "streams synced from the manager");
                        }
                        Ok(()) => {}
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

async fn fetch_streams(http: &reqwest::Client, base: &str) -> reqwest::Result<StreamList> {
    http.get(format!("{base}/v1/streams"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
}
