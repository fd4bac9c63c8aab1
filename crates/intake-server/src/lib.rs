//! intake's HTTP layer: listeners, the tower stack of limits, and the
//! protocol faces.
//!
//! [`router`] states every limit in one place; [`run`] serves a listener
//! until its shutdown future resolves, then drains in order: stop accepting,
//! let in-flight requests finish (bounded by `limits.shutdown_timeout`),
//! end live tails, then close the log (write and fsync what is queued).

mod admission;
mod auth;
mod cluster;
mod config;
mod content_encoding;
mod dashboard;
mod error;
mod extract;
mod faces;
#[doc(hidden)]
pub mod fuzzing;
mod health;
mod idempotency;
mod listener;
mod metrics;
mod openapi;
mod rate_limit;
mod sink_admin;
mod state;
mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tower::{Service, ServiceBuilder};
use tower_http::trace::TraceLayer;

pub use auth::AuthMode;
pub use cluster::spawn_membership;
pub use config::{
    ClusterConfig, Config, HttppushConfKey, HttppushConfig, InvalidParameter, Limits, LogFormat,
};
pub use error::ApiError;
pub use metrics::{Metrics, StreamTotals, metric_names};
pub use state::{AppContext, AppState};
pub use tls::{TlsConfig, TlsError};

use crate::faces::Face;

/// A listener's whole request handling: its routes inside the limits of
/// [`router`] or [`push_router`], as one cheaply cloned service.
pub trait Gateway:
    Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> Gateway for S where
    S: Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// The complete router of the main listener, with every limit applied.
pub fn router(state: AppState) -> impl Gateway {
    let routes = Router::new()
        .merge(faces::native::routes())
        .merge(faces::inlong::routes())
        .merge(faces::ckafka::routes())
        .merge(faces::rest_proxy::routes())
        .merge(faces::ekuiper_rest::routes())
        .merge(faces::inlong_manager::routes())
        .merge(sink_admin::routes())
        .merge(auth::routes())
        .merge(cluster::routes())
        .merge(dashboard::routes())
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::scrape))
        .route("/openapi.json", get(openapi::spec))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone());
    with_limits(routes, &state, |path, e| Face::of(path).render(e))
}

/// Wraps `routes` in the limits and counters every listener shares, in
/// this order from the outside: traffic counting, tracing (when debug
/// logging is on), admission (the drain, `limits.max_concurrent_requests`
/// and the request timeout; see [`admission`]), tokens when required.
/// `render` answers a refusal in the shape of the request path's face.
///
/// The stack wraps the whole router once, rather than through
/// `Router::layer` (which wraps, boxes and clones every route on every
/// request): the limits are then node-wide, and a request passes through
/// plain services rather than one boxed service per layer.
fn with_limits(
    routes: Router,
    state: &AppState,
    render: admission::Render,
) -> impl Gateway + use<> {
    let limits = state.limits;
    ServiceBuilder::new()
        .layer(metrics::CountTrafficLayer {
            metrics: Arc::clone(&state.metrics),
        })
        .map_response(IntoResponse::into_response)
        // A span and a latency event per request only when either is
        // logged: the clock reads and the wrapped body cost every request.
        .option_layer(request_tracing_logged().then(|| {
            ServiceBuilder::new()
                .map_response(IntoResponse::into_response)
                .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
                    tracing::debug_span!("request", method = %req.method(), path = %req.uri().path())
                }))
        }))
        .layer(admission::AdmissionLayer {
            draining: state.draining.clone(),
            max_concurrent: limits.max_concurrent_requests,
            timeout: limits.request_timeout,
            render,
        })
        // Tokens, when required: only then is the middleware in the stack.
        .option_layer((state.auth_mode() == auth::AuthMode::Tokens).then(|| {
            axum::middleware::from_fn_with_state(state.clone(), auth::authorize)
        }))
        .service(routes)
}

/// True when the log filter lets through the request span (debug, this
/// crate) or the trace layer's events (debug, `tower_http`).
fn request_tracing_logged() -> bool {
    tracing::enabled!(tracing::Level::DEBUG)
        || tracing::enabled!(target: "tower_http::trace", tracing::Level::DEBUG)
}

/// A stream's own push path (eKuiper httppush), else an unknown path in
/// the shape of the face that owns the path.
async fn route_not_found(State(state): State<AppState>, req: Request) -> Response {
    if faces::ekuiper::serves(&state, req.uri().path()) {
        return faces::ekuiper::push(State(state), req).await;
    }
    Face::of(req.uri().path()).render(ApiError::RouteNotFound {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
    })
}

/// The router of the push listener (`push_listen`): only the streams' own
/// push paths, with the same limits as the main listener.
pub fn push_router(state: AppState) -> impl Gateway {
    let routes = Router::new()
        .fallback(faces::ekuiper::push)
        .with_state(state.clone());
    with_limits(routes, &state, |_, e| faces::ekuiper::render(e))
}

/// Serves the push listener until the main listener starts draining (see
/// [`run`]), then lets in-flight pushes finish.
///
/// # Errors
/// An I/O error of the listener.
pub async fn serve_push(listener: TcpListener, state: AppState) -> std::io::Result<()> {
    let draining = state.draining.clone();
    let limits = state.limits;
    let metrics = Arc::clone(&state.metrics);
    let tls = state
        .tls
        .get()
        .cloned()
        .map(tokio_rustls::TlsAcceptor::from);
    listener::serve(listener, push_router(state), limits, metrics, draining, tls).await;
    Ok(())
}

/// A wrong method, in the shape of the face that owns the path; axum adds
/// the route's `Allow`.
async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    Face::of(uri.path()).render(ApiError::MethodNotAllowed {
        method: method.to_string(),
    })
}

/// Serves `listener` until `shutdown` resolves, then drains and closes the
/// node (see the crate docs for the order).
///
/// # Errors
/// An I/O error of the listener.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let draining = state.draining.clone();
    let patience = state.limits.shutdown_timeout;
    let node = state.node.clone();
    let metrics = Arc::clone(&state.metrics);
    let upkeep = tokio::spawn({
        let metrics = Arc::clone(&metrics);
        let draining = draining.clone();
        async move {
            let mut every = tokio::time::interval(METRICS_UPKEEP);
            loop {
                tokio::select! {
                    () = draining.cancelled() => return,
                    _ = every.tick() => metrics.run_upkeep(),
                }
            }
        }
    });
    let limits = state.limits;
    let tls = state
        .tls
        .get()
        .cloned()
        .map(tokio_rustls::TlsAcceptor::from);
    let serve = listener::serve(
        listener,
        router(state),
        limits,
        metrics,
        draining.clone(),
        tls,
    );
    let signal = {
        let draining = draining.clone();
        async move {
            shutdown.await;
            tracing::info!("shutdown requested: no new connections, finishing in-flight requests");
            draining.cancel();
        }
    };
    tokio::spawn(signal);
    tokio::select! {
        () = serve => {}
        () = async { draining.cancelled().await; tokio::time::sleep(patience).await } => {
            tracing::warn!(?patience, "in-flight requests did not finish in time; closing anyway");
        }
    }
    upkeep.abort();
    node.shutdown().await;
    Ok(())
}

/// How often histogram samples are folded into their buckets between
/// scrapes.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);
