//! The CKafka DataHub face: `SendMessage` in the Tencent Cloud API 3.0
//! style, so the official Tencent Cloud SDKs work when pointed at a node.
//!
//! `POST /` with `X-TC-Action: SendMessage` (`X-TC-Version` and
//! `X-TC-Region` are accepted and ignored) and `{"DataHubId": "...",
//! "Message": [{"Body": "...", "Key": "..."}]}`. The stream is the one
//! whose `bindings.datahub_id` matches. Each `Body` is one record (checked
//! as JSON on a JSON stream, kept as it is on a binary one); `Key` is its
//! key.
//!
//! When the binding has `datahub_credentials`, a request must be signed
//! with TC3-HMAC-SHA256 by one of them (see [`super::tc3`]), or, under
//! `auth = "tokens"`, carry a token with write scope instead; otherwise the
//! signature the SDKs always send is not checked, and under `auth =
//! "tokens"` a token is needed.
//!
//! Every answer is HTTP 200 with `Content-Type: application/json`, as in
//! API 3.0: `{"Response":{"MessageId":[...],"RequestId":"..."}}`, or
//! `{"Response":{"Error":{"Code":"...","Message":"..."},"RequestId":"..."}}`.
//! A message id is `datahubId:stream:partition:offset:receivedMs:durableMs`;
//! an answer without an error means every message is durable. On a stream
//! with `ack = "sink"` and a Kafka sink, it is the seed's
//! `datahubId:topic:partition:offset:receivedMs:sentToKafkaMs`, with the
//! Kafka topic, partition and offset from the broker's delivery report.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::OriginalUri;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use std::collections::HashMap;

use intake_core::{Error as CoreError, IngestOutcome, IngestRequest, Item, LogError};
use intake_format::FormatError;
use intake_format::api::{Format, StreamDefinition};
use intake_forward::BrokerPosition;
use serde::Serialize;
use serde_json::{Map, Value};

use super::tc3::{self, SignatureError, SignedRequest};
use crate::auth::{AuthMode, Caller, check_write};
use crate::content_encoding;
use crate::error::ApiError;
use crate::extract::{Peer, is_json, read_encoded_body};
use crate::idempotency::{Replayed, request_key};
use crate::state::AppState;

/// The one action served.
const SEND_MESSAGE: &str = "SendMessage";
/// Most messages one `SendMessage` may carry.
pub(crate) const MAX_MESSAGES: usize = 500;
/// Largest `SendMessage` request body, in bytes (5 MiB).
pub(crate) const MAX_REQUEST_BYTES: usize = 5 * 1024 * 1024;

/// The routes of the CKafka face.
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/", post(action))
}

/// Why a `SendMessage` was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CkafkaError {
    /// No `X-TC-Action` header.
    #[error("the X-TC-Action header is required; this endpoint serves {SEND_MESSAGE}")]
    MissingAction,
    /// An action other than `SendMessage`.
    #[error("the action {0:?} does not exist here; this endpoint serves {SEND_MESSAGE}")]
    InvalidAction(String),
    /// The body is not JSON.
    #[error("the request body is not valid JSON: {0}")]
    NotJson(String),
    /// A required parameter is absent.
    #[error("the request is missing the required parameter `{0}`")]
    MissingParameter(String),
    /// A parameter `SendMessage` does not have.
    #[error("the parameter `{0}` is not a parameter of {SEND_MESSAGE}")]
    UnknownParameter(String),
    /// A parameter has a value that is not accepted.
    #[error("the value of `{name}` is invalid: {reason}")]
    InvalidParameterValue {
        /// The parameter, e.g. `Message.3.Body`.
        name: String,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// No stream is bound to the DataHubId.
    #[error("the DataHubId {0:?} does not exist")]
    DataHubNotFound(String),
    /// No stream is bound to the DataHubId, and `auto_create_streams`
    /// could not make one.
    #[error(
        "the DataHubId {datahub_id:?} does not exist, and auto_create_streams cannot make a stream for it: {reason}"
    )]
    DataHubNotCreated {
        /// The DataHubId sent.
        datahub_id: String,
        /// Why the stream could not be made.
        reason: String,
    },
    /// The stream is paused (the DataHub task is suspended).
    #[error("task status suspended [{0}]")]
    Suspended(String),
    /// The TC3 signature was refused.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// A failure shared with the other faces.
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// `{"Response": ...}`.
#[derive(Serialize)]
struct Envelope<T> {
    #[serde(rename = "Response")]
    response: T,
}

