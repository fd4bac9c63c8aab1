//! Who may do what, with `auth = "tokens"`: a middleware that reads the
//! caller's token, checks what the path needs, and leaves the token's info
//! on the request for faces that know the stream only after parsing
//! (InLong, CKafka, eKuiper push paths), plus the admin API for tokens.
//!
//! A token is read from `Authorization: Bearer T`, `X-Intake-Token: T` or
//! the `token` query parameter, first found wins. A CKafka request signed
//! with TC3-HMAC-SHA256 instead goes to its face, which checks the
//! signature against the DataHub binding's credentials. Missing, malformed,
//! unknown, revoked or expired: 401. Valid but without the scope: 403.
//! Past `limits.token_requests_per_second`: 429 with `Retry-After`.
//! Open without a token: `/healthz`, `/readyz`, `/metrics`, the dashboard's
//! page and assets (its data, `/v1/overview`, needs `admin`), InLong's
//! `/dataproxy/heartbeat`, and the cluster paths nodes and InLong's agents
//! use (`/v1/cluster/...`, `/inlong/manager/...`).

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{delete, get};
use intake_core::auth::{Access, Scope, TokenInfo};
use intake_format::api::ErrorResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::extract::{AdminJson, ApiPath};
use crate::faces::Face;
use crate::state::AppState;

/// Whether requests need tokens (`auth` in `intake.toml`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Anyone may do anything (the quick start; a warning at start when
    /// listening beyond loopback).
    #[default]
    Off,
    /// Every request outside the open paths needs a token with the scope.
    Tokens,
}

/// The authenticated caller, on the request's extensions.
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub(crate) TokenInfo);

/// What a path needs before its handler runs.
#[derive(Debug, PartialEq, Eq)]
enum Need {
    /// Nothing.
    Open,
    /// A valid token; the handler checks the stream.
    Token,
    /// The scope.
    Scope(Want),
}

#[derive(Debug, PartialEq, Eq)]
enum Want {
    Admin,
    Write(String),
    Read(String),
}

impl Want {
    fn access(&self) -> Access<'_> {
        match self {
            Self::Admin => Access::Admin,
            Self::Write(s) => Access::Write(s),
            Self::Read(s) => Access::Read(s),
        }
    }
}

/// What `method path` needs.
fn need(method: &Method, path: &str) -> Need {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let stream = |i: usize| segments.get(i).map(|s| (*s).to_owned()).unwrap_or_default();
    let read = method == Method::GET || method == Method::HEAD;
    match segments.as_slice() {
        ["healthz" | "readyz" | "metrics" | "openapi.json"] => Need::Open,
        [""] | ["dashboard", ..] if read => Need::Open,
        ["dataproxy", "heartbeat"] | ["v1", "cluster", ..] | ["inlong", "manager", ..] => {
            Need::Open
        }
        ["v1", "streams", _, "records"] if method == Method::POST => {
            Need::Scope(Want::Write(stream(2)))
        }
        ["v1", "streams", _, "partitions", ..] | ["v1", "streams", _, "tail"] if read => {
            Need::Scope(Want::Read(stream(2)))
        }
        ["v1", "streams", _] if read => Need::Scope(Want::Read(stream(2))),
        ["v1", "tables", _, "rows"] if read => Need::Scope(Want::Read(stream(2))),
        ["topics", _] | ["topics", _, "partitions", _] if method == Method::POST => {
            Need::Scope(Want::Write(stream(1)))
        }
        ["topics", _, ..] if read => Need::Scope(Want::Read(stream(1))),
        ["v1", ..] | ["streams", ..] | ["tables", ..] | ["topics"] => Need::Scope(Want::Admin),
        _ => Need::Token,
    }
}

/// The token a request carries, if any.
fn presented<'a>(
    headers: &'a HeaderMap,
    query: Option<&'a str>,
) -> Option<std::borrow::Cow<'a, str>> {
    if let Some(bearer) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.trim().into());
    }
    if let Some(token) = headers.get("x-intake-token").and_then(|v| v.to_str().ok()) {
        return Some(token.trim().into());
    }
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v)
}

/// The middleware of `auth = "tokens"`.
pub(crate) async fn authorize(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_owned();
    let need = need(req.method(), &path);
    if need == Need::Open {
        return next.run(req).await;
    }
    let refuse = |e: ApiError| Face::of(&path).render(e);
    let Some(token) = presented(req.headers(), req.uri().query()).map(|t| t.into_owned()) else {
        if Face::of(&path) == Face::Ckafka && crate::faces::tc3::is_signed(req.headers()) {
            // The CKafka face checks the signature against the binding.
            return next.run(req).await;
        }
        return refuse(ApiError::Unauthorized(
            "a token is required: Authorization: Bearer TOKEN, X-Intake-Token: TOKEN or ?token=TOKEN".into(),
        ));
    };
    let info = match state.authenticate(&token).await {
        Ok(info) => info,
        Err(e) => return refuse(e),
    };
    if let Need::Scope(want) = &need
        && !info.grants(want.access())
    {
        return refuse(ApiError::Forbidden(format!(
            "token {:?} lacks the scope {}",
            info.id,
            want.access()
        )));
    }
    if let Some(rates) = &state.token_rates
        && let Err(refusal) = rates.admit(&info.id, || format!("token {:?}", info.id))
    {
        return refuse(refusal);
    }
    req.extensions_mut().insert(Caller(info));
    next.run(req).await
}

