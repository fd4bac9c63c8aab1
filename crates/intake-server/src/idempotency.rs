//! The exactly-once request headers every push face reads, and the header
//! a replayed answer carries.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponseParts, ResponseParts};
use intake_core::{Error as CoreError, IngestOutcome, RequestKey};

use crate::error::ApiError;

/// The key header of a request that must not be stored twice.
pub(crate) const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// A producer's id, with [`SEQUENCE`].
pub(crate) const PRODUCER_ID: HeaderName = HeaderName::from_static("intake-producer-id");
/// A producer's sequence number, +1 per request.
pub(crate) const SEQUENCE: HeaderName = HeaderName::from_static("intake-sequence");
/// Set on an answer given again, for a request seen before.
pub(crate) const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The exactly-once headers, for the API description.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub(crate) struct ExactlyOnceHeaders {
    /// 1 to 255 visible ASCII characters naming this request: a retry with
    /// the same key and body within the stream's `dedup_window` gets the
    /// first answer (with `Idempotent-Replayed: true`) and writes nothing.
    #[param(rename = "Idempotency-Key")]
    idempotency_key: Option<String>,
    /// A producer's id (1 to 64 visible ASCII characters), with
    /// `Intake-Sequence`; not with `Idempotency-Key`.
    #[param(rename = "Intake-Producer-Id")]
    intake_producer_id: Option<String>,
    /// The producer's request number on this stream, +1 per request: a
    /// repeated one gets its first answer, a gap 409.
    #[param(rename = "Intake-Sequence")]
    intake_sequence: Option<u64>,
}

/// The request key the client sent, if any.
///
/// # Errors
/// 400 `invalid_idempotency_key` for a bad key, a producer id without a
/// sequence (or the reverse), both kinds at once, or a header sent twice.
pub(crate) fn request_key(headers: &HeaderMap) -> Result<Option<RequestKey>, ApiError> {
    let one = |name: &HeaderName| -> Result<Option<&[u8]>, ApiError> {
        let mut values = headers.get_all(name).iter();
        let first = values.next();
        if values.next().is_some() {
            return Err(invalid(format!("{name} must be sent once")));
        }
        Ok(first.map(HeaderValue::as_bytes))
    };
    let key = one(&IDEMPOTENCY_KEY)?;
    let producer = one(&PRODUCER_ID)?;
    let sequence = one(&SEQUENCE)?;
    match (key, producer, sequence) {
        (None, None, None) => Ok(None),
        (Some(key), None, None) => Ok(Some(RequestKey::idempotency(key)?)),
        (None, Some(id), Some(sequence)) => Ok(Some(RequestKey::producer(id, sequence)?)),
        (None, Some(_), None) => Err(invalid(
            "Intake-Producer-Id needs Intake-Sequence (the request's number, +1 per request)"
                .into(),
        )),
        (None, None, Some(_)) => Err(invalid(
            "Intake-Sequence needs Intake-Producer-Id (who is counting)".into(),
        )),
        (Some(_), _, _) => Err(invalid(
            "send either Idempotency-Key or Intake-Producer-Id with Intake-Sequence, not both"
                .into(),
        )),
    }
}

fn invalid(reason: String) -> ApiError {
    ApiError::Core(CoreError::InvalidIdempotencyKey { reason })
}

/// Adds `Idempotent-Replayed: true` to an answer given again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Replayed(pub(crate) bool);

impl Replayed {
    /// Whether `outcome` was answered from the stream's table of keys.
    pub(crate) fn of(outcome: &IngestOutcome) -> Self {
        Self(outcome.replayed)
    }
}

impl IntoResponseParts for Replayed {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        if self.0 {
            res.headers_mut()
                .insert(REPLAYED, HeaderValue::from_static("true"));
        }
        Ok(res)
    }
}
