//! The OpenAPI 3.1 description of the native and admin API, generated from
//! the handlers' `#[utoipa::path]` attributes and the types of
//! `intake_format::api`, served at `GET /openapi.json`.
//!
//! The protocol faces (InLong, CKafka, REST Proxy, eKuiper) answer in
//! their own wire shapes, described by their protocols' documents, and are
//! not part of it.

use std::sync::LazyLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use intake_format::api::ErrorResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::faces::native;
use crate::{auth, health, metrics, sink_admin};

/// The API description, as derived from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "intake",
        description = "The native and admin API of intake, the HTTP push-ingestion gateway. \
            Every push is answered once its records are durable. Errors share one shape, \
            `{\"error\": {\"code\": \"...\", \"message\": \"...\"}}`, with the fitting status.",
    ),
    paths(
        native::create_stream,
        native::list_streams,
        native::show_stream,
        native::delete_stream,
        native::set_state,
        native::push,
        native::read,
        native::tail,
        native::table_rows,
        sink_admin::list,
        sink_admin::pause,
        sink_admin::resume,
        sink_admin::reset,
        auth::list,
        auth::create,
        auth::revoke,
        health::healthz,
        health::readyz,
        metrics::scrape,
    ),
    components(schemas(ErrorResponse)),
    modifiers(&SharedErrors),
    tags(
        (name = "streams", description = "Stream management (admin scope when auth = \"tokens\")"),
        (name = "records", description = "Push, read by offset, tail, table rows (write or read scope)"),
        (name = "sinks", description = "Forwarding to Kafka and NATS JetStream (admin scope)"),
        (name = "tokens", description = "Access tokens (admin scope)"),
        (name = "health", description = "Liveness, readiness, metrics (open)"),
    ),
)]
pub(crate) struct ApiDoc;

/// The spec as served, rendered once.
static SPEC_JSON: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"the OpenAPI spec did not render: {e}\"}}"))
});

/// `GET /openapi.json`.
pub(crate) async fn spec() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], SPEC_JSON.as_str())
}

/// Adds what every operation may answer whatever its own outcome: the
/// node's limits and, under `auth = "tokens"`, the token checks.
struct SharedErrors;

/// Statuses any operation may answer, and why.
const SHARED_ERRORS: &[(&str, &str)] = &[
    (
        "401",
        "No valid token (auth = \"tokens\"): missing, unknown, revoked or expired",
    ),
    ("403", "The token lacks the scope this operation needs"),
    (
        "408",
        "The request did not arrive, or was not answered, within the node's timeouts",
    ),
    (
        "429",
        "The stream's or the token's request rate is used up; see Retry-After",
    ),
    (
        "503",
        "The node is overloaded, shutting down, or its log cannot take writes; see Retry-After",
    ),
    ("507", "The disk is full; writes resume once space returns"),
];

impl Modify for SharedErrors {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token from `intake token create` or POST /v1/tokens, needed when the node runs with auth = \"tokens\"",
                    ))
                    .build(),
            ),
        );
        let error_body = || {
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    ErrorResponse::name(),
                ))))
                .build()
        };
        for item in api.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                for (status, why) in SHARED_ERRORS {
                    let response: Response = ResponseBuilder::new()
                        .description(*why)
                        .content("application/json", error_body())
                        .build();
                    operation
                        .responses
                        .responses
                        .entry((*status).to_owned())
                        .or_insert_with(|| RefOr::T(response));
                }
            }
        }
        // The token checks apply under auth = "tokens"; the health routes
        // are open.
        api.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "token",
            Vec::<String>::new(),
        )]);
    }
}
