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
        use log_errors::log_status;
        match self {
            Self::Core(e) => match e {
                CoreError::StreamNotFound { .. } | CoreError::PartitionNotFound { .. } => {
                    StatusCode::NOT_FOUND
                }
                CoreError::StreamExists { .. } | CoreError::StreamPaused { .. } => {
                    StatusCode::CONFLICT
                }
                CoreError::InvalidDefinition { .. }
                | CoreError::Format(_)
                | CoreError::TooDeep { .. } => StatusCode::BAD_REQUEST,
                CoreError::TooManyRecords { .. } | CoreError::RecordTooLarge { .. } => {
                    StatusCode::PAYLOAD_TOO_LARGE
                }
                CoreError::Log(e) => log_status(e),
                CoreError::Catalog(_) | CoreError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
                CoreError::Forward(
                    ForwardError::AckTimeout { .. } | ForwardError::Stopped { .. },
                ) => StatusCode::SERVICE_UNAVAILABLE,
                CoreError::Forward(ForwardError::SinkNotFound { .. })
                | CoreError::TokenNotFound { .. } => StatusCode::NOT_FOUND,
                CoreError::Token(_) => StatusCode::UNAUTHORIZED,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::PayloadTooLarge { .. } | Self::DecompressedTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Self::UnsupportedMediaType { .. } | Self::UnsupportedEncoding { .. } => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Self::SlowClient(_) => StatusCode::REQUEST_TIMEOUT,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::TooManyConnections(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::RouteNotFound { .. } | Self::NotATable(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Overloaded | Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A stable snake_case code for machines.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Core(e) => match e {
                CoreError::StreamNotFound { .. } => "stream_not_found",
                CoreError::PartitionNotFound { .. } => "partition_not_found",
                CoreError::StreamExists { .. } => "stream_exists",
                CoreError::StreamPaused { .. } => "stream_paused",
                CoreError::InvalidDefinition { .. } => "invalid_definition",
                CoreError::Format(FormatError::Malformed { .. }) => "malformed_body",
                CoreError::Format(FormatError::InvalidRecord { .. }) => "invalid_record",
                CoreError::Format(_) => "invalid_definition",
                CoreError::TooManyRecords { .. } => "too_many_records",
                CoreError::RecordTooLarge { .. } => "record_too_large",
                CoreError::TooDeep { .. } => "json_too_deep",
                CoreError::Log(e) => log_errors::log_code(e),
                CoreError::Catalog(_) => "catalog_unavailable",
                CoreError::ShuttingDown => "shutting_down",
                CoreError::Forward(ForwardError::AckTimeout { .. }) => "sink_ack_timeout",
                CoreError::Forward(ForwardError::Stopped { .. }) => "sink_stopped",
                CoreError::Forward(ForwardError::SinkNotFound { .. }) => "sink_not_found",
                CoreError::TokenNotFound { .. } => "token_not_found",
                CoreError::Token(_) => "unauthorized",
                _ => "internal",
            },
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::DecompressedTooLarge { .. } => "decompressed_too_large",
            Self::UnsupportedEncoding { .. } => "unsupported_encoding",
            Self::SlowClient(_) => "request_read_timeout",
            Self::RateLimited { .. } => "rate_limited",
            Self::TooManyConnections(_) => "too_many_connections",
            Self::UnsupportedMediaType { .. } => "unsupported_media_type",
            Self::BadRequest(_) => "bad_request",
            Self::RouteNotFound { .. } => "not_found",
            Self::NotATable(_) => "table_not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::Timeout(_) => "request_timeout",
            Self::Overloaded => "overloaded",
            Self::ShuttingDown => "shutting_down",
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

    /// Logs the error at the level its status deserves.
    pub fn log(&self) {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error = %self, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), error = %self, "request refused");
        }
    }

    /// Adds `Retry-After` (when the error has one) to a face's response.
    pub fn with_retry_after(&self, mut response: Response) -> Response {
        if let Some(secs) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Status, code and message for log errors, in one place.
mod log_errors {
    use axum::http::StatusCode;

    /// Errors of the log as they reach the core.
    type LogError = intake_core::LogError;

    pub(super) fn log_status(e: &LogError) -> StatusCode {
        match e {
            LogError::OffsetOutOfRange { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            LogError::BatchTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            LogError::NoSpace { .. } => StatusCode::INSUFFICIENT_STORAGE,
            LogError::Poisoned { .. } | LogError::QueueFull { .. } | LogError::Closed { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub(super) fn log_code(e: &LogError) -> &'static str {
        match e {
            LogError::OffsetOutOfRange { .. } => "offset_out_of_range",
            LogError::BatchTooLarge { .. } => "payload_too_large",
            LogError::NoSpace { .. } => "insufficient_storage",
            LogError::Poisoned { .. } => "log_unavailable",
            LogError::QueueFull { .. } => "overloaded",
            LogError::Closed { .. } => "shutting_down",
            _ => "internal",
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
            },
        };
        self.with_retry_after((self.status(), Json(body)).into_response())
    }
}