#[derive(Serialize)]
struct SendMessageResponse<'a> {
    #[serde(rename = "MessageId")]
    message_id: Vec<String>,
    #[serde(rename = "RequestId")]
    request_id: &'a str,
}

#[derive(Serialize)]
struct ErrorResponse<'a> {
    #[serde(rename = "Error")]
    error: ErrorDetail<'a>,
    #[serde(rename = "RequestId")]
    request_id: &'a str,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    #[serde(rename = "Code")]
    code: &'a str,
    #[serde(rename = "Message")]
    message: String,
}

/// The stream `auto_create_streams` makes for a `SendMessage` to an
/// unbound DataHubId: named after it, bound to it, storing each `Body` as
/// it is (`binary`).
fn auto_created_definition(datahub_id: &str) -> StreamDefinition {
    let mut definition = StreamDefinition::new(datahub_id);
    definition.format = Format::Binary;
    definition.bindings.datahub_id = Some(datahub_id.to_owned());
    definition
}

/// Renders every CKafka refusal: HTTP 200, `Content-Type:
/// application/json`, the API 3.0 error envelope, and `Retry-After` when
/// retrying later can succeed.
pub(crate) fn render(err: CkafkaError, request_id: Option<&str>) -> Response {
    use CkafkaError as E;
    crate::metrics::note_refusal(match &err {
        E::MissingAction | E::MissingParameter(_) => "missing_parameter",
        E::InvalidAction(_) => "not_found",
        E::NotJson(_) => "malformed_body",
        E::UnknownParameter(_) | E::InvalidParameterValue { .. } => "bad_request",
        E::DataHubNotFound(_) | E::DataHubNotCreated { .. } => "stream_not_found",
        E::Suspended(_) => "stream_paused",
        E::Signature(_) => "unauthorized",
        E::Api(api) => api.code(),
    });
    let code = match &err {
        E::MissingAction | E::MissingParameter(_) => "MissingParameter",
        E::InvalidAction(_) => "InvalidAction",
        E::NotJson(_) => "InvalidParameter",
        E::UnknownParameter(_) => "UnknownParameter",
        E::InvalidParameterValue { .. } => "InvalidParameterValue",
        E::DataHubNotFound(_) | E::DataHubNotCreated { .. } => "ResourceNotFound",
        E::Suspended(_) => "FailedOperation",
        E::Signature(e) => e.code(),
        E::Api(api) => {
            api.log();
            api_code(api)
        }
    };
    let message = match &err {
        E::Api(api) => api.public_message(),
        other => other.to_string(),
    };
    let generated;
    let request_id = match request_id {
        Some(id) => id,
        None => {
            generated = new_request_id();
            &generated
        }
    };
    let mut response = Json(Envelope {
        response: ErrorResponse {
            error: ErrorDetail { code, message },
            request_id,
        },
    })
    .into_response();
    if let E::Api(api) = &err {
        response = api.with_retry_after(response);
    }
    response
}

