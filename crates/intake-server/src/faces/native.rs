//! The native face: `/v1/streams...`, stream management, push, read by
//! offset and live tail (SSE), in the shapes of DESIGN.md's API contract.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post, put};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::Stream as FuturesStream;
use futures::StreamExt;
use intake_core::{IngestRequest, Record, Stream};
use intake_format::Framing;
use intake_format::api::{
    AppendResponse, ErrorResponse, ReadResponse, RecordView, StateChange, StreamDefinition,
    StreamList, StreamView,
};
use intake_format::filter::Filter;
use serde::Deserialize;
use serde_json::value::RawValue;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::{ObjectBuilder, RefOr, Schema, Type};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use crate::error::ApiError;
use crate::extract::{AdminJson, ApiPath, ApiQuery, Peer, PushBody, is_json, media_type_is};
use crate::idempotency::{Replayed, request_key};
use crate::state::AppState;

/// The `{name}` path parameter of the stream routes.
#[derive(IntoParams)]
#[into_params(names("name"), parameter_in = Path)]
pub(crate) struct StreamName(
    /// The stream's name.
    #[allow(dead_code)]
    String,
);

/// Records a tail reads from a partition at once.
const TAIL_READ_RECORDS: usize = 500;
/// Records a read returns when `limit` is not given.
const DEFAULT_READ_LIMIT: usize = 100;

/// The routes of the native face.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/streams", post(create_stream).get(list_streams))
        .route("/v1/streams/{name}", get(show_stream).delete(delete_stream))
        .route("/v1/streams/{name}/state", put(set_state))
        .route("/v1/streams/{name}/records", post(push))
        .route(
            "/v1/streams/{name}/partitions/{partition}/records",
            get(read),
        )
        .route("/v1/streams/{name}/tail", get(tail))
        .route("/v1/tables/{name}/rows", get(table_rows))
}

/// Creates a stream from its definition (only `name` is required).
#[utoipa::path(post, path = "/v1/streams", tag = "streams",
    request_body = StreamDefinition,
    responses(
        (status = 201, description = "Created: the stored definition, defaults filled in", body = StreamView),
        (status = 400, description = "The definition is invalid (the message names the field)", body = ErrorResponse),
        (status = 409, description = "A stream of that name exists", body = ErrorResponse),
        (status = 413, description = "The body is over the limit", body = ErrorResponse),
        (status = 415, description = "The body is not JSON", body = ErrorResponse),
    ))]
pub(crate) async fn create_stream(
    State(state): State<AppState>,
    AdminJson(def): AdminJson<StreamDefinition>,
) -> Result<(StatusCode, Json<StreamView>), ApiError> {
    let stream = state.node.create_stream(def).await?;
    Ok((StatusCode::CREATED, Json(stream.view())))
}

/// Every stream, by name.
#[utoipa::path(get, path = "/v1/streams", tag = "streams",
    responses((status = 200, description = "Every stream", body = StreamList)))]
pub(crate) async fn list_streams(State(state): State<AppState>) -> Json<StreamList> {
    Json(StreamList {
        streams: state.node.streams().iter().map(|s| s.view()).collect(),
    })
}

/// One stream: its definition and its partitions' offsets.
#[utoipa::path(get, path = "/v1/streams/{name}", tag = "streams",
    params(StreamName),
    responses(
        (status = 200, description = "The stream", body = StreamView),
        (status = 404, description = "No such stream", body = ErrorResponse),
    ))]
pub(crate) async fn show_stream(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<StreamView>, ApiError> {
    Ok(Json(state.node.stream(&name)?.view()))
}

/// Deletes a stream and its records.
#[utoipa::path(delete, path = "/v1/streams/{name}", tag = "streams",
    params(StreamName),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such stream", body = ErrorResponse),
    ))]
pub(crate) async fn delete_stream(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.node.delete_stream(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pauses (every face refuses pushes, each in its own shape) or resumes a
/// stream.
#[utoipa::path(put, path = "/v1/streams/{name}/state", tag = "streams",
    params(StreamName),
    request_body = StateChange,
    responses(
        (status = 200, description = "The stream in its new state", body = StreamView),
        (status = 400, description = "The body is not a state change", body = ErrorResponse),
        (status = 404, description = "No such stream", body = ErrorResponse),
        (status = 413, description = "The body is over the limit", body = ErrorResponse),
        (status = 415, description = "The body is not JSON", body = ErrorResponse),
    ))]
pub(crate) async fn set_state(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    AdminJson(change): AdminJson<StateChange>,
) -> Result<Json<StreamView>, ApiError> {
    Ok(Json(
        state.node.set_state(&name, change.state).await?.view(),
    ))
}

