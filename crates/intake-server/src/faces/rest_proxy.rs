//! The Kafka REST Proxy v2 face, for clients of Confluent's REST Proxy and
//! Redpanda's HTTP proxy. The topic is the stream name.
//!
//! - `POST /topics/{topic}` and `POST /topics/{topic}/partitions/{p}` with
//!   `application/vnd.kafka.json.v2+json` (keys and values embedded as JSON)
//!   or `application/vnd.kafka.binary.v2+json` (base64), body
//!   `{"records":[{"key":...,"value":...,"partition":...}]}` →
//!   `{"key_schema_id":null,"value_schema_id":null,"offsets":[{"partition":P,"offset":O,"error_code":null,"error":null}]}`
//!   once every record is durable. A request is all or nothing, so an
//!   answer never mixes offsets with per-record errors.
//! - `GET /topics` (names), `GET /topics/{topic}` (name, configs,
//!   partitions), and Redpanda's
//!   `GET /topics/{topic}/partitions/{p}/records?offset=O&max_bytes=B&timeout=MS`.
//!
//! Errors are `{"error_code":N,"message":"..."}` with Confluent's codes:
//! 40401 topic not found, 40402 partition not found, 42201 invalid key,
//! 42202 invalid value, and the HTTP status as the code for generic
//! failures (415, 400, 422, 413, ...). Answers are
//! `application/vnd.kafka.v2+json`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use intake_core::{Error as CoreError, IngestRequest, Item, LogError, Record, Stream};
use intake_format::api::{Format, StreamDefinition};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::ApiError;
use crate::extract::{Peer, media_type_is, read_body};
use crate::idempotency::{Replayed, request_key};
use crate::state::AppState;

/// Content type of every answer without embedded records.
const V2_JSON: &str = "application/vnd.kafka.v2+json";
/// Embedded JSON keys and values.
const JSON_V2: &str = "application/vnd.kafka.json.v2+json";
/// Embedded base64 keys and values.
const BINARY_V2: &str = "application/vnd.kafka.binary.v2+json";
/// Longest a fetch waits for a first record.
const MAX_FETCH_WAIT: Duration = Duration::from_secs(10);

/// The routes of the REST Proxy face.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/topics", get(list_topics))
        .route("/topics/{topic}", get(show_topic).post(produce))
        .route("/topics/{topic}/partitions/{partition}", post(produce))
        .route("/topics/{topic}/partitions/{partition}/records", get(fetch))
}

/// How keys and values are embedded in the JSON of a request or answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Embedded {
    /// As JSON values.
    Json,
    /// As base64 strings.
    Binary,
}

impl Embedded {
    fn content_type(self) -> &'static str {
        match self {
            Self::Json => JSON_V2,
            Self::Binary => BINARY_V2,
        }
    }
}

/// Why a REST Proxy request was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RestProxyError {
    /// The path names no partition (40402).
    #[error("Partition not found")]
    PartitionNotFound,
    /// A record's key cannot be used (42201).
    #[error("{0}")]
    InvalidKey(String),
    /// A record's value cannot be used (42202).
    #[error("{0}")]
    InvalidValue(String),
    /// The body is not JSON (400).
    #[error("{0}")]
    MalformedBody(String),
    /// The body is JSON of the wrong shape (422).
    #[error("{0}")]
    InvalidBody(String),
    /// A stored record cannot be shown in the asked embedded format (406).
    #[error("{0}")]
    FormatMismatch(String),
    /// A failure shared with the other faces.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<CoreError> for RestProxyError {
    fn from(e: CoreError) -> Self {
        Self::Api(ApiError::Core(e))
    }
}

/// `{"error_code": N, "message": "..."}`.
#[derive(Serialize)]
struct ErrorBody {
    error_code: u32,
    message: String,
}