/// For faces that find the stream in the request: may this caller write
/// to `stream`? Always yes with `auth = "off"`.
pub(crate) fn check_write(
    state: &AppState,
    caller: Option<&Caller>,
    stream: &str,
) -> Result<(), ApiError> {
    if state.auth_mode() == AuthMode::Off {
        return Ok(());
    }
    match caller {
        Some(Caller(info)) if info.grants(Access::Write(stream)) => Ok(()),
        Some(Caller(info)) => Err(ApiError::Forbidden(format!(
            "token {:?} lacks the scope write:{stream}",
            info.id
        ))),
        None => Err(ApiError::Unauthorized("a token is required".into())),
    }
}

/// The routes of the token admin API (`admin` scope).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/tokens", get(list).post(create))
        .route("/v1/tokens/{id}", delete(revoke))
}

/// Body of `POST /v1/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewToken {
    /// A name for people.
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    /// What it may do.
    #[schema(min_items = 1)]
    scopes: Vec<Scope>,
    /// Seconds until it expires; unset for never.
    #[serde(default)]
    expires_in_s: Option<u64>,
}

/// A made token: its info and, this once, the token text.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Created {
    #[serde(flatten)]
    info: TokenInfo,
    /// The token to send as `Authorization: Bearer TOKEN`; shown only now.
    token: String,
}

/// Makes a token; its text is shown this once (the catalog keeps a hash).
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens",
    request_body = NewToken,
    responses(
        (status = 201, description = "The token and, this once, its text", body = Created),
        (status = 400, description = "A scope or field is malformed", body = ErrorResponse),
        (status = 413, description = "The body is over the limit", body = ErrorResponse),
        (status = 415, description = "The body is not JSON", body = ErrorResponse),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    AdminJson(new): AdminJson<NewToken>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let expires_at_ms = new.expires_in_s.map(|s| {
        intake_core::now_ms()
            .saturating_add(i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX))
    });
    let (info, token) = state
        .node
        .create_token(&new.name, new.scopes, expires_at_ms)
        .await?;
    Ok((StatusCode::CREATED, Json(Created { info, token })))
}

/// Answer to `GET /v1/tokens`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokenList {
    /// Every token that is not revoked (expired ones included).
    tokens: Vec<TokenInfo>,
}

/// Every token, without their secrets.
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens",
    responses((status = 200, description = "The tokens", body = TokenList)))]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<TokenList>, ApiError> {
    Ok(Json(TokenList {
        tokens: state.node.list_tokens().await?,
    }))
}

/// Revokes a token at once.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "The token's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such token", body = ErrorResponse),
    ))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.node.revoke_token(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_need_their_scope() {
        let w = |s: &str| Need::Scope(Want::Write(s.into()));
        let r = |s: &str| Need::Scope(Want::Read(s.into()));
        for (method, path, expected) in [
            (Method::GET, "/healthz", Need::Open),
            (Method::GET, "/metrics", Need::Open),
            (Method::GET, "/", Need::Open),
            (Method::POST, "/v1/cluster/heartbeat", Need::Open),
            (Method::POST, "/v1/streams/orders/records", w("orders")),
            (
                Method::GET,
                "/v1/streams/orders/partitions/0/records",
                r("orders"),
            ),
            (Method::GET, "/v1/streams/orders/tail", r("orders")),
            (Method::GET, "/v1/streams/orders", r("orders")),
            (
                Method::DELETE,
                "/v1/streams/orders",
                Need::Scope(Want::Admin),
            ),
            (Method::POST, "/v1/streams", Need::Scope(Want::Admin)),
            (Method::GET, "/v1/overview", Need::Scope(Want::Admin)),
            (Method::POST, "/v1/tokens", Need::Scope(Want::Admin)),
            (Method::GET, "/v1/tables/t/rows", r("t")),
            (Method::POST, "/topics/orders", w("orders")),
            (Method::POST, "/topics/orders/partitions/1", w("orders")),
            (Method::GET, "/topics", Need::Scope(Want::Admin)),
            (Method::POST, "/streams", Need::Scope(Want::Admin)),
            (Method::POST, "/dataproxy/message", Need::Token),
            (Method::POST, "/", Need::Token),
            (Method::POST, "/api/data", Need::Token),
        ] {
            assert_eq!(need(&method, path), expected, "{method} {path}");
        }
    }
}
