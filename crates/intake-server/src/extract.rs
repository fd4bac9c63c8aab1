//! Extractors that reject with [`ApiError`], so every refusal has the same
//! shape and the limits are the configured ones.

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::HeaderMap;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::Extensions;

use crate::config::Limits;
use crate::content_encoding;
use crate::error::ApiError;
use crate::state::AppState;

/// Reads a whole body, refusing it with 413 past `limit` (at once when the
/// `Content-Length` says so, else as soon as the limit is crossed), 408
/// when it arrives slower than `limits.min_body_bytes_per_second` after
/// `limits.body_rate_grace` or not within `limits.request_read_timeout`;
/// then undoes its `Content-Encoding` within
/// `limits.max_decompressed_bytes`.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: axum::body::Body,
    limit: usize,
    limits: &Limits,
) -> Result<Bytes, ApiError> {
    let body = read_encoded_body(headers, body, limit, limits).await?;
    content_encoding::decode(headers, body, limits.max_decompressed_bytes).await
}

/// [`read_body`] without undoing the `Content-Encoding`: the bytes as sent.
pub(crate) async fn read_encoded_body(
    headers: &HeaderMap,
    mut body: axum::body::Body,
    limit: usize,
    limits: &Limits,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let pace = BodyPace::new(limits);
    // One timer for the whole body, armed only while a frame is awaited
    // and moved on only when it fires: a body that keeps up never resets
    // it.
    let timer = tokio::time::sleep_until(pace.deadline(0));
    tokio::pin!(timer);
    let mut frames: Vec<Bytes> = Vec::new();
    let mut received = 0usize;
    loop {
        let frame = tokio::select! {
            biased;
            frame = body.frame() => frame,
            () = &mut timer => {
                let deadline = pace.deadline(received);
                if deadline <= tokio::time::Instant::now() {
                    return Err(pace.refusal(received));
                }
                timer.as_mut().reset(deadline);
                continue;
            }
        };
        let Some(frame) = frame else {
            break;
        };
        let frame = frame
            .map_err(|e| ApiError::BadRequest(format!("could not read the request body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        received += data.len();
        if received > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        frames.push(data);
    }
    // One frame (most bodies) is kept as it came; more are joined once.
    if frames.len() <= 1 {
        return Ok(frames.pop().unwrap_or_default());
    }
    let mut joined = BytesMut::with_capacity(received);
    for frame in &frames {
        joined.extend_from_slice(frame);
    }
    Ok(joined.freeze())
}

/// When a body being read must have arrived by: within
/// `request_read_timeout` in all, and, after `body_rate_grace`, at
/// `min_body_bytes_per_second` on average since it began.
struct BodyPace {
    started: tokio::time::Instant,
    limits: Limits,
}

impl BodyPace {
    fn new(limits: &Limits) -> Self {
        Self {
            started: tokio::time::Instant::now(),
            limits: *limits,
        }
    }

    /// The time by which more than `received` bytes must have come.
    fn deadline(&self, received: usize) -> tokio::time::Instant {
        let outer = self.started + self.limits.request_read_timeout;
        let rate = self.limits.min_body_bytes_per_second;
        if rate == 0 {
            return outer;
        }
        // received bytes at `rate` cover this long since the start, at
        // least the grace and never past the read timeout (so no sum
        // overflows).
        let read_timeout = self.limits.request_read_timeout;
        let covered =
            Duration::try_from_secs_f64(received as f64 / rate as f64).unwrap_or(read_timeout);
        self.started + covered.max(self.limits.body_rate_grace).min(read_timeout)
    }

    /// The refusal when the deadline for `received` bytes passed.
    fn refusal(&self, received: usize) -> ApiError {
        if self.deadline(received) < self.started + self.limits.request_read_timeout {
            ApiError::BodyTooSlow {
                min_bytes_per_second: self.limits.min_body_bytes_per_second,
                grace: self.limits.body_rate_grace,
            }
        } else {
            ApiError::SlowClient(self.limits.request_read_timeout)
        }
    }
}

/// The client's address: the peer of the connection the request came on;
/// unknown (`None`) for requests served in process, as in tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Peer(pub(crate) Option<IpAddr>);

impl Peer {
    /// The peer of a request, from its extensions.
    pub(crate) fn of(extensions: &Extensions) -> Self {
        Self(
            extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip().to_canonical()),
        )
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Self::of(&parts.extensions))
    }
}

/// The body of a push route, within `limits.max_body_bytes`.
#[derive(Debug)]
pub(crate) struct PushBody {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl FromRequest<AppState> for PushBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let body = read_body(
            &parts.headers,
            body,
            state.limits.max_body_bytes,
            &state.limits,
        )
        .await?;
        Ok(Self {
            headers: parts.headers,
            body,
        })
    }
}