/// Renders every REST Proxy refusal with its status, Confluent's error
/// code and `Retry-After` when retrying later can succeed.
pub(crate) fn render(err: RestProxyError) -> Response {
    use RestProxyError as E;
    crate::metrics::note_refusal(match &err {
        E::PartitionNotFound => "partition_not_found",
        E::InvalidKey(_) | E::InvalidValue(_) => "invalid_record",
        E::MalformedBody(_) => "malformed_body",
        E::InvalidBody(_) => "bad_request",
        E::FormatMismatch(_) => "not_acceptable",
        E::Api(api) => api.code(),
    });
    let (status, error_code, message) = match err {
        E::PartitionNotFound => (
            StatusCode::NOT_FOUND,
            40402,
            "Partition not found".to_owned(),
        ),
        E::InvalidKey(m) => (StatusCode::UNPROCESSABLE_ENTITY, 42201, m),
        E::InvalidValue(m) => (StatusCode::UNPROCESSABLE_ENTITY, 42202, m),
        E::MalformedBody(m) => (StatusCode::BAD_REQUEST, 400, m),
        E::InvalidBody(m) => (StatusCode::UNPROCESSABLE_ENTITY, 422, m),
        E::FormatMismatch(m) => (StatusCode::NOT_ACCEPTABLE, 40601, m),
        E::Api(api) => return render_api(&api),
    };
    answer(
        status,
        &ErrorBody {
            error_code,
            message,
        },
    )
}

fn render_api(api: &ApiError) -> Response {
    api.log();
    let http = |status: StatusCode| {
        let reason = status.canonical_reason().unwrap_or("Error");
        format!("HTTP {} {reason}", status.as_u16())
    };
    let status = api.status();
    let (status, error_code, message) = match api {
        ApiError::Core(CoreError::StreamNotFound { .. }) => {
            (status, 40401, "Topic not found".to_owned())
        }
        ApiError::Core(CoreError::PartitionNotFound { .. }) => {
            (status, 40402, "Partition not found".to_owned())
        }
        ApiError::Core(CoreError::Format(_)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            42202,
            api.public_message(),
        ),
        ApiError::Core(CoreError::StreamPaused { .. }) => (
            StatusCode::CONFLICT,
            40903,
            format!("Illegal state: {}", api.public_message()),
        ),
        ApiError::Core(CoreError::Log(LogError::OffsetOutOfRange { .. })) => {
            (StatusCode::BAD_REQUEST, 40002, api.public_message())
        }
        ApiError::RouteNotFound { .. } | ApiError::MethodNotAllowed { .. } => {
            (status, u32::from(status.as_u16()), http(status))
        }
        ApiError::UnsupportedMediaType { .. } => (
            status,
            415,
            format!("{}: {}", http(status), api.public_message()),
        ),
        _ if api.retry_after().is_some() => (status, 50003, api.public_message()),
        _ => (status, u32::from(status.as_u16()), api.public_message()),
    };
    let response = answer(
        status,
        &ErrorBody {
            error_code,
            message,
        },
    );
    api.with_retry_after(response)
}

/// `body` as JSON with the v2 content type.
fn answer(status: StatusCode, body: &impl Serialize) -> Response {
    with_content_type(status, body, V2_JSON)
}

fn with_content_type(status: StatusCode, body: &impl Serialize, ct: &'static str) -> Response {
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    response
}

/// Path parameters, refused in this face's shape.
fn path_params<T>(path: Result<Path<T>, PathRejection>) -> Result<T, RestProxyError> {
    path.map(|Path(p)| p)
        .map_err(|e| ApiError::BadRequest(e.body_text()).into())
}

/// A partition number from the path; one that is not a number names no
/// partition.
fn partition_param(raw: &str) -> Result<u32, RestProxyError> {
    raw.parse().map_err(|_| RestProxyError::PartitionNotFound)
}

async fn list_topics(State(state): State<AppState>) -> Response {
    let mut names: Vec<String> = state
        .node
        .streams()
        .iter()
        .map(|s| s.name().to_owned())
        .collect();
    names.sort();
    answer(StatusCode::OK, &names)
}

/// `GET /topics/{topic}`.
#[derive(Serialize)]
struct TopicView {
    name: String,
    configs: BTreeMap<&'static str, String>,
    partitions: Vec<PartitionView>,
}

#[derive(Serialize)]
struct PartitionView {
    partition: u32,
    leader: u32,
    replicas: [ReplicaView; 1],
}

#[derive(Serialize)]
struct ReplicaView {
    broker: u32,
    leader: bool,
    in_sync: bool,
}