const JSON_TYPES: &str = "application/json, application/x-ndjson, or application/octet-stream (read as the stream's format)";

/// How a native push body holds its records, from its content type. JSON
/// streams take JSON or NDJSON; other formats take the body as it is.
fn framing(content_type: Option<&str>, stream: &Stream) -> Result<Framing, ApiError> {
    const NDJSON: &[&str] = &[
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
    ];
    if !stream.format().takes_json_bodies() {
        return Ok(Framing::Raw);
    }
    match content_type {
        None => Ok(Framing::Raw),
        Some(ct) if media_type_is(ct, &["application/octet-stream"]) => Ok(Framing::Raw),
        Some(ct) if is_json(ct) => Ok(Framing::Json),
        Some(ct) if media_type_is(ct, NDJSON) => Ok(Framing::Ndjson),
        Some(ct) => Err(ApiError::UnsupportedMediaType {
            got: ct.to_owned(),
            accepted: JSON_TYPES,
        }),
    }
}

/// Pushes records; answers once every one is durable (all or nothing).
#[utoipa::path(post, path = "/v1/streams/{name}/records", tag = "records",
    params(StreamName, crate::idempotency::ExactlyOnceHeaders),
    request_body(description = "A JSON value (one record) or array (one record per element), NDJSON (one record per line), or for formats other than json the body as the format reads it",
        content(
            (Value = "application/json"),
            (String = "application/x-ndjson"),
            (Vec<u8> = "application/octet-stream"),
        )),
    responses(
        (status = 200, description = "Every record is durable (or, with `Idempotent-Replayed: true`, was by an earlier request with the same key)", body = AppendResponse),
        (status = 400, description = "The body is malformed, a record is invalid (the message names the line or record), or the request key is (`invalid_idempotency_key`)", body = ErrorResponse),
        (status = 404, description = "No such stream", body = ErrorResponse),
        (status = 409, description = "The stream is paused, or the producer sequence is not the next one (`out_of_order_sequence`, with `expected`)", body = ErrorResponse),
        (status = 413, description = "The body, a record or the record count is over its limit", body = ErrorResponse),
        (status = 415, description = "A content type or encoding the stream does not read", body = ErrorResponse),
        (status = 422, description = "The Idempotency-Key was used for a different request within the stream's dedup_window", body = ErrorResponse),
    ))]
pub(crate) async fn push(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    from: Peer,
    body: PushBody,
) -> Result<(Replayed, Json<AppendResponse>), ApiError> {
    let stream = state.node.stream_for_push(&name).await?;
    crate::metrics::note_stream(stream.name());
    let key = request_key(&body.headers)?;
    let content_type = body
        .headers
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    let framing = framing(content_type, &stream)?;
    let mut request = IngestRequest::body(body.body, framing);
    request.key = key;
    let outcome = state.ingest(&stream, from, request).await?;
    Ok((
        Replayed::of(&outcome),
        Json(AppendResponse {
            records: outcome.records,
            partitions: outcome.partitions,
        }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RowsParams {
    /// A filter expression (see `intake_format::filter`).
    filter: Option<String>,
    /// Most rows to return (the newest that match).
    #[serde(default, deserialize_with = "saturating")]
    limit: Option<usize>,
}

/// `GET /v1/tables/{name}/rows?filter=EXPR&limit=L`: the newest `limit`
/// rows (default 100, at most `max_read_records`) that pass the filter,
/// oldest first.
#[utoipa::path(get, path = "/v1/tables/{name}/rows", tag = "records",
    params(StreamName, RowsParams),
    responses(
        (status = 200, description = "The rows, oldest first", body = TableRows),
        (status = 400, description = "The filter does not parse", body = ErrorResponse),
        (status = 404, description = "No such table (a stream that is not a table included)", body = ErrorResponse),
    ))]
pub(crate) async fn table_rows(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(params): ApiQuery<RowsParams>,
) -> Result<Json<TableRows>, ApiError> {
    let stream = state.node.stream(&name)?;
    let Some(table) = stream.table() else {
        return Err(ApiError::NotATable(name));
    };
    let filter = match params.filter.as_deref() {
        Some(text) => Some(Filter::parse(text).map_err(|e| ApiError::BadRequest(e.to_string()))?),
        None => None,
    };
    let limit = params
        .limit
        .unwrap_or(DEFAULT_READ_LIMIT)
        .clamp(1, state.limits.max_read_records);
    Ok(Json(TableRows {
        rows: table.rows(filter.as_ref(), limit),
    }))
}

/// The answer of `GET /v1/tables/{name}/rows`.
#[derive(Debug, serde::Serialize, ToSchema)]
pub(crate) struct TableRows {
    /// The rows, oldest first.
    rows: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReadParams {
    /// First offset; the oldest retained when absent.
    #[serde(default, deserialize_with = "saturating")]
    offset: Option<u64>,
    /// Most records to return.
    #[serde(default, deserialize_with = "saturating")]
    limit: Option<usize>,
    /// Most payload bytes to return.
    #[serde(default, deserialize_with = "saturating")]
    max_bytes: Option<usize>,
}

/// A count or offset from a query string: any run of digits, one too large
/// for the type meaning its largest value (a limit then means "all there
/// is", an offset lies past the end and gets 416).
fn saturating<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    let Some(text) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(serde::de::Error::custom(format!(
            "{text:?} is not a non-negative integer"
        )));
    }
    let value = text.parse::<u64>().unwrap_or(u64::MAX);
    T::try_from(value)
        .map(Some)
        .map_err(|_| serde::de::Error::custom(format!("{text} is too large")))
}

/// Text for bytes that should be text: the string if UTF-8, else base64.
fn text_or_base64(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => BASE64.encode(bytes),
    }
}

