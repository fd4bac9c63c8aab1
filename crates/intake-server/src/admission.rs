//! Admission of every request, in one service: refused once the drain has
//! begun, shed past `limits.max_concurrent_requests`, and cut off past
//! `limits.request_timeout`, each answered in the shape of the path's face.
//!
//! One plain `tower::Service` (no boxing, no error type to map back into a
//! response) stands where a stack of tower's load shedding, concurrency
//! limit, timeout and error handling would: it wraps every request, so
//! each layer there was paid on every request (together with the outer
//! router the listeners no longer need, about 14% of intake's user CPU per
//! single-record push; docs/benchmarks.md has the measurement). The
//! statuses are the ones those layers gave.
//!
//! - Draining: after a shutdown signal the listener stops accepting, but a
//!   client may still send a request on a kept-alive connection; it gets
//!   503 with `Retry-After` and `Connection: close` instead of racing the
//!   log's close.
//! - Overload: a request that finds `max_concurrent_requests` in flight gets
//!   503 with `Retry-After` at once (it is not queued).
//! - Timeout: a request still unanswered after `request_timeout` gets 408;
//!   its handler is dropped (an append already handed to the log still
//!   completes there).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{HeaderValue, Request, Uri, header};
use axum::response::Response;
use pin_project_lite::pin_project;
use tokio::time::Timeout;
use tokio_util::sync::CancellationToken;
use tower::{Layer, Service};

use crate::error::ApiError;

/// Renders a refusal for a request path in its face's wire shape.
pub(crate) type Render = fn(&str, ApiError) -> Response;

/// Layer of [`Admission`].
#[derive(Debug, Clone)]
pub(crate) struct AdmissionLayer {
    /// Cancelled when the drain begins.
    pub(crate) draining: CancellationToken,
    /// Most requests in flight at once.
    pub(crate) max_concurrent: usize,
    /// Longest a request may take.
    pub(crate) timeout: Duration,
    /// The refusals' wire shape.
    pub(crate) render: Render,
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Admission {
            inner,
            shared: Arc::new(Shared {
                rules: self.clone(),
                in_flight: AtomicUsize::new(0),
            }),
        }
    }
}

/// Admits a request, or answers the refusal itself (see the module docs).
/// Clones share one in-flight count, and cost one reference count (the
/// service is cloned for every request).
#[derive(Debug, Clone)]
pub(crate) struct Admission<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// What every clone of an [`Admission`] shares.
#[derive(Debug)]
struct Shared {
    rules: AdmissionLayer,
    in_flight: AtomicUsize,
}

impl<S, B> Service<Request<B>> for Admission<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Admitted<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let rules = &self.shared.rules;
        let in_flight = &self.shared.in_flight;
        let refusal = if rules.draining.is_cancelled() {
            Some(ApiError::ShuttingDown)
        } else if in_flight.fetch_add(1, Ordering::AcqRel) >= rules.max_concurrent {
            in_flight.fetch_sub(1, Ordering::AcqRel);
            Some(ApiError::Overloaded)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            let draining = matches!(refusal, ApiError::ShuttingDown);
            let mut response = (rules.render)(req.uri().path(), refusal);
            if draining {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return Admitted::Refused {
                response: Some(response),
            };
        }
        let uri = req.uri().clone();
        Admitted::Running {
            inner: tokio::time::timeout(rules.timeout, self.inner.call(req)),
            slot: InFlightSlot(Arc::clone(&self.shared)),
            uri,
        }
    }
}

/// One admitted request's place in the in-flight count, given back when
/// the request ends, answered or dropped.
#[derive(Debug)]
pub(crate) struct InFlightSlot(Arc<Shared>);

impl Drop for InFlightSlot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

pin_project! {
    /// The future of an [`Admission`] request.
    #[project = AdmittedProj]
    pub(crate) enum Admitted<F> {
        /// Refused before it reached the routes.
        Refused { response: Option<Response> },
        /// Admitted: the routes' answer, within the timeout.
        Running {
            #[pin] inner: Timeout<F>,
            slot: InFlightSlot,
            uri: Uri,
        },
    }
}

impl<F, E> Future for Admitted<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AdmittedProj::Refused { response } => Poll::Ready(Ok(response
                .take()
                .expect("an Admitted future is not polled after it is ready"))),
            AdmittedProj::Running { inner, slot, uri } => match std::task::ready!(inner.poll(cx)) {
                Ok(answered) => Poll::Ready(answered),
                Err(_elapsed) => {
                    let rules = &slot.0.rules;
                    Poll::Ready(Ok((rules.render)(
                        uri.path(),
                        ApiError::Timeout(rules.timeout),
                    )))
                }
            },
        }
    }
}