async fn show_topic(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let result = async {
        let topic = path_params(path)?;
        let stream = state.node.stream(&topic)?;
        let def = stream.definition();
        let mut configs = BTreeMap::new();
        if let Some(ms) = def.retention_ms {
            configs.insert("retention.ms", ms.to_string());
        }
        if let Some(bytes) = def.retention_bytes {
            configs.insert("retention.bytes", bytes.to_string());
        }
        Ok::<_, RestProxyError>(TopicView {
            name: topic,
            configs,
            partitions: (0..stream.partition_count())
                .map(|partition| PartitionView {
                    partition,
                    leader: 0,
                    replicas: [ReplicaView {
                        broker: 0,
                        leader: true,
                        in_sync: true,
                    }],
                })
                .collect(),
        })
    }
    .await;
    match result {
        Ok(view) => answer(StatusCode::OK, &view),
        Err(e) => render(e),
    }
}

/// A produce request body.
#[derive(Deserialize)]
#[expect(
    dead_code,
    reason = "schema fields are accepted and unused with the json and binary formats"
)]
#[serde(deny_unknown_fields)]
struct ProduceRequest<'a> {
    #[serde(borrow)]
    records: Vec<ProduceRecord<'a>>,
    // Schema fields belong to avro/protobuf/jsonschema; accepted and unused
    // with the json and binary formats, as the REST Proxy does.
    #[serde(default, borrow)]
    key_schema: Option<&'a RawValue>,
    #[serde(default, borrow)]
    value_schema: Option<&'a RawValue>,
    #[serde(default)]
    key_schema_id: Option<u64>,
    #[serde(default)]
    value_schema_id: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProduceRecord<'a> {
    #[serde(default, borrow)]
    key: Option<&'a RawValue>,
    #[serde(default, borrow)]
    value: Option<&'a RawValue>,
    #[serde(default)]
    partition: Option<u32>,
}

/// One offset of a produce answer.
#[derive(Serialize)]
struct OffsetView {
    partition: u32,
    offset: u64,
    error_code: Option<u32>,
    error: Option<String>,
}

#[derive(Serialize)]
struct ProduceResponse {
    key_schema_id: Option<u64>,
    value_schema_id: Option<u64>,
    offsets: Vec<OffsetView>,
}

async fn produce(
    State(state): State<AppState>,
    path: Result<Path<Vec<String>>, PathRejection>,
    from: Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match produce_records(&state, path, from, &headers, body).await {
        Ok((replayed, offsets)) => (
            replayed,
            answer(
                StatusCode::OK,
                &ProduceResponse {
                    key_schema_id: None,
                    value_schema_id: None,
                    offsets,
                },
            ),
        )
            .into_response(),
        Err(e) => render(e),
    }
}

async fn produce_records(
    state: &AppState,
    path: Result<Path<Vec<String>>, PathRejection>,
    from: Peer,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Replayed, Vec<OffsetView>), RestProxyError> {
    let params = path_params(path)?;
    let key = request_key(headers)?;
    let (topic, path_partition) = match params.as_slice() {
        [topic] => (topic, None),
        [topic, partition] => (topic, Some(partition_param(partition)?)),
        _ => return Err(ApiError::BadRequest("unexpected path".into()).into()),
    };
    let ct = headers
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("(not text)"))
        .unwrap_or("(none)");
    let embedded = if media_type_is(ct, &[JSON_V2]) {
        Embedded::Json
    } else if media_type_is(ct, &[BINARY_V2]) {
        Embedded::Binary
    } else {
        return Err(ApiError::UnsupportedMediaType {
            got: ct.to_owned(),
            accepted: "application/vnd.kafka.json.v2+json or application/vnd.kafka.binary.v2+json",
        }
        .into());
    };
    let body = read_body(headers, body, state.limits.max_body_bytes, &state.limits).await?;
    // A topic auto_create_streams makes stores values as the request
    // embeds them: JSON as JSON, binary as bytes.
    let stream = state
        .node
        .stream_for_push_as(topic, || {
            let mut definition = StreamDefinition::new(topic.as_str());
            definition.format = match embedded {
                Embedded::Json => Format::Json,
                Embedded::Binary => Format::Binary,
            };
            definition
        })
        .await?;
    let items = parse_produce(&body, embedded, path_partition)?;
    let mut request = IngestRequest::items(items);
    request.key = key;
    let outcome = state.ingest(&stream, from, request).await?;
    let offsets = outcome
        .offsets
        .iter()
        .map(|&(partition, offset)| OffsetView {
            partition,
            offset,
            error_code: None,
            error: None,
        })
        .collect();
    Ok((Replayed::of(&outcome), offsets))
}

