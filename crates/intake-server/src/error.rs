//! [`ApiError`]: the one place where failures get their HTTP status.
//!
//! Every handler returns `Result<_, ApiError>`. The native face renders it
//! through `IntoResponse` below; other faces render the same value in their
//! own wire shape from [`ApiError::status`], [`ApiError::code`] and
//! [`ApiError::public_message`]. A 4xx tells the client what it did wrong
//! and is logged at debug; a 5xx body stays generic and the full error is
//! logged at error level.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use intake_core::Error as CoreError;
use intake_format::FormatError;
use intake_format::api::{ErrorDetail, ErrorResponse};
use intake_forward::ForwardError;

/// A request that failed, for any reason, on any face.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The core refused or failed.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// No valid token (missing, malformed, unknown, revoked, expired).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// A valid token without the scope the request needs.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The body is larger than the route accepts.
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The body, once its `Content-Encoding` is undone, is larger than the
    /// limit; decoding stopped there.
    #[error("the decompressed request body is larger than the limit of {limit} bytes")]
    DecompressedTooLarge {
        /// The limit.
        limit: usize,
    },
    /// A `Content-Encoding` this node does not decode.
    #[error("content encoding {got:?} is not accepted; send gzip, deflate, zstd or identity")]
    UnsupportedEncoding {
        /// What the client sent.
        got: String,
    },
    /// The body did not arrive in time.
    #[error("the request body did not arrive within {0:?}")]
    SlowClient(Duration),
    /// The body arrived slower than `limits.min_body_bytes_per_second`
    /// after the grace period; the connection is closed.
    #[error(
        "the request body arrived slower than {min_bytes_per_second} bytes per second after the first {grace:?}"
    )]
    BodyTooSlow {
        /// The minimum rate.
        min_bytes_per_second: u64,
        /// How long a body may take before the minimum applies.
        grace: Duration,
    },
    /// A stream's or a token's request rate is used up.
    #[error(
        "{limited} is limited to {per_second} requests per second; retry after {retry_after} s"
    )]
    RateLimited {
        /// What is limited: `stream "NAME"` or `token "ID"`.
        limited: String,
        /// Its limit.
        per_second: u32,
        /// Seconds until a request will pass.
        retry_after: u64,
    },
    /// The node has as many open connections as it accepts.
    #[error("the node is at its limit of {0} open connections")]
    TooManyConnections(usize),
    /// The body's content type is not one this route reads.
    #[error("content type {got:?} is not accepted here; send {accepted}")]
    UnsupportedMediaType {
        /// What the client sent.
        got: String,
        /// What is accepted.
        accepted: &'static str,
    },
    /// The request is malformed in a way the message explains.
    #[error("{0}")]
    BadRequest(String),
    /// No route at this path.
    #[error("no such endpoint: {method} {path}")]
    RouteNotFound {
        /// The method.
        method: String,
        /// The path.
        path: String,
    },
    /// `/v1/tables/{name}` of a stream that is not a table.
    #[error("stream {0:?} is not a table (kind = \"stream\"); read it by offset instead")]
    NotATable(String),
    /// The route exists but not for this method.
    #[error("method {method} is not allowed here; the Allow header lists the accepted ones")]
    MethodNotAllowed {
        /// The method used.
        method: String,
    },
    /// The request took longer than the configured timeout.
    #[error("the request took longer than {0:?}")]
    Timeout(Duration),
    /// Too many requests in flight on this node.
    #[error("the node is at its limit of concurrent requests")]
    Overloaded,
    /// The node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
}

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECS: u64 = 1;