/// The API 3.0 error code of a shared failure.
fn api_code(err: &ApiError) -> &'static str {
    match err {
        ApiError::Core(core) => match core {
            CoreError::StreamPaused { .. } => "FailedOperation",
            CoreError::StreamNotFound { .. } => "ResourceNotFound",
            CoreError::InvalidIdempotencyKey { .. } => "InvalidParameterValue.IdempotencyKey",
            CoreError::IdempotencyKeyReused { .. } => "FailedOperation.IdempotencyKeyReused",
            CoreError::OutOfOrderSequence { .. } => "FailedOperation.OutOfOrderSequence",
            CoreError::Format(_)
            | CoreError::PartitionNotFound { .. }
            | CoreError::TooManyRecords { .. }
            | CoreError::RecordTooLarge { .. }
            | CoreError::TooDeep { .. }
            | CoreError::Log(LogError::BatchTooLarge { .. }) => "InvalidParameterValue",
            CoreError::Log(LogError::QueueFull { .. }) => "RequestLimitExceeded",
            CoreError::Log(LogError::NoSpace { .. }) => "ResourceInsufficient",
            CoreError::ShuttingDown | CoreError::Log(LogError::Closed { .. }) => {
                "ServiceUnavailable"
            }
            CoreError::Log(_) | CoreError::Catalog(_) | CoreError::Forward(_)
                if err.retry_after().is_some() =>
            {
                "ResourceUnavailable"
            }
            _ => "InternalError",
        },
        ApiError::PayloadTooLarge { .. } | ApiError::DecompressedTooLarge { .. } => {
            "InvalidParameterValue"
        }
        ApiError::UnsupportedMediaType { .. } | ApiError::UnsupportedEncoding { .. } => {
            "InvalidRequest"
        }
        ApiError::SlowClient(_) | ApiError::BodyTooSlow { .. } => "InvalidRequest",
        ApiError::RateLimited { .. } => "RequestLimitExceeded",
        ApiError::TooManyConnections(_) => "RequestLimitExceeded",
        ApiError::BadRequest(_) => "InvalidParameter",
        ApiError::RouteNotFound { .. } | ApiError::NotATable(_) => "InvalidAction",
        ApiError::MethodNotAllowed { .. } => "UnsupportedOperation",
        ApiError::Overloaded => "RequestLimitExceeded",
        ApiError::ShuttingDown => "ServiceUnavailable",
        ApiError::Timeout(_) => "InternalError",
        ApiError::Unauthorized(_) => "AuthFailure.TokenFailure",
        ApiError::Forbidden(_) => "AuthFailure.UnauthorizedOperation",
    }
}

/// A fresh `RequestId`.
fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// What `SendMessage` needs of the request besides its body.
struct RequestParts<'a> {
    caller: Option<&'a Caller>,
    from: Peer,
    method: &'a Method,
    uri: &'a axum::http::Uri,
    headers: &'a HeaderMap,
}

async fn action(
    State(state): State<AppState>,
    caller: Option<axum::Extension<Caller>>,
    from: Peer,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request_id = new_request_id();
    let caller = caller.map(|axum::Extension(c)| c);
    let parts = RequestParts {
        caller: caller.as_ref(),
        from,
        method: &method,
        uri: &uri,
        headers: &headers,
    };
    match send_message(&state, &parts, body).await {
        Ok((replayed, message_id)) => (
            replayed,
            Json(Envelope {
                response: SendMessageResponse {
                    message_id,
                    request_id: &request_id,
                },
            }),
        )
            .into_response(),
        Err(e) => render(e, Some(&request_id)),
    }
}

/// One message as parsed.
struct Message {
    body: Bytes,
    key: Option<Bytes>,
}

