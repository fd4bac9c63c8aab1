//! The protocol faces. Each parses its requests into the core's ingest call
//! and renders results and errors in its own wire shape; none writes to the
//! log itself.
//!
//! Errors raised before a face's handler runs (load shedding, the request
//! timeout, the drain, unknown paths and methods) are rendered by the face
//! that owns the path, through [`Face::of`] and [`Face::render`].

pub(crate) mod ckafka;
pub(crate) mod ekuiper;
pub(crate) mod ekuiper_rest;
pub(crate) mod inlong;
pub(crate) mod inlong_manager;
pub(crate) mod native;
pub(crate) mod rest_proxy;
pub(crate) mod tc3;

use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The face that owns a request, by its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Face {
    /// `/v1/...`, health, and anything no other face claims.
    Native,
    /// `/dataproxy/...`.
    Inlong,
    /// `/` (Tencent Cloud API 3.0 actions).
    Ckafka,
    /// `/topics...`.
    RestProxy,
    /// `/inlong/manager/...`.
    InlongManager,
    /// `/streams...`, `/tables...` (eKuiper's REST API).
    EkuiperRest,
}

impl Face {
    /// The face whose wire shape a request on `path` expects.
    pub(crate) fn of(path: &str) -> Self {
        if path == "/" {
            Self::Ckafka
        } else if path == "/dataproxy" || path.starts_with("/dataproxy/") {
            Self::Inlong
        } else if path.starts_with(inlong_manager::PREFIX) {
            Self::InlongManager
        } else if path == "/topics" || path.starts_with("/topics/") {
            Self::RestProxy
        } else if ["/streams", "/tables"].iter().any(|p| {
            path.strip_prefix(p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        }) {
            Self::EkuiperRest
        } else {
            Self::Native
        }
    }

    /// Renders `err` in this face's wire shape.
    pub(crate) fn render(self, err: ApiError) -> Response {
        match self {
            Self::Native => err.into_response(),
            Self::Inlong => inlong::render(inlong::InlongError::Api(err), None),
            Self::Ckafka => ckafka::render(ckafka::CkafkaError::Api(err), None),
            Self::RestProxy => rest_proxy::render(rest_proxy::RestProxyError::Api(err)),
            Self::InlongManager => inlong_manager::render(err),
            Self::EkuiperRest => ekuiper_rest::EkuiperError::from(err).into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Face;

    #[test]
    fn paths_pick_their_face() {
        for (path, face) in [
            ("/", Face::Ckafka),
            ("/dataproxy/message", Face::Inlong),
            ("/dataproxy/nope", Face::Inlong),
            ("/dataproxyx", Face::Native),
            ("/topics", Face::RestProxy),
            ("/topics/t/partitions/0", Face::RestProxy),
            ("/v1/streams", Face::Native),
            ("/healthz", Face::Native),
            ("/streams/s1", Face::EkuiperRest),
            ("/tables", Face::EkuiperRest),
            ("/streamsx", Face::Native),
            (
                "/inlong/manager/openapi/dataproxy/getIpList/g",
                Face::InlongManager,
            ),
        ] {
            assert_eq!(Face::of(path), face, "{path}");
        }
    }
}
