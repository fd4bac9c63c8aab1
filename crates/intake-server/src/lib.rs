//! intake's HTTP layer: listeners, the tower stack of limits, and the
//! protocol faces.
//!
//! [`router`] states every limit in one place; [`run`] serves a listener
//! until its shutdown future resolves, then drains in order: stop accepting,
//! let in-flight requests finish (bounded by `limits.shutdown_timeout`),
//! end live tails, then close the log (write and fsync what is queued).

mod config;
mod error;
mod extract;
mod faces;
mod health;
mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower::timeout::error::Elapsed;
use tower_http::trace::TraceLayer;

pub use config::{Config, InvalidParameter, Limits};
pub use error::ApiError;
pub use state::AppState;

/// The complete router of the main listener, with every limit applied.
pub fn router(state: AppState) -> Router {
    let limits = state.limits;
    let timeout = limits.request_timeout;
    let routes = Router::new()
        .merge(faces::native::routes())
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(route_not_found)
        // Extractors enforce the configured body limits themselves, with
        // the face's error shape.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(state.clone(), refuse_while_draining))
        .layer(
            ServiceBuilder::new()
                .layer(
                    TraceLayer::new_for_http().make_span_with(|req: &Request| {
                        let matched = req.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
                        tracing::debug_span!("request", method = %req.method(), path = matched.unwrap_or("(unmatched)"))
                    }),
                )
                .layer(HandleErrorLayer::new(move |e: tower::BoxError| async move {
                    overload_response(&e, timeout)
                }))
                .load_shed()
                .concurrency_limit(limits.max_concurrent_requests)
                .timeout(timeout),
        )
        .with_state(state);
    // Outside the routes, so the `Allow` header axum adds to 405s is there.
    Router::new()
        .fallback_service(routes)
        .layer(middleware::map_response(json_method_not_allowed))
}

fn overload_response(e: &tower::BoxError, timeout: Duration) -> Response {
    if e.is::<Elapsed>() {
        ApiError::Timeout(timeout).into_response()
    } else if e.is::<tower::load_shed::error::Overloaded>() {
        ApiError::Overloaded.into_response()
    } else {
        tracing::error!(error = %e, "unexpected middleware error");
        ApiError::Overloaded.into_response()
    }
}

async fn route_not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::RouteNotFound {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

/// axum answers a wrong method with an empty 405 carrying `Allow`; give it
/// the native error body, keeping the header.
async fn json_method_not_allowed(response: Response) -> Response {
    if response.status() != axum::http::StatusCode::METHOD_NOT_ALLOWED
        || response.headers().contains_key(header::CONTENT_TYPE)
    {
        return response;
    }
    let allow = response
        .headers()
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    ApiError::MethodNotAllowed { allow }.into_response()
}

/// Once the drain has begun, requests on kept-alive connections are
/// refused with 503 + Retry-After, and the connection is closed.
async fn refuse_while_draining(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if state.draining.is_cancelled() {
        let mut response = ApiError::ShuttingDown.into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    next.run(req).await
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
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let signal = {
        let draining = draining.clone();
        async move {
            shutdown.await;
            tracing::info!("shutdown requested: no new connections, finishing in-flight requests");
            draining.cancel();
        }
    };
    let serve = axum::serve(listener, app).with_graceful_shutdown(signal);
    let result = tokio::select! {
        r = serve => r,
        () = async { draining.cancelled().await; tokio::time::sleep(patience).await } => {
            tracing::warn!(?patience, "in-flight requests did not finish in time; closing anyway");
            Ok(())
        }
    };
    node.shutdown().await;
    result
}