/// Checks the action, reads and checks the request, ingests its messages
/// and returns their ids in order.
async fn send_message(
    state: &AppState,
    parts: &RequestParts<'_>,
    body: Body,
) -> Result<(Replayed, Vec<String>), CkafkaError> {
    let headers = parts.headers;
    let key = request_key(headers)?;
    match headers.get("x-tc-action").map(HeaderValue::to_str) {
        None => return Err(CkafkaError::MissingAction),
        Some(Ok(SEND_MESSAGE)) => {}
        Some(other) => {
            return Err(CkafkaError::InvalidAction(
                other.unwrap_or("(not text)").to_owned(),
            ));
        }
    }
    if let Some(ct) = headers.get(CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("(not text)");
        if !is_json(ct) {
            return Err(ApiError::UnsupportedMediaType {
                got: ct.to_owned(),
                accepted: "application/json",
            }
            .into());
        }
    }
    let limit = MAX_REQUEST_BYTES.min(state.limits.max_body_bytes);
    let sent = read_encoded_body(headers, body, limit, &state.limits).await?;
    let body = content_encoding::decode(headers, sent.clone(), state.limits.max_decompressed_bytes)
        .await?;
    let (datahub_id, messages) = parse_request(&body)?;
    let stream = state
        .node
        .bound_stream_for_push(
            |node| node.stream_by_datahub(&datahub_id),
            || auto_created_definition(&datahub_id),
        )
        .await
        .map_err(|e| match e {
            CoreError::InvalidDefinition { reason, .. } => CkafkaError::DataHubNotCreated {
                datahub_id: datahub_id.clone(),
                reason,
            },
            other => ApiError::from(other).into(),
        })?
        .ok_or_else(|| CkafkaError::DataHubNotFound(datahub_id.clone()))?;
    authorize(state, parts, &datahub_id, &stream, &sent)?;
    let items = messages
        .into_iter()
        .map(|m| Item {
            key: m.key,
            ..Item::new(m.body)
        })
        .collect();
    let mut request = IngestRequest::items(items);
    request.key = key;
    let outcome = state
        .ingest(&stream, parts.from, request)
        .await
        .map_err(|e| match e {
            ApiError::Core(CoreError::StreamPaused { .. }) => {
                CkafkaError::Suspended(datahub_id.clone())
            }
            ApiError::Core(CoreError::Format(FormatError::InvalidRecord { index, .. }))
            | ApiError::Core(CoreError::RecordTooLarge { index, .. }) => {
                CkafkaError::InvalidParameterValue {
                    name: format!("Message.{index}.Body"),
                    reason: e.to_string(),
                }
            }
            other => other.into(),
        })?;
    Ok((
        Replayed::of(&outcome),
        message_ids(&datahub_id, stream.name(), &outcome),
    ))
}

/// May this request send to `stream`, bound to `datahub_id`? When the
/// binding has credentials: a valid TC3 signature by one of them, or an
/// unsigned request with a token that may write. Otherwise what the auth
/// mode asks (a signature then names a SecretId no binding has).
fn authorize(
    state: &AppState,
    parts: &RequestParts<'_>,
    datahub_id: &str,
    stream: &intake_core::Stream,
    sent: &[u8],
) -> Result<(), CkafkaError> {
    let credentials = &stream.bindings().datahub_credentials;
    let signed = tc3::is_signed(parts.headers);
    if credentials.is_empty() {
        if signed && parts.caller.is_none() && state.auth_mode() == AuthMode::Tokens {
            let header = parts
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            return Err(SignatureError::SecretIdNotFound {
                secret_id: tc3::parse_authorization(header)?.secret_id.to_owned(),
                datahub_id: datahub_id.to_owned(),
            }
            .into());
        }
        return Ok(check_write(state, parts.caller, stream.name())?);
    }
    if !signed && parts.caller.is_some() {
        return Ok(check_write(state, parts.caller, stream.name())?);
    }
    let request = SignedRequest {
        method: parts.method,
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: parts.headers,
        body: sent,
    };
    let now_s = intake_core::now_ms() / 1000;
    Ok(tc3::verify(request, datahub_id, credentials, now_s)?)
}

/// One id per message, in request order, shaped like CKafka's
/// `datahubId:topic:partition:offset:receivedMs:sentMs`. Under `ack =
/// "sink"` with a Kafka sink the middle fields are the Kafka topic,
/// partition and offset and the time the record was sent to Kafka;
/// otherwise they are the stream, its partition and offset and the time
/// the record was durable here.
fn message_ids(datahub_id: &str, stream_name: &str, outcome: &IngestOutcome) -> Vec<String> {
    let kafka: HashMap<(u32, u64), (&str, i32, i64, i64)> = outcome
        .sink_positions
        .iter()
        .filter_map(|(partition, offset, position)| match position {
            BrokerPosition::Kafka {
                topic,
                partition: kp,
                offset: ko,
                sent_at_ms,
            } => Some((
                (*partition, *offset),
                (topic.as_str(), *kp, *ko, *sent_at_ms),
            )),
            BrokerPosition::Nats { .. } => None,
        })
        .collect();
    let received = outcome.received_at_ms;
    outcome
        .offsets
        .iter()
        .map(|at @ (partition, offset)| match kafka.get(at) {
            Some((topic, kp, ko, sent)) => {
                format!("{datahub_id}:{topic}:{kp}:{ko}:{received}:{sent}")
            }
            None => format!(
                "{datahub_id}:{stream_name}:{partition}:{offset}:{received}:{}",
                outcome.durable_at_ms
            ),
        })
        .collect()
}