/// A record in the API's shape: JSON streams show the value as JSON, others
/// as a base64 string.
pub(crate) fn record_view(partition: u32, record: Record, json: bool) -> RecordView {
    let value = if json {
        std::str::from_utf8(&record.value)
            .ok()
            .and_then(|s| RawValue::from_string(s.to_owned()).ok())
    } else {
        None
    };
    let value = value.unwrap_or_else(|| {
        let quoted =
            serde_json::to_string(&BASE64.encode(&record.value)).unwrap_or_else(|_| "\"\"".into());
        RawValue::from_string(quoted).unwrap_or_else(|_| RawValue::NULL.to_owned())
    });
    RecordView {
        partition,
        offset: record.offset,
        timestamp: record.timestamp,
        key: record.key.as_deref().map(text_or_base64),
        value,
        headers: record
            .headers
            .iter()
            .map(|h| (h.key.clone(), text_or_base64(&h.value)))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// Reads a partition from an offset, bounded by records and bytes.
#[utoipa::path(get, path = "/v1/streams/{name}/partitions/{partition}/records", tag = "records",
    params(StreamName, ("partition" = u32, Path, maximum = 4_294_967_295_u32, description = "Partition number, from 0")),
    responses(
        (status = 200, description = "Records in offset order and the offset to ask for next", body = ReadResponse),
        (status = 400, description = "A parameter is malformed", body = ErrorResponse),
        (status = 404, description = "No such stream or partition", body = ErrorResponse),
        (status = 416, description = "The offset is no longer retained or not yet written", body = ErrorResponse),
    ))]
