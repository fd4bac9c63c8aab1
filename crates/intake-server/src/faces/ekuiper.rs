//! The eKuiper httppush face: every stream with `bindings.datasource`
//! (`DATASOURCE="/api/data"` in eKuiper's SQL) is served at its own path, on
//! the main listener and on the optional push listener (`push_listen`;
//! eKuiper's own default is `0.0.0.0:10081`).
//!
//! Answers, in eKuiper's plain-text style but with intake's promises:
//! - `200` with body `ok` once every record is durable;
//! - `400` with the reason when the body fails decoding or validation
//!   (eKuiper answers 200 and drops it);
//! - `405` with `Allow` for a method other than the binding's;
//! - `404` for a path no stream is bound to;
//! - `503` with `Retry-After` when the node cannot take the records now
//!   (eKuiper drops them when its buffer is full).
//!
//! A path shared by several streams (`shared = true` on each) gives every
//! stream every record; the request is written only if every stream accepts
//! it.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{ALLOW, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use intake_core::IngestRequest;
use intake_format::Framing;

use crate::error::ApiError;
use crate::extract::{Peer, read_body};
use crate::idempotency::{Replayed, request_key};
use crate::metrics::note_stream;
use crate::state::{AppState, check_source};

/// The body of a successful push, as eKuiper answers.
const OK: &str = "ok";

/// Serves a push to a stream's own path; unbound paths get 404.
pub(crate) async fn push(State(state): State<AppState>, req: Request) -> Response {
    match push_inner(&state, req).await {
        Ok(response) => response,
        Err(e) => render(e),
    }
}

/// True when some stream is bound to `path`.
pub(crate) fn serves(state: &AppState, path: &str) -> bool {
    !state.node.streams_by_datasource(path).is_empty()
}

async fn push_inner(state: &AppState, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let streams = state.node.streams_by_datasource(path);
    let Some(first) = streams.first() else {
        return Err(ApiError::RouteNotFound {
            method: parts.method.to_string(),
            path: path.to_owned(),
        });
    };
    let caller = parts.extensions.get::<crate::auth::Caller>();
    for stream in &streams {
        crate::auth::check_write(state, caller, stream.name())?;
    }
    let method = first
        .definition()
        .bindings
        .datasource
        .map_or_else(|| "POST".to_owned(), |d| d.method);
    if parts.method.as_str() != method {
        let mut response = render(ApiError::MethodNotAllowed {
            method: parts.method.to_string(),
        });
        if let Ok(v) = HeaderValue::from_str(&method) {
            response.headers_mut().insert(ALLOW, v);
        }
        return Ok(response);
    }
    let body = read_body(
        &parts.headers,
        body,
        state.limits.max_body_bytes,
        &state.limits,
    )
    .await?;
    let mut request = IngestRequest::body(body, Framing::Raw);
    request.key = request_key(&parts.headers)?;
    let from = Peer::of(&parts.extensions);
    let replayed = if let [stream] = streams.as_slice() {
        Replayed::of(&state.ingest(stream, from, request).await?)
    } else {
        for s in &streams {
            note_stream(s.name());
            check_source(s, from)?;
        }
        let outcomes = state.node.ingest_fanout(&streams, request).await?;
        Replayed(!outcomes.is_empty() && outcomes.iter().all(|o| o.replayed))
    };
    Ok((
        StatusCode::OK,
        replayed,
        [(CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
        OK,
    )
        .into_response())
}

/// Renders an error as eKuiper does: the status, and the reason as text.
pub(crate) fn render(err: ApiError) -> Response {
    err.log();
    crate::metrics::note_refusal(err.code());
    let response = Response::builder()
        .status(err.status())
        .header(CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(err.public_message()))
        .unwrap_or_default();
    err.with_retry_after(response)
}
