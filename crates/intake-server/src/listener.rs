//! The accept loop: every connection served by hyper with the head limits
//! (`max_headers`, `max_header_bytes` → 431; `request_read_timeout` on the
//! head → closed), counted in the metrics, within `max_connections` (one
//! more is answered 503 with `Retry-After` and closed), and drained on
//! shutdown.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, header};
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::config::Limits;
use crate::error::ApiError;
use crate::faces::Face;
use crate::metrics::Metrics;

/// Accepts on `listener` until `draining` is cancelled, then waits for the
/// open connections to finish their requests (idle ones are closed).
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    metrics: Arc<Metrics>,
    draining: CancellationToken,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.request_read_timeout)
        .max_headers(limits.max_headers)
        .max_buf_size(limits.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let builder = Arc::new(builder);
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
            () = draining.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let counted = metrics.connection_opened();
        let permit = Arc::clone(&open).try_acquire_owned().ok();
        let io = TokioIo::new(tcp);
        let conn = if permit.is_some() {
            let app = app.clone().map_request(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            });
            let conn = builder
                .serve_connection_with_upgrades(io, TowerToHyperService::new(app))
                .into_owned();
            futures::future::Either::Left(graceful.watch(conn))
        } else {
            let max = limits.max_connections;
            let refuse = hyper::service::service_fn(move |req: Request<Incoming>| async move {
                Ok::<_, Infallible>(refuse_connection(req.uri().path(), max))
            });
            let conn = builder.serve_connection(io, refuse).into_owned();
            futures::future::Either::Right(graceful.watch(conn))
        };
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(permit);
            drop(counted);
        });
    }
    graceful.shutdown().await;
}

/// The answer on a connection past `max_connections`: 503 with
/// `Retry-After` in the shape of the path's face, then close.
fn refuse_connection(path: &str, max: usize) -> Response {
    let mut response = Face::of(path).render(ApiError::TooManyConnections(max));
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