/// Parses `{"DataHubId": "...", "Message": [{"Body": "...", "Key": "..."}]}`
/// with API 3.0's error codes for each kind of fault.
fn parse_request(body: &[u8]) -> Result<(String, Vec<Message>), CkafkaError> {
    let request: Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| CkafkaError::NotJson(e.to_string()))?;
    let mut datahub_id = None;
    let mut message = None;
    for (name, value) in request {
        match name.as_str() {
            "DataHubId" => datahub_id = Some(value),
            "Message" => message = Some(value),
            _ => return Err(CkafkaError::UnknownParameter(name)),
        }
    }
    let datahub_id = match datahub_id {
        None | Some(Value::Null) => {
            return Err(CkafkaError::MissingParameter("DataHubId".into()));
        }
        Some(Value::String(id)) if !id.is_empty() => id,
        Some(other) => return Err(invalid("DataHubId", "expected a non-empty string", &other)),
    };
    let messages = match message {
        None | Some(Value::Null) => return Err(CkafkaError::MissingParameter("Message".into())),
        Some(Value::Array(messages)) => messages,
        Some(other) => {
            return Err(invalid("Message", "expected an array of messages", &other));
        }
    };
    if messages.is_empty() || messages.len() > MAX_MESSAGES {
        return Err(CkafkaError::InvalidParameterValue {
            name: "Message".into(),
            reason: format!(
                "it holds {} messages; 1 to {MAX_MESSAGES} are accepted per request",
                messages.len()
            ),
        });
    }
    let messages = messages
        .into_iter()
        .enumerate()
        .map(|(index, m)| parse_message(index, m))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((datahub_id, messages))
}

/// For the `ckafka_request` fuzz target: a `SendMessage` body, and the same
/// bytes as an `Authorization` header. An accepted request has 1 to 500
/// messages and prints back to JSON that parses the same.
pub(crate) fn fuzz_request(body: &[u8]) {
    if let Ok(header) = std::str::from_utf8(body)
        && let Ok(auth) = tc3::parse_authorization(header)
    {
        assert!(!auth.secret_id.is_empty() && !auth.signed_headers.is_empty());
    }
    let Ok((datahub_id, messages)) = parse_request(body) else {
        return;
    };
    assert!((1..=MAX_MESSAGES).contains(&messages.len()) && !datahub_id.is_empty());
    let text = |b: &Bytes| String::from_utf8(b.to_vec()).ok();
    let printed: Vec<Value> = messages
        .iter()
        .map(|m| serde_json::json!({"Body": text(&m.body), "Key": m.key.as_ref().map(text)}))
        .collect();
    let printed = serde_json::json!({"DataHubId": datahub_id, "Message": printed}).to_string();
    let Ok((id_again, again)) = parse_request(printed.as_bytes()) else {
        panic!("a printed request parses: {printed}");
    };
    assert_eq!(id_again, datahub_id);
    assert_eq!(again.len(), messages.len());
    for (a, b) in again.iter().zip(&messages) {
        assert_eq!((&a.body, &a.key), (&b.body, &b.key));
    }
}

fn parse_message(index: usize, message: Value) -> Result<Message, CkafkaError> {
    let Value::Object(fields) = message else {
        return Err(invalid(
            &format!("Message.{index}"),
            "expected an object with Body and Key",
            &message,
        ));
    };
    let mut body = None;
    let mut key = None;
    for (name, value) in fields {
        let param = format!("Message.{index}.{name}");
        match (name.as_str(), value) {
            ("Body", Value::String(s)) => body = Some(Bytes::from(s)),
            ("Body", Value::Null) => {}
            ("Body", other) => return Err(invalid(&param, "expected a string", &other)),
            ("Key", Value::String(s)) => key = Some(Bytes::from(s)),
            ("Key", Value::Null) => {}
            ("Key", other) => return Err(invalid(&param, "expected a string", &other)),
            _ => return Err(CkafkaError::UnknownParameter(param)),
        }
    }
    let body =
        body.ok_or_else(|| CkafkaError::MissingParameter(format!("Message.{index}.Body")))?;
    Ok(Message { body, key })
}

