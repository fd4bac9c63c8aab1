//! The sink routes of the native API:
//!
//! - `GET /v1/streams/{name}/sinks` → every sink's [`SinkStatus`]
//! - `POST /v1/streams/{name}/sinks/{sink}/pause` and `.../resume`
//! - `POST /v1/streams/{name}/sinks/{sink}/reset` with [`SinkReset`]
//!
//! Each change answers with the sink's status after it.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use intake_core::Stream;
use intake_format::api::{SinkReset, SinkStatus};
use intake_forward::{ForwardError, StreamSinks};

use crate::error::ApiError;
use crate::extract::{AdminJson, ApiPath};
use crate::state::AppState;

/// The sink routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/streams/{name}/sinks", get(list))
        .route("/v1/streams/{name}/sinks/{sink}/pause", post(pause))
        .route("/v1/streams/{name}/sinks/{sink}/resume", post(resume))
        .route("/v1/streams/{name}/sinks/{sink}/reset", post(reset))
}

async fn list(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Vec<SinkStatus>>, ApiError> {
    let stream = state.node.stream(&name)?;
    Ok(Json(
        stream.sinks().map(StreamSinks::status).unwrap_or_default(),
    ))
}

/// Runs `change` on sink `sink` of stream `name`, then reports it.
fn change_sink(
    state: &AppState,
    name: &str,
    sink: &str,
    change: impl FnOnce(&StreamSinks) -> Result<(), ForwardError>,
) -> Result<Json<SinkStatus>, ApiError> {
    let stream: std::sync::Arc<Stream> = state.node.stream(name)?;
    let not_found = || {
        ApiError::Core(intake_core::Error::Forward(ForwardError::SinkNotFound {
            name: sink.to_owned(),
        }))
    };
    let sinks = stream.sinks().ok_or_else(not_found)?;
    change(sinks).map_err(|e| ApiError::Core(e.into()))?;
    sinks
        .status()
        .into_iter()
        .find(|s| s.name == sink)
        .map(Json)
        .ok_or_else(not_found)
}

async fn pause(
    State(state): State<AppState>,
    ApiPath((name, sink)): ApiPath<(String, String)>,
) -> Result<Json<SinkStatus>, ApiError> {
    change_sink(&state, &name, &sink, |s| s.pause(&sink))
}

async fn resume(
    State(state): State<AppState>,
    ApiPath((name, sink)): ApiPath<(String, String)>,
) -> Result<Json<SinkStatus>, ApiError> {
    change_sink(&state, &name, &sink, |s| s.resume(&sink))
}

async fn reset(
    State(state): State<AppState>,
    ApiPath((name, sink)): ApiPath<(String, String)>,
    AdminJson(to): AdminJson<SinkReset>,
) -> Result<Json<SinkStatus>, ApiError> {
    change_sink(&state, &name, &sink, |s| s.reset(&sink, to.to))
}