pub(crate) async fn read(
    State(state): State<AppState>,
    ApiPath((name, partition)): ApiPath<(String, u32)>,
    ApiQuery(params): ApiQuery<ReadParams>,
) -> Result<Json<ReadResponse>, ApiError> {
    let stream = state.node.stream(&name)?;
    let p = Arc::clone(stream.partition(partition)?);
    let offset = params.offset.unwrap_or_else(|| p.start_offset());
    let limit = params
        .limit
        .unwrap_or(DEFAULT_READ_LIMIT)
        .clamp(1, state.limits.max_read_records);
    let max_bytes = params
        .max_bytes
        .unwrap_or(state.limits.max_read_bytes)
        .clamp(1, state.limits.max_read_bytes);
    let batch = tokio::task::spawn_blocking(move || p.read(offset, limit, max_bytes))
        .await
        .map_err(|e| ApiError::BadRequest(format!("read failed: {e}")))?
        .map_err(intake_core::Error::from)?;
    let json = stream.format().stores_json();
    Ok(Json(ReadResponse {
        records: batch
            .records
            .into_iter()
            .map(|r| record_view(partition, r, json))
            .collect(),
        next_offset: batch.next_offset,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct TailParams {
    /// `end` (default), `beginning` (or `start`), or an offset.
    #[param(pattern = "^(end|beginning|start|[0-9]{1,19})$")]
    from: Option<String>,
    /// Only this partition (default: all).
    #[param(maximum = 4_294_967_295_u32)]
    partition: Option<u32>,
}

/// One event of a tail, as the spec describes it: `id` is
/// `PARTITION:OFFSET` and `data` a [`RecordView`] as JSON text.
pub(crate) struct TailEvent;

impl utoipa::PartialSchema for TailEvent {
    fn schema() -> RefOr<Schema> {
        let mut data = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("The record, as JSON"))
            .content_media_type("application/json")
            .build();
        let mut record = Extensions::default();
        record.insert(
            "contentSchema".into(),
            serde_json::json!({"$ref": format!("#/components/schemas/{}", RecordView::name())}),
        );
        data.extensions = Some(record);
        ObjectBuilder::new()
            .description(Some("A Server-Sent Event carrying one record"))
            .property(
                "id",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^[0-9]+:[0-9]+$"))
                    .description(Some("PARTITION:OFFSET of the record")),
            )
            .property("event", ObjectBuilder::new().schema_type(Type::String))
            .property("data", data)
            .required("data")
            .into()
    }
}

impl ToSchema for TailEvent {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((RecordView::name().into(), RecordView::schema()));
    }
}

/// Where a tail starts in a partition.
#[derive(Debug, Clone, Copy)]
enum TailStart {
    End,
    Beginning,
    Offset(u64),
}

fn tail_start(from: Option<&str>) -> Result<TailStart, ApiError> {
    match from {
        None | Some("end") => Ok(TailStart::End),
        Some("beginning" | "start") => Ok(TailStart::Beginning),
        Some(other) => other.parse().map(TailStart::Offset).map_err(|_| {
            ApiError::BadRequest(format!(
                "from={other:?} is not accepted; use end, beginning or an offset"
            ))
        }),
    }
}

/// The records of one partition from `cursor` on, waiting for new ones.
fn partition_tail(
    partition: u32,
    log: Arc<intake_core::Partition>,
    start: TailStart,
    json: bool,
) -> impl FuturesStream<Item = Result<Event, Infallible>> {
    let cursor = match start {
        TailStart::End => log.next_offset(),
        TailStart::Beginning => log.start_offset(),
        TailStart::Offset(o) => o.clamp(log.start_offset(), log.next_offset()),
    };
    let watch = log.subscribe();
    let state = (log, cursor, watch, VecDeque::<Record>::new());
    futures::stream::unfold(
        state,
        move |(log, mut cursor, mut watch, mut buffered)| async move {
            loop {
                if let Some(record) = buffered.pop_front() {
                    let view = record_view(partition, record, json);
                    let event = Event::default()
                        .id(format!("{partition}:{}", view.offset))
                        .json_data(&view)
                        .unwrap_or_else(|_| Event::default().comment("unencodable record"));
                    return Some((Ok(event), (log, cursor, watch, buffered)));
                }
                watch.borrow_and_update();
                if cursor < log.next_offset() {
                    let reader = Arc::clone(&log);
                    let from = cursor;
                    match tokio::task::spawn_blocking(move || {
                        reader.read(from, TAIL_READ_RECORDS, 1 << 20)
                    })
                    .await
                    {
                        Ok(Ok(batch)) => {
                            cursor = batch.next_offset;
                            buffered.extend(batch.records);
                            continue;
                        }
                        Ok(Err(intake_core::LogError::OffsetOutOfRange { earliest, .. })) => {
                            // Retention overtook the reader: skip to what is left.
                            cursor = earliest.max(cursor);
                            continue;
                        }
                        Ok(Err(e)) => {
                            tracing::error!(error = %e, "tail read failed");
                            return None;
                        }
                        Err(_) => return None,
                    }
                }
                if watch.changed().await.is_err() {
                    return None;
                }
            }
        },
    )
}

/// Follows a stream live: Server-Sent Events, one record per event (id
/// `PARTITION:OFFSET`), until the client leaves or the node stops.
#[utoipa::path(get, path = "/v1/streams/{name}/tail", tag = "records",
    params(StreamName, TailParams),
    responses(
        (status = 200, description = "An endless event stream; each event's data is a record", content_type = "text/event-stream", body = TailEvent),
        (status = 400, description = "`from` or `partition` is malformed", body = ErrorResponse),
        (status = 404, description = "No such stream or partition", body = ErrorResponse),
    ))]
pub(crate) async fn tail(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(params): ApiQuery<TailParams>,
) -> Result<Sse<impl FuturesStream<Item = Result<Event, Infallible>>>, ApiError> {
    let stream = state.node.stream(&name)?;
    let start = tail_start(params.from.as_deref())?;
    let partitions: Vec<u32> = match params.partition {
        Some(p) => {
            stream.partition(p)?;
            vec![p]
        }
        None => (0..stream.partition_count()).collect(),
    };
    let json = stream.format().stores_json();
    let mut tails = Vec::new();
    for p in partitions {
        let log = Arc::clone(stream.partition(p)?);
        tails.push(partition_tail(p, log, start, json).boxed());
    }
    let events =
        futures::stream::select_all(tails).take_until(state.draining.clone().cancelled_owned());
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