/// The records of a produce request body, with their keys and values
/// decoded from their embedding; `path_partition` (from the URL) overrides
/// each record's own.
fn parse_produce(
    body: &[u8],
    embedded: Embedded,
    path_partition: Option<u32>,
) -> Result<Vec<Item>, RestProxyError> {
    let request: ProduceRequest<'_> = serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            RestProxyError::InvalidBody(format!("invalid produce request: {e}"))
        } else {
            RestProxyError::MalformedBody(format!("the body is not JSON: {e}"))
        }
    })?;
    request
        .records
        .iter()
        .enumerate()
        .map(|(index, record)| {
            Ok(Item {
                key: record
                    .key
                    .map(|k| embedded_bytes(embedded, k))
                    .transpose()
                    .map_err(|why| RestProxyError::InvalidKey(format!("record {index}: key {why}")))?,
                partition: path_partition.or(record.partition),
                ..Item::new(
                    record
                        .value
                        .map(|v| embedded_bytes(embedded, v))
                        .transpose()
                        .map_err(|why| {
                            RestProxyError::InvalidValue(format!("record {index}: value {why}"))
                        })?
                        .ok_or_else(|| {
                            RestProxyError::InvalidValue(format!(
                                "record {index}: value is missing or null; intake stores no tombstones"
                            ))
                        })?,
                )
            })
        })
        .collect()
}

/// For the `rest_produce` fuzz target: [`parse_produce`] on any bytes.
/// Accepted records hold valid JSON values with the JSON embedding.
pub(crate) fn fuzz_produce(body: &[u8], binary: bool) {
    let embedded = if binary {
        Embedded::Binary
    } else {
        Embedded::Json
    };
    let Ok(items) = parse_produce(body, embedded, None) else {
        return;
    };
    if embedded == Embedded::Json {
        for item in items {
            let value: Result<serde::de::IgnoredAny, _> = serde_json::from_slice(&item.value);
            assert!(value.is_ok(), "an accepted value is JSON");
        }
    }
}

/// The bytes of an embedded key or value: the JSON text itself, or the
/// bytes of a base64 string.
fn embedded_bytes(embedded: Embedded, raw: &RawValue) -> Result<Bytes, &'static str> {
    match embedded {
        Embedded::Json => Ok(Bytes::copy_from_slice(raw.get().as_bytes())),
        Embedded::Binary => {
            let text: String =
                serde_json::from_str(raw.get()).map_err(|_| "must be a base64 string")?;
            BASE64
                .decode(text)
                .map(Bytes::from)
                .map_err(|_| "is not valid base64")
        }
    }
}

#[derive(Debug, Deserialize)]
struct FetchParams {
    /// First offset; the oldest retained when absent.
    offset: Option<u64>,
    /// Most payload bytes to return.
    max_bytes: Option<usize>,
    /// Milliseconds to wait for a first record when none is there.
    timeout: Option<u64>,
}

/// One record of a fetch answer (Redpanda's shape).
#[derive(Serialize)]
struct FetchedRecord<'a> {
    topic: &'a str,
    key: Option<Box<RawValue>>,
    value: Box<RawValue>,
    partition: u32,
    offset: u64,
}

async fn fetch(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<FetchParams>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    match fetch_records(&state, path, query, &headers).await {
        Ok(response) => response,
        Err(e) => render(e),
    }
}

