//! Refusing requests once the drain has begun.
//!
//! After a shutdown signal the listener stops accepting, but a client may
//! still send a request on a kept-alive connection; it gets 503 with
//! `Retry-After` and `Connection: close` instead of racing the log's close.
//! A plain `tower::Service` (no boxing) since it wraps every request.

use std::task::{Context, Poll};

use axum::http::{HeaderValue, Request, header};
use axum::response::Response;
use futures::future::{Either, Ready, ready};
use tokio_util::sync::CancellationToken;
use tower::{Layer, Service};

use crate::error::ApiError;
use crate::faces::Face;

/// Layer of [`RefuseWhileDraining`].
#[derive(Debug, Clone)]
pub(crate) struct RefuseWhileDrainingLayer {
    pub(crate) draining: CancellationToken,
}

impl<S> Layer<S> for RefuseWhileDrainingLayer {
    type Service = RefuseWhileDraining<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RefuseWhileDraining {
            inner,
            draining: self.draining.clone(),
        }
    }
}

/// Answers 503 once `draining` is cancelled, else passes the request on.
#[derive(Debug, Clone)]
pub(crate) struct RefuseWhileDraining<S> {
    inner: S,
    draining: CancellationToken,
}

impl<S, B> Service<Request<B>> for RefuseWhileDraining<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if self.draining.is_cancelled() {
            let mut response = Face::of(req.uri().path()).render(ApiError::ShuttingDown);
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return Either::Left(ready(Ok(response)));
        }
        Either::Right(self.inner.call(req))
    }
}
