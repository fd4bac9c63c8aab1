//! The InLong DataProxy face: `GET|POST /dataproxy/message` and
//! `/dataproxy/heartbeat`, as Apache InLong's HTTP report clients speak
//! them.
//!
//! Parameters come from the query string and from an
//! `application/x-www-form-urlencoded` body; a body field overrides a query
//! field, and within one form the first occurrence of a name wins (as in
//! DataProxy). `groupId`/`streamId` pick the stream through its
//! `bindings.inlong`; `body` holds `cnt` records joined by `\n` (one
//! trailing `\n` ends the last record rather than starting an empty one);
//! `dt` (epoch ms) is the records' timestamp. Every record keeps `groupId`,
//! `streamId` and `clientIp` as headers.
//!
//! Every answer is HTTP 200 with `{"code":"0","msg":"Ok"}` or a non-zero
//! code in DataProxy's numbering and a message saying what was wrong,
//! wrapped as `callback(...)` when the `callback` parameter is given. The
//! differences from DataProxy: `0` means every record is durable, a
//! refused request wrote nothing, an overloaded node says so with code 114
//! and `Retry-After`, and a draining node answers code 2 with HTTP 503 so
//! that load balancers watching the heartbeat stop sending.

use std::borrow::Cow;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use intake_core::{
    Error as CoreError, Header, IngestRequest, Item, Items, LogError, RequestKey, now_ms,
};
use intake_format::api::{Format, InlongBinding, StreamDefinition};
use percent_encoding::percent_decode;
use serde::Serialize;

use crate::error::ApiError;
use crate::extract::{Peer, media_type_is, read_body};
use crate::idempotency::{Replayed, request_key};
use crate::state::AppState;

/// The report path.
const MESSAGE_PATH: &str = "/dataproxy/message";
/// The heartbeat (health check) path.
const HEARTBEAT_PATH: &str = "/dataproxy/heartbeat";
/// The only body content type DataProxy reads.
const FORM: &str = "application/x-www-form-urlencoded";
/// DataProxy's answer content type.
const JSON_UTF8: &str = "application/json;charset=utf-8";
/// The content type of a JSONP answer.
const JAVASCRIPT_UTF8: &str = "application/javascript;charset=utf-8";
/// The success answer (code 0), which needs no escaping.
const OK_BODY: &str = r#"{"code":"0","msg":"Ok"}"#;
/// Longest accepted JSONP callback name.
const MAX_CALLBACK_LEN: usize = 128;

/// DataProxy's answer codes (`DataProxyErrCode`) that this face uses.
mod code {
    /// The stream does not accept records now (intake: it is paused).
    pub(super) const SINK_UNREADY: u32 = 1;
    /// The node is shutting down.
    pub(super) const SERVICE_CLOSED: u32 = 2;
    /// The request could not be decoded.
    pub(super) const DECODE_FAILURE: u32 = 31;
    /// A method other than GET or POST.
    pub(super) const UNSUPPORTED_METHOD: u32 = 32;
    /// A path other than the message and heartbeat paths.
    pub(super) const UNSUPPORTED_URI: u32 = 35;
    /// A body content type other than a form.
    pub(super) const UNSUPPORTED_CONTENT_TYPE: u32 = 36;
    /// `groupId` missing or blank.
    pub(super) const GROUP_ID_REQUIRED: u32 = 100;
    /// `streamId` missing or blank.
    pub(super) const STREAM_ID_REQUIRED: u32 = 101;
    /// `body` missing.
    pub(super) const BODY_REQUIRED: u32 = 103;
    /// The body, a record, or the record count is over its limit.
    pub(super) const BODY_TOO_LONG: u32 = 104;
    /// `body` blank.
    pub(super) const EMPTY_MESSAGE: u32 = 111;
    /// No stream is bound to the groupId/streamId pair.
    pub(super) const UNCONFIGURED: u32 = 113;
    /// The node cannot take the records now; retry after `Retry-After`.
    pub(super) const OVERLOADED: u32 = 114;
    /// A record is not acceptable, or `cnt` does not match.
    pub(super) const ITEMS_INVALID: u32 = 123;
    /// intake's own: a bad `Idempotency-Key`, `Intake-Producer-Id` or
    /// `Intake-Sequence`.
    pub(super) const INVALID_IDEMPOTENCY_KEY: u32 = 400;
    /// intake's own: the producer sequence is not the next one (the
    /// message says which is).
    pub(super) const OUT_OF_ORDER_SEQUENCE: u32 = 409;
    /// intake's own: the `Idempotency-Key` was used for another request.
    pub(super) const IDEMPOTENCY_KEY_REUSED: u32 = 422;
    /// intake's own: no valid token (`auth = "tokens"`).
    pub(super) const UNAUTHORIZED: u32 = 401;
    /// intake's own: the token may not write to the stream.
    pub(super) const FORBIDDEN: u32 = 403;
    /// Anything else (DataProxy's `UNKNOWN_ERROR`).
    pub(super) const UNKNOWN: u32 = i32::MAX as u32;
}

