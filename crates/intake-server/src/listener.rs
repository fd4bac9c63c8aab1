//! The accept loop: every connection served by hyper with the head limits
//! (`max_headers`, `max_header_bytes` → 431; `request_read_timeout` on the
//! head → closed), counted in the metrics, within `max_connections` (one
//! more is answered 503 with `Retry-After` and closed), and drained on
//! shutdown; over TLS when the node has a certificate.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, header};
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::Gateway;
use crate::config::Limits;
use crate::error::ApiError;
use crate::faces::Face;
use crate::metrics::Metrics;

/// Accepts on `listener` until `draining` is cancelled, then waits for the
/// open connections to finish their requests (idle ones are closed). With
/// `tls`, each connection first completes a TLS handshake (within
/// `request_read_timeout`), and HTTP/2 or HTTP/1.1 follows by ALPN.
pub(crate) async fn serve(
    listener: TcpListener,
    app: impl Gateway,
    limits: Limits,
    metrics: Arc<Metrics>,
    draining: CancellationToken,
    tls: Option<TlsAcceptor>,
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
        let connection = Connection {
            builder: Arc::clone(&builder),
            app: app.clone(),
            peer,
            refuse_past: permit.is_none().then_some(limits.max_connections),
            watcher: graceful.watcher(),
        };
        let tls = tls.clone();
        let handshake_timeout = limits.request_read_timeout;
        tokio::spawn(async move {
            match tls {
                None => connection.serve(tcp).await,
                Some(acceptor) => {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => connection.serve(stream).await,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, %peer, "TLS handshake failed");
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
            drop(permit);
            drop(counted);
        });
    }
    graceful.shutdown().await;
}

/// One accepted connection, before its transport (plain TCP or TLS) is
/// ready.
struct Connection<G> {
    builder: Arc<auto::Builder<TokioExecutor>>,
    app: G,
    peer: SocketAddr,
    /// `Some(max)` when the connection is past `max_connections`.
    refuse_past: Option<usize>,
    watcher: Watcher,
}

impl<G: Gateway> Connection<G> {
    /// Serves HTTP on `io` until the client closes or the drain ends it.
    async fn serve<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Self {
            builder,
            app,
            peer,
            refuse_past,
            watcher,
        } = self;
        let io = TokioIo::new(io);
        let result = match refuse_past {
            None => {
                let app = app.map_request(move |req: Request<Incoming>| {
                    let mut req = req.map(Body::new);
                    req.extensions_mut().insert(ConnectInfo(peer));
                    req
                });
                let conn = builder
                    .serve_connection_with_upgrades(io, TowerToHyperService::new(app))
                    .into_owned();
                watcher.watch(conn).await
            }
            Some(max) => {
                let refuse = hyper::service::service_fn(move |req: Request<Incoming>| async move {
                    Ok::<_, Infallible>(refuse_connection(req.uri().path(), max))
                });
                watcher
                    .watch(builder.serve_connection(io, refuse).into_owned())
                    .await
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, %peer, "connection ended with an error");
        }
    }
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