/// A JSON body of an admin route, within `limits.max_admin_body_bytes`.
#[derive(Debug)]
pub(crate) struct AdminJson<T>(pub(crate) T);

impl<T: DeserializeOwned> FromRequest<AppState> for AdminJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        if let Some(ct) = parts.headers.get(CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or_default();
            if !is_json(ct) {
                return Err(ApiError::UnsupportedMediaType {
                    got: ct.to_owned(),
                    accepted: "application/json",
                });
            }
        }
        let body = read_body(
            &parts.headers,
            body,
            state.limits.max_admin_body_bytes,
            &state.limits,
        )
        .await?;
        parse_admin_json(&body).map(Self)
    }
}

/// Parses an admin body. A whole number written with a fraction (`2.0`,
/// as Python's `json.dumps` writes floats) is the integer JSON Schema says
/// it is; anything else keeps serde's message, with its line and column.
fn parse_admin_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let error = match serde_json::from_slice(body) {
        Ok(parsed) => return Ok(parsed),
        Err(e) => e,
    };
    let refused = || ApiError::BadRequest(format!("invalid JSON body: {error}"));
    let mut value: serde_json::Value = serde_json::from_slice(body).map_err(|_| refused())?;
    if !whole_floats_as_integers(&mut value) {
        return Err(refused());
    }
    serde_json::from_value(value).map_err(|_| refused())
}

/// Rewrites every float with no fractional part (within ±2^53) as an
/// integer; true when it rewrote any.
fn whole_floats_as_integers(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    match value {
        Value::Number(n) if n.is_f64() => {
            let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() <= EXACT) else {
                return false;
            };
            #[allow(clippy::cast_possible_truncation)]
            let whole = f as i64;
            *value = Value::from(whole);
            true
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |any, v| whole_floats_as_integers(v) | any),
        Value::Object(fields) => fields
            .values_mut()
            .fold(false, |any, v| whole_floats_as_integers(v) | any),
        _ => false,
    }
}

/// The media type of a `Content-Type` value, without parameters.
pub(crate) fn media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or_default().trim()
}

/// True when the media type of `content_type` is one of `types`, ignoring
/// case.
pub(crate) fn media_type_is(content_type: &str, types: &[&str]) -> bool {
    let media = media_type(content_type);
    types.iter().any(|t| media.eq_ignore_ascii_case(t))
}

/// `application/json` or any `+json` type.
pub(crate) fn is_json(content_type: &str) -> bool {
    let media = media_type(content_type);
    media.eq_ignore_ascii_case("application/json")
        || media
            .get(media.len().saturating_sub(5)..)
            .is_some_and(|suffix| suffix.eq_ignore_ascii_case("+json"))
}

/// Path parameters, rejected as 400 with a clear message.
#[derive(Debug)]
pub(crate) struct ApiPath<T>(pub(crate) T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| Self(v))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// Query parameters, rejected as 400 with a clear message.
#[derive(Debug)]
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(v)| Self(v))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}