/// The routes of the InLong face. Other `/dataproxy/...` paths and other
/// methods are answered by the router's fallbacks, in this face's shape.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            MESSAGE_PATH,
            get(message).post(message).fallback(unsupported_method),
        )
        .route(
            HEARTBEAT_PATH,
            get(heartbeat).post(heartbeat).fallback(unsupported_method),
        )
}

/// Why an InLong request was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InlongError {
    /// `groupId` missing or blank.
    #[error("Field groupId must exist and not be blank")]
    GroupIdMissing,
    /// `streamId` missing or blank.
    #[error("Field streamId must exist and not be blank")]
    StreamIdMissing,
    /// `body` missing.
    #[error("Field body is required")]
    BodyMissing,
    /// `body` empty or only whitespace.
    #[error("Field body is blank")]
    BodyBlank,
    /// No stream is bound to the pair.
    #[error(
        "Unconfigured groupId or streamId: no stream is bound to groupId {group_id:?} and streamId {stream_id:?}"
    )]
    Unconfigured {
        /// The groupId sent.
        group_id: String,
        /// The streamId sent.
        stream_id: String,
    },
    /// No stream is bound to the pair, and `auto_create_streams` could not
    /// make one.
    #[error(
        "Unconfigured groupId or streamId: no stream is bound to groupId {group_id:?} and streamId {stream_id:?}, and auto_create_streams cannot make stream \"{group_id}.{stream_id}\": {reason}"
    )]
    NotCreated {
        /// The groupId sent.
        group_id: String,
        /// The streamId sent.
        stream_id: String,
        /// Why the stream could not be made.
        reason: String,
    },
    /// `cnt` is not a count, or not the number of records in `body`.
    #[error(
        "Msg body items invalid: cnt is {declared:?} but body holds {found} record(s) joined by \\n"
    )]
    CountMismatch {
        /// `cnt` as sent.
        declared: String,
        /// Records in `body`.
        found: usize,
    },
    /// `callback` is not a safe JavaScript name.
    #[error(
        "Field callback must be a JavaScript name (letters, digits, _ $ .) of at most {MAX_CALLBACK_LEN} characters"
    )]
    BadCallback,
    /// A failure shared with the other faces.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<CoreError> for InlongError {
    fn from(e: CoreError) -> Self {
        Self::Api(ApiError::Core(e))
    }
}

/// DataProxy's answer body.
#[derive(Serialize)]
struct Answer<'a> {
    code: String,
    msg: &'a str,
}