impl ApiError {
    /// The HTTP status this error maps to.
    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    /// A stable snake_case code for machines.
    pub fn code(&self) -> &'static str {
        self.status_and_code().1
    }

    /// Status and code of every error, in one exhaustive match (the core's,
    /// the log's, the format's and the sinks' enums are exhaustive on
    /// purpose): a new variant anywhere does not compile until it has both.
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Core(e) => core_status_and_code(e),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::DecompressedTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "decompressed_too_large")
            }
            Self::UnsupportedEncoding { .. } => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_encoding")
            }
            Self::UnsupportedMediaType { .. } => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::SlowClient(_) => (StatusCode::REQUEST_TIMEOUT, "request_read_timeout"),
            Self::BodyTooSlow { .. } => (StatusCode::REQUEST_TIMEOUT, "request_body_too_slow"),
            Self::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::TooManyConnections(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "too_many_connections")
            }
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::RouteNotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            Self::NotATable(_) => (StatusCode::NOT_FOUND, "table_not_found"),
            Self::MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            Self::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            Self::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
        }
    }

    /// What the client is told: the full message for its own mistakes and
    /// for conditions it can act on, a generic line for internal failures.
    pub fn public_message(&self) -> String {
        let status = self.status();
        match self {
            Self::Core(CoreError::Log(e)) if status.is_server_error() => {
                log_errors::log_public_message(e).to_owned()
            }
            Self::Core(CoreError::Catalog(_)) => {
                "the catalog database is unreachable; retry later".into()
            }
            _ if status == StatusCode::INTERNAL_SERVER_ERROR => {
                "internal error; see the server log".into()
            }
            other => other.to_string(),
        }
    }

    /// For 503 and 507: how long the client should wait before retrying.
    pub fn retry_after(&self) -> Option<u64> {
        if let Self::RateLimited { retry_after, .. } = self {
            return Some(*retry_after);
        }
        matches!(
            self.status(),
            StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::INSUFFICIENT_STORAGE
                | StatusCode::TOO_MANY_REQUESTS
        )
        .then_some(RETRY_AFTER_SECS)
    }

    /// With `out_of_order_sequence`: the sequence expected next.
    pub fn expected_sequence(&self) -> Option<u64> {
        match self {
            Self::Core(CoreError::OutOfOrderSequence { expected, .. }) => Some(*expected),
            _ => None,
        }
    }

    /// Logs the error at the level its status deserves.
    pub fn log(&self) {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error = %self, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), error = %self, "request refused");
        }
    }

    /// Adds `Retry-After` (when the error has one) to a face's response,
    /// and `Connection: close` after a body cut for its slowness (the rest
    /// of it is not waited for).
    pub fn with_retry_after(&self, mut response: Response) -> Response {
        if let Some(secs) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if matches!(self, Self::BodyTooSlow { .. }) {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// Status and code of every core error.
fn core_status_and_code(e: &CoreError) -> (StatusCode, &'static str) {
    match e {
        CoreError::StreamNotFound { .. } => (StatusCode::NOT_FOUND, "stream_not_found"),
        CoreError::PartitionNotFound { .. } => (StatusCode::NOT_FOUND, "partition_not_found"),
        CoreError::StreamExists { .. } => (StatusCode::CONFLICT, "stream_exists"),
        CoreError::StreamPaused { .. } => (StatusCode::CONFLICT, "stream_paused"),
        CoreError::InvalidDefinition { .. }
        | CoreError::Format(FormatError::InvalidDefinition { .. })
        | CoreError::Forward(ForwardError::Unsupported { .. }) => {
            (StatusCode::BAD_REQUEST, "invalid_definition")
        }
        CoreError::Format(FormatError::Malformed { .. }) => {
            (StatusCode::BAD_REQUEST, "malformed_body")
        }
        CoreError::Format(FormatError::InvalidRecord { .. }) => {
            (StatusCode::BAD_REQUEST, "invalid_record")
        }
        CoreError::TooManyRecords { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_many_records"),
        CoreError::RecordTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "record_too_large"),
        CoreError::TooDeep { .. } => (StatusCode::BAD_REQUEST, "json_too_deep"),
        CoreError::Log(e) => log_errors::log_status_and_code(e),
        CoreError::Catalog(_) => (StatusCode::SERVICE_UNAVAILABLE, "catalog_unavailable"),
        CoreError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
        CoreError::Forward(ForwardError::AckTimeout { .. }) => {
            (StatusCode::SERVICE_UNAVAILABLE, "sink_ack_timeout")
        }
        CoreError::Forward(ForwardError::Stopped { .. }) => {
            (StatusCode::SERVICE_UNAVAILABLE, "sink_stopped")
        }
        CoreError::Forward(ForwardError::SinkNotFound { .. }) => {
            (StatusCode::NOT_FOUND, "sink_not_found")
        }
        CoreError::TokenNotFound { .. } => (StatusCode::NOT_FOUND, "token_not_found"),
        CoreError::InvalidIdempotencyKey { .. } => {
            (StatusCode::BAD_REQUEST, "invalid_idempotency_key")
        }
        CoreError::IdempotencyKeyReused { .. } => {
            (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
        }
        CoreError::OutOfOrderSequence { .. } => (StatusCode::CONFLICT, "out_of_order_sequence"),
        CoreError::Token(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
        // Failures of the node itself: a file outside the log, a sink's
        // cursor file.
        CoreError::Io { .. }
        | CoreError::Forward(ForwardError::Io { .. } | ForwardError::CorruptCursor { .. }) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        }
    }
}

/// Status, code and message for log errors, in one place.
mod log_errors {
    use axum::http::StatusCode;

    /// Errors of the log as they reach the core.
    type LogError = intake_core::LogError;

    /// Status and code of every log error.
    pub(super) fn log_status_and_code(e: &LogError) -> (StatusCode, &'static str) {
        match e {
            LogError::OffsetOutOfRange { .. } => {
                (StatusCode::RANGE_NOT_SATISFIABLE, "offset_out_of_range")
            }
            LogError::BatchTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            LogError::NoSpace { .. } => (StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage"),
            LogError::Poisoned { .. } => (StatusCode::SERVICE_UNAVAILABLE, "log_unavailable"),
            LogError::QueueFull { .. } => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            LogError::Closed { .. } => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            LogError::Io { .. } if e.is_out_of_file_handles() => {
                (StatusCode::SERVICE_UNAVAILABLE, "too_many_open_files")
            }
            // Failures of the node itself, not of the request: a failed
            // read or open, damaged bytes on disk, a log configuration the
            // node should have refused at start, a caller's bug.
            LogError::Io { .. }
            | LogError::Corrupt { .. }
            | LogError::InvalidParameter { .. }
            | LogError::EmptyBatch => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    pub(super) fn log_public_message(e: &LogError) -> &'static str {
        match e {
            LogError::NoSpace { .. } => "the node's disk is full; nothing was written; retry later",
            LogError::Poisoned { .. } => {
                "the log refuses writes after an I/O failure; retry on another node"
            }
            LogError::QueueFull { .. } => "the stream's write queue is full; retry shortly",
            LogError::Closed { .. } => "the stream is closing; retry shortly",
            LogError::Io { .. } if e.is_out_of_file_handles() => {
                "the node has no file handle left (its open files limit, ulimit -n or LimitNOFILE, is reached); nothing was written; retry later"
            }
            _ => "internal error; see the server log",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        crate::metrics::note_refusal(self.code());
        let body = ErrorResponse {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message: self.public_message(),
                expected: self.expected_sequence(),
            },
        };
        self.with_retry_after((self.status(), Json(body)).into_response())
    }
}

#[cfg(test)]
mod tests {
    //! Every code this module can answer, with its status and the message
    //! the client sees: one row per variant.
    #![allow(clippy::unwrap_used, reason = "a panic in a test is a failed test")]

    use std::path::PathBuf;
    use std::time::Duration;

    use intake_core::Error as CoreError;
    use intake_core::LogError;
    use intake_format::FormatError;
    use intake_forward::ForwardError;

    use super::ApiError;

    fn io() -> std::io::Error {
        std::io::Error::other("disk on fire")
    }

    fn core(e: CoreError) -> ApiError {
        ApiError::Core(e)
    }

    fn log(e: LogError) -> ApiError {
        ApiError::Core(CoreError::Log(e))
    }

    fn forward(e: ForwardError) -> ApiError {
        ApiError::Core(CoreError::Forward(e))
    }

    /// (error, status, code, the message the client is told).
    fn every_error() -> Vec<(ApiError, u16, &'static str, &'static str)> {
        let dir = PathBuf::from("/data/streams/s/0");
        const INTERNAL: &str = "internal error; see the server log";
        vec![
            (
                core(CoreError::StreamNotFound { name: "s".into() }),
                404,
                "stream_not_found",
                "stream \"s\" does not exist",
            ),
            (
                core(CoreError::StreamExists { name: "s".into() }),
                409,
                "stream_exists",
                "stream \"s\" already exists",
            ),
            (
                core(CoreError::StreamPaused { name: "s".into() }),
                409,
                "stream_paused",
                "stream \"s\" is paused; resume it to accept records",
            ),
            (
                core(CoreError::PartitionNotFound {
                    stream: "s".into(),
                    partition: 7,
                    partitions: 2,
                }),
                404,
                "partition_not_found",
                "stream \"s\" has no partition 7 (it has 2)",
            ),
            (
                core(CoreError::InvalidDefinition {
                    field: "partitions".into(),
                    reason: "must be 1 to 1024".into(),
                }),
                400,
                "invalid_definition",
                "invalid stream definition: partitions: must be 1 to 1024",
            ),
            (
                core(CoreError::Format(FormatError::Malformed {
                    line: 1,
                    column: 2,
                    reason: "expected value".into(),
                })),
                400,
                "malformed_body",
                "malformed body at line 1, column 2: expected value",
            ),
            (
                core(CoreError::Format(FormatError::InvalidRecord {
                    index: 3,
                    field: Some("temp".into()),
                    reason: "expected float, got string \"hot\"".into(),
                })),
                400,
                "invalid_record",
                "record 3: field \"temp\": expected float, got string \"hot\"",
            ),
            (
                core(CoreError::Format(FormatError::InvalidDefinition {
                    field: "schema".into(),
                    reason: "unknown type".into(),
                })),
                400,
                "invalid_definition",
                "invalid stream definition: schema: unknown type",
            ),
            (
                core(CoreError::TooManyRecords {
                    count: 11,
                    limit: 10,
                }),
                413,
                "too_many_records",
                "11 records in one request; at most 10 are accepted",
            ),
            (
                core(CoreError::RecordTooLarge {
                    index: 1,
                    len: 9,
                    limit: 8,
                }),
                413,
                "record_too_large",
                "record 1: 9 bytes; at most 8 are accepted per record",
            ),
            (
                core(CoreError::TooDeep {
                    position: 64,
                    limit: 64,
                }),
                400,
                "json_too_deep",
                "JSON nested deeper than 64 levels (at byte 64); flatten the record or raise limits.max_json_depth",
            ),
            (
                core(CoreError::Catalog(sqlx::Error::PoolTimedOut)),
                503,
                "catalog_unavailable",
                "the catalog database is unreachable; retry later",
            ),
            (
                core(CoreError::ShuttingDown),
                503,
                "shutting_down",
                "the node is shutting down",
            ),
            (
                core(CoreError::Token(intake_core::auth::TokenError::Expired)),
                401,
                "unauthorized",
                "the token expired",
            ),
            (
                core(CoreError::TokenNotFound { id: "ab12".into() }),
                404,
                "token_not_found",
                "token \"ab12\" does not exist",
            ),
            (
                core(CoreError::Io {
                    op: "rename",
                    path: "/data/trash".into(),
                    source: io(),
                }),
                500,
                "internal",
                INTERNAL,
            ),
            (
                forward(ForwardError::AckTimeout {
                    sink: "k1".into(),
                    waited: Duration::from_secs(10),
                }),
                503,
                "sink_ack_timeout",
                "sink \"k1\" did not acknowledge within 10s; the records are stored and will be forwarded, retry later",
            ),
            (
                forward(ForwardError::Stopped { sink: "k1".into() }),
                503,
                "sink_stopped",
                "sink \"k1\" stopped before acknowledging",
            ),
            (
                forward(ForwardError::SinkNotFound { name: "k9".into() }),
                404,
                "sink_not_found",
                "stream has no sink named \"k9\"",
            ),
            (
                forward(ForwardError::Unsupported {
                    name: "k1".into(),
                    reason: "not a NATS URL".into(),
                }),
                400,
                "invalid_definition",
                "sink \"k1\": not a NATS URL",
            ),
            (
                forward(ForwardError::Io {
                    op: "write",
                    path: "cursor".into(),
                    source: io(),
                }),
                500,
                "internal",
                INTERNAL,
            ),
            (
                forward(ForwardError::CorruptCursor {
                    path: "cursor".into(),
                    reason: "not a number".into(),
                }),
                500,
                "internal",
                INTERNAL,
            ),
            (
                log(LogError::OffsetOutOfRange {
                    requested: 9,
                    earliest: 0,
                    next: 3,
                }),
                416,
                "offset_out_of_range",
                "offset 9 is out of range: this partition holds offsets 0 to 3 (exclusive)",
            ),
            (
                log(LogError::BatchTooLarge { len: 9, limit: 8 }),
                413,
                "payload_too_large",
                "batch of 9 bytes is over the limit of 8 bytes",
            ),
            (
                log(LogError::NoSpace { path: dir.clone() }),
                507,
                "insufficient_storage",
                "the node's disk is full; nothing was written; retry later",
            ),
            (
                log(LogError::Poisoned {
                    dir: dir.clone(),
                    cause: "fsync failed".into(),
                }),
                503,
                "log_unavailable",
                "the log refuses writes after an I/O failure; retry on another node",
            ),
            (
                log(LogError::QueueFull {
                    dir: dir.clone(),
                    pending_bytes: 9,
                    limit: 8,
                }),
                503,
                "overloaded",
                "the stream's write queue is full; retry shortly",
            ),
            (
                log(LogError::Closed { dir: dir.clone() }),
                503,
                "shutting_down",
                "the stream is closing; retry shortly",
            ),
            (
                log(LogError::Io {
                    op: "read",
                    path: dir.clone(),
                    source: io(),
                }),
                500,
                "internal",
                INTERNAL,
            ),
            (
                log(LogError::Corrupt {
                    path: dir.clone(),
                    position: 12,
                    reason: "crc".into(),
                }),
                500,
                "internal",
                INTERNAL,
            ),
            (log(LogError::EmptyBatch), 500, "internal", INTERNAL),
            (
                log(LogError::InvalidParameter {
                    name: "segment_bytes",
                    reason: "too small".into(),
                }),
                500,
                "internal",
                INTERNAL,
            ),
            (
                ApiError::Unauthorized("no token".into()),
                401,
                "unauthorized",
                "unauthorized: no token",
            ),
            (
                ApiError::Forbidden("needs write:s".into()),
                403,
                "forbidden",
                "forbidden: needs write:s",
            ),
            (
                ApiError::PayloadTooLarge { limit: 8 },
                413,
                "payload_too_large",
                "request body is larger than the limit of 8 bytes",
            ),
            (
                ApiError::DecompressedTooLarge { limit: 8 },
                413,
                "decompressed_too_large",
                "the decompressed request body is larger than the limit of 8 bytes",
            ),
            (
                ApiError::UnsupportedEncoding { got: "br".into() },
                415,
                "unsupported_encoding",
                "content encoding \"br\" is not accepted; send gzip, deflate, zstd or identity",
            ),
            (
                ApiError::SlowClient(Duration::from_secs(30)),
                408,
                "request_read_timeout",
                "the request body did not arrive within 30s",
            ),
            (
                ApiError::BodyTooSlow {
                    min_bytes_per_second: 240,
                    grace: Duration::from_secs(5),
                },
                408,
                "request_body_too_slow",
                "the request body arrived slower than 240 bytes per second after the first 5s",
            ),
            (
                ApiError::RateLimited {
                    limited: "stream \"s\"".into(),
                    per_second: 5,
                    retry_after: 1,
                },
                429,
                "rate_limited",
                "stream \"s\" is limited to 5 requests per second; retry after 1 s",
            ),
            (
                ApiError::TooManyConnections(10),
                503,
                "too_many_connections",
                "the node is at its limit of 10 open connections",
            ),
            (
                ApiError::UnsupportedMediaType {
                    got: "text/xml".into(),
                    accepted: "application/json",
                },
                415,
                "unsupported_media_type",
                "content type \"text/xml\" is not accepted here; send application/json",
            ),
            (
                ApiError::BadRequest("limit: not a number".into()),
                400,
                "bad_request",
                "limit: not a number",
            ),
            (
                ApiError::RouteNotFound {
                    method: "GET".into(),
                    path: "/nope".into(),
                },
                404,
                "not_found",
                "no such endpoint: GET /nope",
            ),
            (
                ApiError::NotATable("s".into()),
                404,
                "table_not_found",
                "stream \"s\" is not a table (kind = \"stream\"); read it by offset instead",
            ),
            (
                ApiError::MethodNotAllowed {
                    method: "PATCH".into(),
                },
                405,
                "method_not_allowed",
                "method PATCH is not allowed here; the Allow header lists the accepted ones",
            ),
            (
                ApiError::Timeout(Duration::from_secs(30)),
                408,
                "request_timeout",
                "the request took longer than 30s",
            ),
            (
                ApiError::Overloaded,
                503,
                "overloaded",
                "the node is at its limit of concurrent requests",
            ),
            (
                ApiError::ShuttingDown,
                503,
                "shutting_down",
                "the node is shutting down",
            ),
        ]
    }

    #[test]
    fn every_error_has_its_status_code_and_message() {
        for (error, status, code, message) in every_error() {
            let what = format!("{error:?}");
            assert_eq!(error.status().as_u16(), status, "{what}");
            assert_eq!(error.code(), code, "{what}");
            assert_eq!(error.public_message(), message, "{what}");
        }
    }

    #[test]
    fn refusals_to_retry_carry_retry_after_and_others_do_not() {
        for (error, status, code, _) in every_error() {
            let retry = matches!(status, 429 | 503 | 507);
            assert_eq!(error.retry_after().is_some(), retry, "{code} ({status})");
        }
    }

    #[tokio::test]
    async fn the_native_body_carries_code_and_message() {
        use axum::response::IntoResponse;
        use http_body_util::BodyExt;
        for (error, status, code, message) in every_error() {
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), status, "{code}");
            let body = response.into_body().collect().await.unwrap().to_bytes();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                body,
                serde_json::json!({"error": {"code": code, "message": message}})
            );
        }
    }
}