async fn fetch_records(
    state: &AppState,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<FetchParams>, QueryRejection>,
    headers: &HeaderMap,
) -> Result<Response, RestProxyError> {
    let (topic, partition) = path_params(path)?;
    let partition = partition_param(&partition)?;
    let Query(params) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let stream = state.node.stream(&topic)?;
    let log = Arc::clone(stream.partition(partition)?);
    let embedded = match headers.get(ACCEPT).and_then(|v| v.to_str().ok()) {
        Some(accept) if accept.contains(JSON_V2) => Embedded::Json,
        Some(accept) if accept.contains(BINARY_V2) => Embedded::Binary,
        _ if stream.format().stores_json() => Embedded::Json,
        _ => Embedded::Binary,
    };
    let offset = params.offset.unwrap_or_else(|| log.start_offset());
    let max_bytes = params
        .max_bytes
        .unwrap_or(state.limits.max_read_bytes)
        .clamp(1, state.limits.max_read_bytes);
    let wait = Duration::from_millis(params.timeout.unwrap_or(0)).min(MAX_FETCH_WAIT);
    if wait > Duration::ZERO && offset >= log.next_offset() {
        let mut watch = log.subscribe();
        let _ = tokio::time::timeout(wait, async {
            while offset >= log.next_offset() {
                if watch.changed().await.is_err() {
                    break;
                }
            }
        })
        .await;
    }
    let limit = state.limits.max_read_records;
    let reader = Arc::clone(&log);
    let batch = tokio::task::spawn_blocking(move || reader.read(offset, limit, max_bytes))
        .await
        .map_err(|e| ApiError::BadRequest(format!("read failed: {e}")))?
        .map_err(CoreError::from)?;
    let records = batch
        .records
        .into_iter()
        .map(|record| fetched(&stream, partition, record, embedded))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(with_content_type(
        StatusCode::OK,
        &records,
        embedded.content_type(),
    ))
}

/// A stored record in the asked embedded format.
fn fetched(
    stream: &Stream,
    partition: u32,
    record: Record,
    embedded: Embedded,
) -> Result<FetchedRecord<'_>, RestProxyError> {
    let mismatch = |what: &str| {
        RestProxyError::FormatMismatch(format!(
            "the {what} of the record at offset {} is not JSON; fetch it with Accept: {BINARY_V2}",
            record.offset
        ))
    };
    let (key, value) = match embedded {
        Embedded::Binary => (
            record.key.as_deref().map(base64_json),
            base64_json(&record.value),
        ),
        Embedded::Json => {
            let key = match record.key.as_deref() {
                None => None,
                Some(k) => Some(
                    json_text(k)
                        .or_else(|| {
                            let text = std::str::from_utf8(k).ok()?;
                            RawValue::from_string(serde_json::to_string(text).ok()?).ok()
                        })
                        .ok_or_else(|| mismatch("key"))?,
                ),
            };
            (
                key,
                json_text(&record.value).ok_or_else(|| mismatch("value"))?,
            )
        }
    };
    Ok(FetchedRecord {
        topic: stream.name(),
        key,
        value,
        partition,
        offset: record.offset,
    })
}

/// Bytes as a JSON base64 string.
fn base64_json(bytes: &[u8]) -> Box<RawValue> {
    let quoted = format!("\"{}\"", BASE64.encode(bytes));
    RawValue::from_string(quoted).unwrap_or_else(|_| RawValue::NULL.to_owned())
}

/// Bytes that are JSON text, as a raw JSON value.
fn json_text(bytes: &[u8]) -> Option<Box<RawValue>> {
    let text = std::str::from_utf8(bytes).ok()?;
    RawValue::from_string(text.trim().to_owned()).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a panic in a test is a failed test")]

    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any bytes sent base64-embedded are stored exactly.
        #[test]
        fn binary_embedding_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let raw = base64_json(&bytes);
            prop_assert_eq!(&embedded_bytes(Embedded::Binary, &raw).unwrap()[..], &bytes[..]);
        }

        /// Arbitrary produce bodies never panic the parser.
        #[test]
        fn any_produce_body_parses_or_refuses(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = serde_json::from_slice::<ProduceRequest<'_>>(&body);
        }
    }

    #[test]
    fn json_embedding_keeps_the_json_text() {
        let request: ProduceRequest<'_> =
            serde_json::from_str(r#"{"records":[{"key":"k","value":{"a": [1, 2]}}]}"#).unwrap();
        let record = &request.records[0];
        assert_eq!(
            embedded_bytes(Embedded::Json, record.key.unwrap()).unwrap(),
            Bytes::from_static(br#""k""#)
        );
        assert_eq!(
            embedded_bytes(Embedded::Json, record.value.unwrap()).unwrap(),
            Bytes::from_static(br#"{"a": [1, 2]}"#)
        );
        assert_eq!(
            embedded_bytes(Embedded::Binary, record.key.unwrap()),
            Err("is not valid base64")
        );
    }
}