/// Renders every InLong refusal: HTTP 200 with DataProxy's code and a
/// message (JSONP-wrapped when `callback` is given), plus `Retry-After`
/// when retrying later can succeed.
pub(crate) fn render(err: InlongError, callback: Option<&str>) -> Response {
    use InlongError as E;
    crate::metrics::note_refusal(match &err {
        E::GroupIdMissing | E::StreamIdMissing | E::BodyMissing => "missing_parameter",
        E::BodyBlank => "empty_body",
        E::Unconfigured { .. } | E::NotCreated { .. } => "stream_not_found",
        E::CountMismatch { .. } => "invalid_record",
        E::BadCallback => "bad_request",
        E::Api(api) => api.code(),
    });
    let code = match &err {
        E::GroupIdMissing => code::GROUP_ID_REQUIRED,
        E::StreamIdMissing => code::STREAM_ID_REQUIRED,
        E::BodyMissing => code::BODY_REQUIRED,
        E::BodyBlank => code::EMPTY_MESSAGE,
        E::Unconfigured { .. } | E::NotCreated { .. } => code::UNCONFIGURED,
        E::CountMismatch { .. } => code::ITEMS_INVALID,
        E::BadCallback => code::DECODE_FAILURE,
        E::Api(api) => {
            api.log();
            api_code(api)
        }
    };
    let message = match &err {
        E::Api(ApiError::RouteNotFound { method, path }) => format!(
            "Un-supported service uri {method} {path}; only {HEARTBEAT_PATH} and {MESSAGE_PATH} are served"
        ),
        E::Api(ApiError::MethodNotAllowed { method }) => {
            format!("Un-supported method {method}; only GET and POST are served")
        }
        E::Api(api) => api.public_message(),
        other => other.to_string(),
    };
    let body = serde_json::to_string(&Answer {
        code: code.to_string(),
        msg: &message,
    })
    .unwrap_or_else(|_| format!(r#"{{"code":"{code}","msg":"Unknown error"}}"#));
    let mut response = answer(body.into(), callback);
    if code == code::SERVICE_CLOSED {
        // A draining node must fail load balancers' health checks on the
        // heartbeat, which look at the HTTP status: the one answer that is
        // not 200.
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    if let E::Api(api) = &err {
        response = api.with_retry_after(response);
    }
    if code == code::OVERLOADED && !response.headers().contains_key(RETRY_AFTER) {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(1u64));
    }
    response
}

/// DataProxy's code for a shared failure.
fn api_code(err: &ApiError) -> u32 {
    match err {
        ApiError::Core(core) => match core {
            CoreError::StreamPaused { .. } => code::SINK_UNREADY,
            CoreError::InvalidIdempotencyKey { .. } => code::INVALID_IDEMPOTENCY_KEY,
            CoreError::IdempotencyKeyReused { .. } => code::IDEMPOTENCY_KEY_REUSED,
            CoreError::OutOfOrderSequence { .. } => code::OUT_OF_ORDER_SEQUENCE,
            CoreError::StreamNotFound { .. } => code::UNCONFIGURED,
            CoreError::Format(_)
            | CoreError::TooDeep { .. }
            | CoreError::PartitionNotFound { .. } => code::ITEMS_INVALID,
            CoreError::TooManyRecords { .. } | CoreError::RecordTooLarge { .. } => {
                code::BODY_TOO_LONG
            }
            CoreError::ShuttingDown | CoreError::Log(LogError::Closed { .. }) => {
                code::SERVICE_CLOSED
            }
            CoreError::Log(LogError::BatchTooLarge { .. }) => code::BODY_TOO_LONG,
            CoreError::Log(_) | CoreError::Catalog(_) if err.retry_after().is_some() => {
                code::OVERLOADED
            }
            _ => code::UNKNOWN,
        },
        ApiError::PayloadTooLarge { .. } | ApiError::DecompressedTooLarge { .. } => {
            code::BODY_TOO_LONG
        }
        ApiError::UnsupportedMediaType { .. } | ApiError::UnsupportedEncoding { .. } => {
            code::UNSUPPORTED_CONTENT_TYPE
        }
        ApiError::SlowClient(_) | ApiError::BodyTooSlow { .. } => code::DECODE_FAILURE,
        ApiError::RateLimited { .. } | ApiError::TooManyConnections(_) => code::OVERLOADED,
        ApiError::BadRequest(_) => code::DECODE_FAILURE,
        ApiError::RouteNotFound { .. } | ApiError::NotATable(_) => code::UNSUPPORTED_URI,
        ApiError::MethodNotAllowed { .. } => code::UNSUPPORTED_METHOD,
        ApiError::Timeout(_) | ApiError::Overloaded => code::OVERLOADED,
        ApiError::ShuttingDown => code::SERVICE_CLOSED,
        ApiError::Unauthorized(_) => code::UNAUTHORIZED,
        ApiError::Forbidden(_) => code::FORBIDDEN,
    }
}

/// The stream `auto_create_streams` makes for a report to an unbound
/// pair: `{groupId}.{streamId}`, bound to the pair, storing each line as it
/// is (`binary`), as InLong carries any bytes.
fn auto_created_definition(group_id: &str, stream_id: &str) -> StreamDefinition {
    let mut definition = StreamDefinition::new(format!("{group_id}.{stream_id}"));
    definition.format = Format::Binary;
    definition.bindings.inlong.push(InlongBinding {
        group_id: group_id.to_owned(),
        stream_id: stream_id.to_owned(),
    });
    definition
}

/// An HTTP 200 answer with `body`, JSONP-wrapped for `callback`.
fn answer(body: Bytes, callback: Option<&str>) -> Response {
    let (body, content_type) = match callback {
        None => (body, JSON_UTF8),
        Some(cb) => {
            let mut wrapped = Vec::with_capacity(cb.len() + body.len() + 2);
            wrapped.extend_from_slice(cb.as_bytes());
            wrapped.push(b'(');
            wrapped.extend_from_slice(&body);
            wrapped.push(b')');
            (Bytes::from(wrapped), JAVASCRIPT_UTF8)
        }
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::OK;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The success answer.
fn answer_ok(callback: Option<&str>) -> Response {
    answer(Bytes::from_static(OK_BODY.as_bytes()), callback)
}

async fn unsupported_method(method: Method) -> Response {
    render(
        InlongError::Api(ApiError::MethodNotAllowed {
            method: method.to_string(),
        }),
        None,
    )
}

/// Load balancers use the heartbeat as a health check: success while the
/// node serves (the drain layer answers code 2 once it stops).
async fn heartbeat() -> Response {
    answer_ok(None)
}

/// The parameters of one report, each as sent (decoded, not yet checked).
#[derive(Debug, Default, PartialEq, Eq)]
struct Params {
    group_id: Option<Bytes>,
    stream_id: Option<Bytes>,
    body: Option<Bytes>,
    dt: Option<Bytes>,
    cnt: Option<Bytes>,
    callback: Option<Bytes>,
}

impl Params {
    /// Fills the parameters still unset from one form: within a form the
    /// first occurrence of a name wins, so parsing the body before the
    /// query makes a body field override a query field.
    fn fill_from(&mut self, form: &Bytes) {
        for (name, value) in form_pairs(form) {
            let slot = match &*name {
                b"groupId" => &mut self.group_id,
                b"streamId" => &mut self.stream_id,
                b"body" => &mut self.body,
                b"dt" => &mut self.dt,
                b"cnt" => &mut self.cnt,
                b"callback" => &mut self.callback,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(value);
            }
        }
    }

    /// The JSONP callback, if one is given (a blank one counts as none).
    fn callback(&self) -> Result<Option<&str>, InlongError> {
        let Some(raw) = self.callback.as_deref().filter(|c| !is_blank(c)) else {
            return Ok(None);
        };
        let safe = raw.len() <= MAX_CALLBACK_LEN
            && raw
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$' | b'.'));
        match std::str::from_utf8(raw) {
            Ok(name) if safe => Ok(Some(name)),
            _ => Err(InlongError::BadCallback),
        }
    }
}

/// The decoded `name=value` pairs of an `application/x-www-form-urlencoded`
/// form, in order. `+` is a space and `%XX` a byte; bytes are kept exactly
/// (no UTF-8 replacement, so binary records survive). A value that needs no
/// decoding is a slice of `form`, not a copy.
fn form_pairs(form: &Bytes) -> impl Iterator<Item = (Cow<'_, [u8]>, Bytes)> + '_ {
    form.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(move |pair| {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(eq) => pair.split_at(eq),
                None => (pair, &pair[pair.len()..]),
            };
            let value = value.strip_prefix(b"=").unwrap_or(value);
            let name = decode_component(name);
            let value = match decode_component(value) {
                Cow::Borrowed(v) => form.slice_ref(v),
                Cow::Owned(v) => Bytes::from(v),
            };
            (name, value)
        })
}

/// Decodes one form component; borrowed when nothing needs decoding.
fn decode_component(raw: &[u8]) -> Cow<'_, [u8]> {
    let has_plus = raw.contains(&b'+');
    let has_percent = raw.contains(&b'%');
    if !has_plus && !has_percent {
        return Cow::Borrowed(raw);
    }
    let spaced: Cow<'_, [u8]> = if has_plus {
        Cow::Owned(
            raw.iter()
                .map(|&b| if b == b'+' { b' ' } else { b })
                .collect(),
        )
    } else {
        Cow::Borrowed(raw)
    };
    if !has_percent {
        return Cow::Owned(spaced.into_owned());
    }
    Cow::Owned(percent_decode(&spaced).collect())
}

/// Blank as Java's `StringUtils.isBlank`: empty or only whitespace.
fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_whitespace)
}

