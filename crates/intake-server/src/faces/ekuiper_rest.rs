//! eKuiper's REST API for streams and tables, so its tooling and scripts
//! define intake streams in eKuiper's SQL (parsed by
//! [`intake_format::ddl`]):
//!
//! - `POST /streams` and `POST /tables` with `{"sql": "..."}` run any DDL
//!   statement: `CREATE` answers `201` and `Stream NAME is created.`,
//!   `DROP` `Stream NAME is dropped.`, `SHOW` the JSON list of names,
//!   `DESCRIBE` the description below;
//! - `GET /streams`, `GET /tables`: `["name", ...]`;
//! - `GET /streams/{name}`: `{"Name", "StreamFields": [{"Name", "FieldType":
//!   {"Type": N}}] | null, "Options": {"DATASOURCE", "FORMAT", "TYPE", ...},
//!   "StreamType": 0 | 1}` with eKuiper's type numbers (bigint 1, float 2,
//!   string 3, bytea 4, datetime 5, boolean 6, array 7 with `FieldType` of
//!   its elements, struct 8 with its `StreamFields`);
//! - `PUT /streams/{name}` with a `CREATE` statement for that name: the
//!   fields the SQL can say are replaced; partitions, sinks, retention and
//!   the records stay (`Stream NAME is replaced.`);
//! - `DELETE /streams/{name}`: `Stream NAME is dropped.`
//!
//! Errors are eKuiper's `{"error": 1000, "message": "..."}` (`1002` and
//! 404 for an unknown name), with 400 for a bad statement and the node's
//! own status (503 with `Retry-After`, ...) otherwise. A `CREATE` and a
//! JSON definition end in the same catalog row.

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use intake_core::Error as CoreError;
use intake_format::api::{Format, StreamDefinition, StreamKind};
use intake_format::ddl::{self, Statement};
use intake_format::schema::{Field, FieldType};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::extract::{ApiPath, read_body};
use crate::state::AppState;

/// The routes of eKuiper's stream and table API.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/streams", post(run_streams).get(list_streams))
        .route("/tables", post(run_tables).get(list_tables))
        .route(
            "/streams/{name}",
            get(describe_stream).put(replace_stream).delete(drop_stream),
        )
        .route(
            "/tables/{name}",
            get(describe_table).put(replace_table).delete(drop_table),
        )
}

/// Why a request was refused, rendered as eKuiper does.
#[derive(Debug)]
pub(crate) enum EkuiperError {
    /// The statement or body is wrong (400, error 1000).
    Bad(String),
    /// No such stream or table (404, error 1002).
    NotFound(String),
    /// A failure of the node, with its own status.
    Api(ApiError),
}

impl From<ApiError> for EkuiperError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Core(CoreError::StreamNotFound { name }) => {
                Self::NotFound(format!("{name} is not found"))
            }
            ApiError::Core(
                e @ (CoreError::InvalidDefinition { .. } | CoreError::StreamExists { .. }),
            ) => Self::Bad(e.to_string()),
            other => Self::Api(other),
        }
    }
}