fn invalid(name: &str, expected: &str, got: &Value) -> CkafkaError {
    let mut shown = got.to_string();
    if shown.len() > 64 {
        let cut = (0..=61)
            .rev()
            .find(|&i| shown.is_char_boundary(i))
            .unwrap_or(0);
        shown.truncate(cut);
        shown.push_str("...");
    }
    CkafkaError::InvalidParameterValue {
        name: name.to_owned(),
        reason: format!("{expected}, got {shown}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a panic in a test is a failed test")]

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn parse(v: Value) -> Result<(String, Vec<Message>), CkafkaError> {
        parse_request(v.to_string().as_bytes())
    }

    #[test]
    fn messages_parse_in_order_with_optional_keys() {
        let (id, messages) = parse(json!({"DataHubId": "datahub-1", "Message": [
            {"Body": "a", "Key": "k"}, {"Body": "b"}, {"Body": "c", "Key": null}]}))
        .unwrap();
        assert_eq!(id, "datahub-1");
        let got: Vec<_> = messages
            .iter()
            .map(|m| (m.body.clone(), m.key.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Bytes::from("a"), Some(Bytes::from("k"))),
                (Bytes::from("b"), None),
                (Bytes::from("c"), None)
            ]
        );
    }

    #[test]
    fn faults_get_their_own_codes() {
        let msg = |r: Result<(String, Vec<Message>), CkafkaError>| r.err().unwrap().to_string();
        assert_eq!(
            msg(parse(json!({"Message": [{"Body": "a"}]}))),
            "the request is missing the required parameter `DataHubId`"
        );
        assert_eq!(
            msg(parse(json!({"DataHubId": "d", "Message": [{"Key": "a"}]}))),
            "the request is missing the required parameter `Message.0.Body`"
        );
        assert_eq!(
            msg(parse(json!({"DataHubId": "d", "Message": [{"Body": 1}]}))),
            "the value of `Message.0.Body` is invalid: expected a string, got 1"
        );
        assert_eq!(
            msg(parse(
                json!({"DataHubId": "d", "Message": [], "Topic": "x"})
            )),
            "the parameter `Topic` is not a parameter of SendMessage"
        );
        assert!(matches!(
            parse_request(b"{nope"),
            Err(CkafkaError::NotJson(_))
        ));
    }

    #[test]
    fn message_ids_carry_the_kafka_position_when_the_sink_reported_one() {
        let outcome = IngestOutcome {
            records: 2,
            partitions: Vec::new(),
            offsets: vec![(1, 7), (1, 8)],
            received_at_ms: 1000,
            durable_at_ms: 1005,
            replayed: false,
            sink_positions: vec![(
                1,
                7,
                BrokerPosition::Kafka {
                    topic: "orders".into(),
                    partition: 4,
                    offset: 2,
                    sent_at_ms: 1010,
                },
            )],
        };
        assert_eq!(
            message_ids("datahub-1", "s", &outcome),
            [
                "datahub-1:orders:4:2:1000:1010",
                "datahub-1:s:1:8:1000:1005"
            ]
        );
    }

    proptest! {
        /// Any JSON-representable strings come back as the same bytes.
        #[test]
        fn bodies_and_keys_round_trip(
            bodies in proptest::collection::vec((any::<String>(), proptest::option::of(any::<String>())), 1..20)
        ) {
            let message: Vec<Value> = bodies
                .iter()
                .map(|(b, k)| json!({"Body": b, "Key": k}))
                .collect();
            let (_, parsed) = parse(json!({"DataHubId": "d", "Message": message})).unwrap();
            for ((body, key), m) in bodies.iter().zip(parsed) {
                prop_assert_eq!(body.as_bytes(), &m.body[..]);
                prop_assert_eq!(key.as_deref().map(str::as_bytes), m.key.as_deref());
            }
        }

        /// Arbitrary bytes never panic the parser.
        #[test]
        fn any_body_parses_or_refuses(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_request(&body);
        }
    }
}