/// The records of `body`: lines joined by `\n`, one trailing `\n` ending
/// the last line. Each is a slice of `body`, not a copy.
fn lines(body: &Bytes) -> impl Iterator<Item = Bytes> + '_ {
    let content = body.strip_suffix(b"\n").unwrap_or(body);
    content
        .split(|&b| b == b'\n')
        .map(|line| body.slice_ref(line))
}

async fn message(State(state): State<AppState>, req: Request) -> Response {
    let received_at_ms = now_ms();
    // The peer address, when served over a socket (not in oneshot tests).
    let from = Peer::of(req.extensions());
    let caller = req.extensions().get::<crate::auth::Caller>().cloned();
    let key = request_key(req.headers());
    let params = match read_params(&state, req).await {
        Ok(params) => params,
        Err(e) => return render(e, None),
    };
    let callback = match params.callback() {
        Ok(callback) => callback,
        Err(e) => return render(e, None),
    };
    let key = match key {
        Ok(key) => key,
        Err(e) => return render(e.into(), callback),
    };
    match report(&state, &params, from, received_at_ms, caller.as_ref(), key).await {
        Ok(replayed) => (replayed, answer_ok(callback)).into_response(),
        Err(e) => render(e, callback),
    }
}

/// The parameters of the query string and (for POST) the form body.
async fn read_params(state: &AppState, req: Request) -> Result<Params, InlongError> {
    let (parts, body) = req.into_parts();
    let mut params = Params::default();
    if parts.method == Method::POST {
        let body = read_body(
            &parts.headers,
            body,
            state.limits.max_body_bytes,
            &state.limits,
        )
        .await?;
        if !body.is_empty() {
            if let Some(ct) = parts.headers.get(CONTENT_TYPE) {
                let ct = ct.to_str().unwrap_or("(not text)");
                if !media_type_is(ct, &[FORM]) {
                    return Err(ApiError::UnsupportedMediaType {
                        got: ct.to_owned(),
                        accepted: FORM,
                    }
                    .into());
                }
            }
            params.fill_from(&body);
        }
    }
    if let Some(query) = parts.uri.query() {
        params.fill_from(&Bytes::copy_from_slice(query.as_bytes()));
    }
    Ok(params)
}