impl From<CoreError> for EkuiperError {
    fn from(e: CoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for EkuiperError {
    fn into_response(self) -> Response {
        let (status, code, message, api) = match self {
            Self::Bad(m) => (StatusCode::BAD_REQUEST, 1000, m, None),
            Self::NotFound(m) => (StatusCode::NOT_FOUND, 1002, m, None),
            Self::Api(e) => {
                e.log();
                (e.status(), 1000, e.public_message(), Some(e))
            }
        };
        let response = (status, Json(json!({"error": code, "message": message}))).into_response();
        match api {
            Some(e) => e.with_retry_after(response),
            None => response,
        }
    }
}

/// `Stream` or `Table`, as eKuiper's messages say.
fn noun(kind: StreamKind) -> &'static str {
    match kind {
        StreamKind::Stream => "Stream",
        StreamKind::Table => "Table",
    }
}

fn text(status: StatusCode, body: String) -> Response {
    (status, [(CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// Reads `{"sql": "..."}` within the admin body limit.
async fn sql_of(state: &AppState, headers: &HeaderMap, body: Body) -> Result<String, EkuiperError> {
    let limit = state.limits.max_admin_body_bytes;
    let body = read_body(headers, body, limit, &state.limits).await?;
    let request: Value = serde_json::from_slice(&body)
        .map_err(|e| EkuiperError::Bad(format!("the body is not JSON: {e}")))?;
    match request.get("sql") {
        Some(Value::String(sql)) => Ok(sql.clone()),
        _ => Err(EkuiperError::Bad(
            "expected {\"sql\": \"...\"} with a DDL statement".into(),
        )),
    }
}

fn parse(sql: &str) -> Result<Statement, EkuiperError> {
    ddl::parse(sql).map_err(|e| EkuiperError::Bad(format!("invalid statement {e}")))
}

/// Picks the push method from `CONF_KEY` as eKuiper's `httppush.yaml`
/// does: the key's `method`, else the default section's.
fn apply_conf_key(
    state: &AppState,
    definition: &mut StreamDefinition,
    conf_key: Option<&str>,
) -> Result<(), EkuiperError> {
    let settings = state.httppush();
    let method = match conf_key {
        None => settings.default.method.clone(),
        Some(key) => match settings.conf_keys.get(key) {
            Some(conf) => conf.method.clone(),
            None => {
                let known: Vec<&str> = settings.conf_keys.keys().map(String::as_str).collect();
                return Err(EkuiperError::Bad(format!(
                    "CONF_KEY {key:?} is not configured; configured keys: [{}] ([httppush.conf_keys] in intake.toml)",
                    known.join(", ")
                )));
            }
        },
    };
    if let Some(binding) = &mut definition.bindings.datasource {
        binding.method = method;
    }
    Ok(())
}

/// Runs one statement posted to `/streams` or `/tables`.
async fn run(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    expected: StreamKind,
) -> Result<Response, EkuiperError> {
    let sql = sql_of(state, headers, body).await?;
    match parse(&sql)? {
        Statement::Create {
            mut definition,
            conf_key,
        } => {
            same_kind(definition.kind, expected)?;
            apply_conf_key(state, &mut definition, conf_key.as_deref())?;
            let name = definition.name.clone();
            state.node.create_stream(*definition).await?;
            Ok(text(
                StatusCode::CREATED,
                format!("{} {name} is created.", noun(expected)),
            ))
        }
        Statement::Drop { kind, name } => {
            same_kind(kind, expected)?;
            drop_named(state, kind, &name).await
        }
        Statement::Describe { kind, name } => {
            same_kind(kind, expected)?;
            describe(state, kind, &name)
        }
        Statement::Show { kind } => {
            same_kind(kind, expected)?;
            Ok(Json(names(state, kind)).into_response())
        }
    }
}

fn same_kind(got: StreamKind, expected: StreamKind) -> Result<(), EkuiperError> {
    if got == expected {
        Ok(())
    } else {
        Err(EkuiperError::Bad(format!(
            "a {} statement was sent to /{}s",
            noun(got).to_ascii_lowercase(),
            noun(expected).to_ascii_lowercase()
        )))
    }
}

fn names(state: &AppState, kind: StreamKind) -> Vec<String> {
    state
        .node
        .streams()
        .iter()
        .map(|s| s.definition())
        .filter(|d| d.kind == kind)
        .map(|d| d.name)
        .collect()
}

/// The stream `name` when it is of `kind`.
fn find(state: &AppState, kind: StreamKind, name: &str) -> Result<StreamDefinition, EkuiperError> {
    let def = state.node.stream(name)?.definition();
    if def.kind == kind {
        Ok(def)
    } else {
        Err(EkuiperError::NotFound(format!(
            "{} {name} is not found",
            noun(kind).to_ascii_lowercase()
        )))
    }
}

async fn drop_named(
    state: &AppState,
    kind: StreamKind,
    name: &str,
) -> Result<Response, EkuiperError> {
    find(state, kind, name)?;
    state.node.delete_stream(name).await?;
    Ok(text(
        StatusCode::OK,
        format!("{} {name} is dropped.", noun(kind)),
    ))
}

fn describe(state: &AppState, kind: StreamKind, name: &str) -> Result<Response, EkuiperError> {
    Ok(Json(Description::of(&find(state, kind, name)?)).into_response())
}

/// `PUT /streams/{name}`: a `CREATE` for that name replaces what the SQL
/// can say, keeping the rest of the definition and the records.
async fn replace(
    state: &AppState,
    kind: StreamKind,
    name: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, EkuiperError> {
    let old = find(state, kind, name)?;
    let sql = sql_of(state, headers, body).await?;
    let Statement::Create {
        mut definition,
        conf_key,
    } = parse(&sql)?
    else {
        return Err(EkuiperError::Bad(
            "PUT takes a CREATE statement for the same name".into(),
        ));
    };
    same_kind(definition.kind, kind)?;
    if definition.name != name {
        return Err(EkuiperError::Bad(format!(
            "the statement creates {:?}, not {name:?}",
            definition.name
        )));
    }
    apply_conf_key(state, &mut definition, conf_key.as_deref())?;
    let mut replaced = old;
    replaced.kind = definition.kind;
    replaced.retain_size = definition.retain_size;
    replaced.format = definition.format;
    replaced.delimiter = definition.delimiter;
    replaced.schema_id = definition.schema_id;
    replaced.schema = definition.schema;
    replaced.strict_validation = definition.strict_validation;
    replaced.key_field = definition.key_field;
    replaced.timestamp_field = definition.timestamp_field;
    replaced.timestamp_format = definition.timestamp_format;
    replaced.bindings.datasource = definition.bindings.datasource;
    state.node.replace_stream(replaced).await?;
    Ok(text(
        StatusCode::OK,
        format!("{} {name} is replaced.", noun(kind)),
    ))
}

async fn run_streams(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    into(run(&state, &headers, body, StreamKind::Stream).await)
}

async fn run_tables(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    into(run(&state, &headers, body, StreamKind::Table).await)
}

async fn list_streams(State(state): State<AppState>) -> Json<Vec<String>> {
    Json(names(&state, StreamKind::Stream))
}

async fn list_tables(State(state): State<AppState>) -> Json<Vec<String>> {
    Json(names(&state, StreamKind::Table))
}

async fn describe_stream(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Response {
    into(describe(&state, StreamKind::Stream, &name))
}

async fn describe_table(State(state): State<AppState>, ApiPath(name): ApiPath<String>) -> Response {
    into(describe(&state, StreamKind::Table, &name))
}

async fn drop_stream(State(state): State<AppState>, ApiPath(name): ApiPath<String>) -> Response {
    into(drop_named(&state, StreamKind::Stream, &name).await)
}

async fn drop_table(State(state): State<AppState>, ApiPath(name): ApiPath<String>) -> Response {
    into(drop_named(&state, StreamKind::Table, &name).await)
}

async fn replace_stream(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    into(replace(&state, StreamKind::Stream, &name, &headers, body).await)
}

async fn replace_table(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    into(replace(&state, StreamKind::Table, &name, &headers, body).await)
}

fn into(result: Result<Response, EkuiperError>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

/// eKuiper's description of a stream.
#[derive(Serialize)]
struct Description {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "StreamFields")]
    stream_fields: Option<Vec<Value>>,
    #[serde(rename = "Options")]
    options: BTreeMap<&'static str, String>,
    #[serde(rename = "StreamType")]
    stream_type: u8,
}

impl Description {
    fn of(def: &StreamDefinition) -> Self {
        let mut options = BTreeMap::new();
        options.insert("TYPE", "httppush".to_owned());
        options.insert(
            "FORMAT",
            match def.format {
                Format::Json => "JSON",
                Format::Ndjson => "NDJSON",
                Format::Delimited => "DELIMITED",
                Format::Binary => "BINARY",
                Format::Protobuf => "PROTOBUF",
            }
            .to_owned(),
        );
        if let Some(ds) = &def.bindings.datasource {
            options.insert("DATASOURCE", ds.path.clone());
            options.insert("SHARED", ds.shared.to_string());
        }
        let optional = [
            ("KEY", &def.key_field),
            ("TIMESTAMP", &def.timestamp_field),
            ("TIMESTAMP_FORMAT", &def.timestamp_format),
            ("SCHEMAID", &def.schema_id),
        ];
        for (key, value) in optional {
            if let Some(v) = value {
                options.insert(key, v.clone());
            }
        }
        if def.strict_validation {
            options.insert("STRICT_VALIDATION", "true".into());
        }
        if def.format == Format::Delimited {
            options.insert("DELIMITER", def.delimiter.clone());
        }
        if let Some(n) = def.retain_size {
            options.insert("RETAIN_SIZE", n.to_string());
        }
        Self {
            name: def.name.clone(),
            stream_fields: def.schema.as_deref().map(fields_json),
            options,
            stream_type: u8::from(def.kind == StreamKind::Table),
        }
    }
}

fn fields_json(fields: &[Field]) -> Vec<Value> {
    fields
        .iter()
        .map(|f| json!({"Name": f.name, "FieldType": type_json(&f.ty)}))
        .collect()
}

/// eKuiper's numbered field types.
fn type_json(ty: &FieldType) -> Value {
    match ty {
        FieldType::Bigint => json!({"Type": 1}),
        FieldType::Float => json!({"Type": 2}),
        FieldType::String => json!({"Type": 3}),
        FieldType::Bytea => json!({"Type": 4}),
        FieldType::Datetime => json!({"Type": 5}),
        FieldType::Boolean => json!({"Type": 6}),
        FieldType::Array { items } => json!({"Type": 7, "FieldType": type_json(items)}),
        FieldType::Struct { fields } => json!({"Type": 8, "StreamFields": fields_json(fields)}),
    }
}
