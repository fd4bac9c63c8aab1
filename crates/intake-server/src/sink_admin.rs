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
use intake_format::api::{ErrorResponse, SinkReset, SinkStatus};
use intake_forward::{ForwardError, StreamSinks};

use crate::error::ApiError;
use crate::extract::{AdminJson, ApiPath};
use crate::faces::native::StreamName;
use crate::state::AppState;

/// The sink routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/streams/{name}/sinks", get(list))
        .route("/v1/streams/{name}/sinks/{sink}/pause", post(pause))
        .route("/v1/streams/{name}/sinks/{sink}/resume", post(resume))
        .route("/v1/streams/{name}/sinks/{sink}/reset", post(reset))
}

/// Every sink of a stream, with its progress.
#[utoipa::path(get, path = "/v1/streams/{name}/sinks", tag = "sinks",
    params(StreamName),
    responses(
        (status = 200, description = "Each sink's progress", body = Vec<SinkStatus>),
        (status = 404, description = "No such stream", body = ErrorResponse),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Vec<SinkStatus>>, ApiError> {
    let stream = state.node.stream(&name)?;
    Ok(Json(
        stream.sinks().map(StreamSinks::status).unwrap_or_default(),
    ))
}

/// The `{sink}` path parameter.
#[derive(utoipa::IntoParams)]
#[into_params(names("sink"), parameter_in = Path)]
pub(crate) struct SinkName(
    /// The sink's name within its stream.
    #[allow(dead_code)]
    String,
);

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

/// Pauses a sink: records wait in the log.
#[utoipa::path(post, path = "/v1/streams/{name}/sinks/{sink}/pause", tag = "sinks",
    params(StreamName, SinkName),
    responses((status = 200, description = "The sink after the change", body = SinkStatus), (status = 404, description = "No such stream or sink", body = ErrorResponse),))]
pub(crate) async fn pause(
    State(state): State<AppState>,
    ApiPath((name, sink)): ApiPath<(String, String)>,
) -> Result<Json<SinkStatus>, ApiError> {
    change_sink(&state, &name, &sink, |s| s.pause(&sink))
}

/// Resumes a paused sink.
#[utoipa::path(post, path = "/v1/streams/{name}/sinks/{sink}/resume", tag = "sinks",
    params(StreamName, SinkName),
    responses((status = 200, description = "The sink after the change", body = SinkStatus), (status = 404, description = "No such stream or sink", body = ErrorResponse),))]
pub(crate) async fn resume(
    State(state): State<AppState>,
    ApiPath((name, sink)): ApiPath<(String, String)>,
) -> Result<Json<SinkStatus>, ApiError> {
    change_sink(&state, &name, &sink, |s| s.resume(&sink))
}

/// Moves a sink's cursor in every partition (clamped to what is retained).
#[utoipa::path(post, path = "/v1/streams/{name}/sinks/{sink}/reset", tag = "sinks",
    params(StreamName, SinkName),
    request_body = SinkReset,
    responses(
        (status = 200, description = "The sink after the change", body = SinkStatus),
        (status = 400, description = "The body is not a reset", body = ErrorResponse),
        (status = 404, description = "No such stream or sink", body = ErrorResponse),
        (status = 413, description = "The body is over the limit", body = ErrorResponse),
        (status = 415, description = "The body is not JSON", body = ErrorResponse),
    ))]
pub(crate) async fn reset(
    State(state): State<AppState>,
    ApiPath((name, sink)): ApiPath<(String, String)>,
    AdminJson(to): AdminJson<SinkReset>,
) -> Result<Json<SinkStatus>, ApiError> {
    change_sink(&state, &name, &sink, |s| s.reset(&sink, to.to))
}