/// Text of a parameter for a message.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Checks one report in DataProxy's order and ingests its records.
async fn report(
    state: &AppState,
    params: &Params,
    from: Peer,
    received_at_ms: i64,
    caller: Option<&crate::auth::Caller>,
    key: Option<RequestKey>,
) -> Result<Replayed, InlongError> {
    let group_id = params
        .group_id
        .as_ref()
        .filter(|g| !is_blank(g))
        .ok_or(InlongError::GroupIdMissing)?;
    let stream_id = params
        .stream_id
        .as_ref()
        .filter(|s| !is_blank(s))
        .ok_or(InlongError::StreamIdMissing)?;
    let unconfigured = || InlongError::Unconfigured {
        group_id: text(group_id),
        stream_id: text(stream_id),
    };
    let (Ok(group), Ok(stream_name)) = (
        std::str::from_utf8(group_id),
        std::str::from_utf8(stream_id),
    ) else {
        return Err(unconfigured());
    };
    let stream = state
        .node
        .bound_stream_for_push(
            |node| node.stream_by_inlong(group, stream_name),
            || auto_created_definition(group, stream_name),
        )
        .await
        .map_err(|e| match e {
            CoreError::InvalidDefinition { reason, .. } => InlongError::NotCreated {
                group_id: text(group_id),
                stream_id: text(stream_id),
                reason,
            },
            other => other.into(),
        })?
        .ok_or_else(unconfigured)?;
    crate::auth::check_write(state, caller, stream.name())?;
    let timestamp = params
        .dt
        .as_deref()
        .and_then(|dt| std::str::from_utf8(dt).ok())
        .and_then(|dt| dt.trim().parse::<i64>().ok());
    let body = params.body.as_ref().ok_or(InlongError::BodyMissing)?;
    if is_blank(body) {
        return Err(InlongError::BodyBlank);
    }
    if body.len() > state.limits.max_body_bytes {
        return Err(ApiError::PayloadTooLarge {
            limit: state.limits.max_body_bytes,
        }
        .into());
    }
    let items: Vec<Item> = lines(body).map(Item::new).collect();
    if let Some(cnt) = &params.cnt {
        let declared = std::str::from_utf8(cnt)
            .ok()
            .and_then(|c| c.trim().parse::<usize>().ok());
        if declared != Some(items.len()) {
            return Err(InlongError::CountMismatch {
                declared: text(cnt),
                found: items.len(),
            });
        }
    }
    let headers = vec![
        Header {
            key: "groupId".to_owned(),
            value: group_id.clone(),
        },
        Header {
            key: "streamId".to_owned(),
            value: stream_id.clone(),
        },
    ];
    let origin_headers = match from {
        Peer(Some(ip)) => vec![Header {
            key: "clientIp".to_owned(),
            value: Bytes::from(ip.to_string()),
        }],
        Peer(None) => Vec::new(),
    };
    let request = IngestRequest {
        items: Items::Split(items),
        received_at_ms,
        timestamp,
        headers,
        origin_headers,
        key,
    };
    let outcome = state.ingest(&stream, from, request).await?;
    Ok(Replayed::of(&outcome))
}

/// For the `inlong_form` fuzz target: a form body then a query parsed as a
/// report is. Whatever parses prints back to a form that parses the same;
/// the body splits into lines without newlines; a callback is accepted
/// only when it is a safe JavaScript name.
pub(crate) fn fuzz_form(body: &[u8], query: &[u8]) {
    let mut params = Params::default();
    params.fill_from(&Bytes::copy_from_slice(body));
    params.fill_from(&Bytes::copy_from_slice(query));
    let fields = [
        ("groupId", &params.group_id),
        ("streamId", &params.stream_id),
        ("body", &params.body),
        ("dt", &params.dt),
        ("cnt", &params.cnt),
        ("callback", &params.callback),
    ];
    let printed: Vec<String> = fields
        .iter()
        .filter_map(|(name, value)| {
            let value: String = form_urlencoded::byte_serialize(value.as_deref()?).collect();
            Some(format!("{name}={value}"))
        })
        .collect();
    let mut again = Params::default();
    again.fill_from(&Bytes::from(printed.join("&")));
    assert_eq!(again, params, "a printed form parses back the same");
    if let Some(body) = &params.body {
        assert!(lines(body).all(|line| !line.contains(&b'\n')));
    }
    if let Ok(Some(name)) = params.callback() {
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$' | b'.'))
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a panic in a test is a failed test")]

    use proptest::prelude::*;

    use super::*;

    fn parse(form: &str) -> Params {
        let mut params = Params::default();
        params.fill_from(&Bytes::copy_from_slice(form.as_bytes()));
        params
    }

    #[test]
    fn the_seed_form_parses() {
        let p = parse(
            "groupId=give_your_group_id&streamId=give_your_stream_id&dt=data_time&body=give_your_data_body&cnt=1",
        );
        assert_eq!(p.group_id.as_deref(), Some(&b"give_your_group_id"[..]));
        assert_eq!(p.stream_id.as_deref(), Some(&b"give_your_stream_id"[..]));
        assert_eq!(p.dt.as_deref(), Some(&b"data_time"[..]));
        assert_eq!(p.body.as_deref(), Some(&b"give_your_data_body"[..]));
        assert_eq!(p.cnt.as_deref(), Some(&b"1"[..]));
        assert_eq!(p.callback, None);
    }

    #[test]
    fn decoding_keeps_bytes_and_first_occurrence_wins() {
        let p = parse("body=a+b%0Ac%FF%00&body=second&groupId&&streamId=%zz");
        assert_eq!(p.body.as_deref(), Some(&b"a b\nc\xff\x00"[..]));
        assert_eq!(p.group_id.as_deref(), Some(&b""[..]));
        // An invalid escape stays as it is, like form_urlencoded does.
        assert_eq!(p.stream_id.as_deref(), Some(&b"%zz"[..]));
    }

    #[test]
    fn plain_values_are_slices_of_the_form() {
        let form = Bytes::from_static(b"groupId=g1&body=xyz");
        let (_, value) = form_pairs(&form).nth(1).unwrap();
        assert_eq!(value, &b"xyz"[..]);
        assert_eq!(value.as_ptr(), form[16..].as_ptr(), "no copy");
    }

    #[test]
    fn lines_split_on_newline_with_one_trailing_newline_ignored() {
        let split = |s: &'static str| {
            lines(&Bytes::from_static(s.as_bytes()))
                .map(|l| String::from_utf8(l.to_vec()).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(split("a"), ["a"]);
        assert_eq!(split("a\nb"), ["a", "b"]);
        assert_eq!(split("a\nb\n"), ["a", "b"]);
        assert_eq!(split("a\n\nb"), ["a", "", "b"]);
        assert_eq!(split("a\r\nb"), ["a\r", "b"]);
    }

    #[test]
    fn callbacks_must_be_javascript_names() {
        let cb = |form: &str| parse(form).callback().map(|c| c.map(str::to_owned));
        assert_eq!(
            cb("callback=jQuery_1.cb$").unwrap().as_deref(),
            Some("jQuery_1.cb$")
        );
        assert_eq!(cb("callback=+").unwrap(), None);
        assert!(cb("callback=alert(1)").is_err());
        assert!(cb(&format!("callback={}", "a".repeat(129))).is_err());
    }

    proptest! {
        /// Whatever bytes a client form-encodes (the way Java's
        /// URLEncodedUtils and `form_urlencoded` do) decode back exactly.
        #[test]
        fn form_encoding_round_trips(
            pairs in proptest::collection::vec(
                (prop::sample::select(vec!["groupId", "streamId", "body", "dt", "cnt", "other"]),
                 proptest::collection::vec(any::<u8>(), 0..64)),
                0..8),
        ) {
            let encoded: Vec<String> = pairs
                .iter()
                .map(|(name, value)| format!("{name}={}", form_urlencoded::byte_serialize(value).collect::<String>()))
                .collect();
            let form = Bytes::from(encoded.join("&"));
            let decoded: Vec<(Vec<u8>, Bytes)> = form_pairs(&form).map(|(n, v)| (n.into_owned(), v)).collect();
            prop_assert_eq!(decoded.len(), pairs.len());
            for ((name, value), (got_name, got_value)) in pairs.iter().zip(&decoded) {
                prop_assert_eq!(name.as_bytes(), &got_name[..]);
                prop_assert_eq!(&value[..], &got_value[..]);
            }
        }

        /// Arbitrary input never panics, and every decoded value is at most
        /// as long as the form.
        #[test]
        fn any_form_parses(form in proptest::collection::vec(any::<u8>(), 0..256)) {
            let form = Bytes::from(form);
            for (name, value) in form_pairs(&form) {
                prop_assert!(name.len() <= form.len());
                prop_assert!(value.len() <= form.len());
            }
        }
    }
}
