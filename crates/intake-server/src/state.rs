//! What every handler shares.

use std::ops::Deref;
use std::sync::Arc;

use intake_core::{IngestOutcome, IngestRequest, Items, Node, NodeRegistry, Stream};
use intake_format::cluster::NodeView;
use tokio_util::sync::CancellationToken;

use crate::config::Limits;
use crate::error::ApiError;
use crate::extract::Peer;
use crate::metrics::{Metrics, note_ingested, note_stream};
use crate::rate_limit::RateLimits;

/// Shared state of the HTTP layer; cloning it is one reference count.
#[derive(Debug, Clone)]
pub struct AppState(Arc<AppContext>);

/// The contents of [`AppState`].
#[derive(Debug)]
pub struct AppContext {
    /// The node's core.
    pub node: Arc<Node>,
    /// Request limits.
    pub limits: Limits,
    /// Cancelled when the listener stops accepting: new requests get 503,
    /// live tails end so the drain can finish.
    pub draining: CancellationToken,
    /// This node's metrics (its own recorder, never the global one).
    pub metrics: Arc<Metrics>,
    /// Per-stream request rates, when limited.
    pub(crate) stream_rates: Option<RateLimits>,
    /// Per-token request rates, when limited.
    pub(crate) token_rates: Option<RateLimits>,
    /// The node registry, when this node is a manager.
    pub manager: std::sync::OnceLock<Arc<NodeRegistry>>,
    /// The cluster as last read from the manager, when this node joined
    /// one (for the dashboard).
    pub(crate) joined: parking_lot::RwLock<Option<JoinedCluster>>,
    /// The `[httppush]` settings eKuiper DDL statements pick methods from.
    pub(crate) httppush: std::sync::OnceLock<crate::config::HttppushConfig>,
    /// Whether requests need tokens, and the configured admin token.
    pub(crate) auth: std::sync::OnceLock<(crate::auth::AuthMode, Option<String>)>,
    /// The TLS settings of every listener, when the node serves HTTPS.
    pub tls: std::sync::OnceLock<Arc<rustls::ServerConfig>>,
}

/// What a joined node knows of its cluster.
#[derive(Debug, Clone)]
pub(crate) struct JoinedCluster {
    /// The manager's URL.
    pub(crate) manager_url: String,
    /// The manager's node list at its last successful read.
    pub(crate) nodes: Vec<NodeView>,
    /// When that read happened (Unix ms; 0 before the first).
    pub(crate) read_at_ms: u64,
}

impl AppState {
    /// State for a node with these limits; the node's partitions start
    /// reporting into a fresh [`Metrics`].
    pub fn new(node: Arc<Node>, limits: Limits) -> Self {
        let metrics = Arc::new(Metrics::new());
        node.observe_logs(metrics.log_metrics());
        Self(Arc::new(AppContext {
            node,
            limits,
            draining: CancellationToken::new(),
            metrics,
            stream_rates: limits.stream_requests_per_second.map(RateLimits::new),
            token_rates: limits.token_requests_per_second.map(RateLimits::new),
            manager: std::sync::OnceLock::new(),
            joined: parking_lot::RwLock::new(None),
            tls: std::sync::OnceLock::new(),
            httppush: std::sync::OnceLock::new(),
            auth: std::sync::OnceLock::new(),
        }))
    }

    /// Makes this node a manager keeping `registry`; a node has at most
    /// one registry, so a second call changes nothing.
    #[must_use]
    pub fn with_manager(self, registry: Arc<NodeRegistry>) -> Self {
        if self.manager.set(registry).is_err() {
            tracing::warn!("this node already is a manager; keeping its registry");
        }
        self
    }

    /// Takes the methods of DDL-made push paths from `settings`; a second
    /// call changes nothing.
    #[must_use]
    pub fn with_httppush(self, settings: crate::config::HttppushConfig) -> Self {
        if self.httppush.set(settings).is_err() {
            tracing::warn!("[httppush] is already set; keeping the first");
        }
        self
    }

    /// The `[httppush]` settings (defaults unless set).
    pub(crate) fn httppush(&self) -> &crate::config::HttppushConfig {
        self.httppush.get_or_init(Default::default)
    }

    /// Requires tokens when `mode` says so; `admin_token` (when set) is
    /// accepted as a token with the `admin` scope. A second call changes
    /// nothing.
    #[must_use]
    pub fn with_auth(self, mode: crate::auth::AuthMode, admin_token: Option<String>) -> Self {
        if self.auth.set((mode, admin_token)).is_err() {
            tracing::warn!("auth is already set; keeping the first setting");
        }
        self
    }

    /// `off` unless [`AppState::with_auth`] said otherwise.
    pub(crate) fn auth_mode(&self) -> crate::auth::AuthMode {
        self.auth.get().map(|(mode, _)| *mode).unwrap_or_default()
    }

    /// The info of a presented token: the configured admin token, or one
    /// of the catalog's.
    ///
    /// # Errors
    /// [`ApiError::Unauthorized`] for a refused token; a catalog failure
    /// as itself (503).
    pub(crate) async fn authenticate(
        &self,
        token: &str,
    ) -> Result<intake_core::auth::TokenInfo, ApiError> {
        if let Some((_, Some(admin))) = self.auth.get()
            && admin.as_bytes() == token.as_bytes()
        {
            return Ok(intake_core::auth::TokenInfo {
                id: "admin_token".into(),
                name: "the configured admin_token".into(),
                scopes: vec![intake_core::auth::Scope::Admin],
                created_at_ms: 0,
                expires_at_ms: None,
            });
        }
        self.node.authenticate(token).await.map_err(|e| match e {
            intake_core::Error::Token(t) => ApiError::Unauthorized(t.to_string()),
            other => ApiError::Core(other),
        })
    }

    /// Serves every listener over TLS with `acceptor`; a second call
    /// changes nothing.
    #[must_use]
    pub fn with_tls(self, acceptor: tokio_rustls::TlsAcceptor) -> Self {
        if self.tls.set(Arc::clone(acceptor.config())).is_err() {
            tracing::warn!("TLS is already set up; keeping the first acceptor");
        }
        self
    }

    /// [`Node::ingest`] within the stream's request rate, counted in the
    /// metrics of the current request (its stream, and on success its
    /// records and payload bytes). Every face pushes through here.
    ///
    /// # Errors
    /// [`ApiError::Forbidden`] for a client outside the stream's
    /// `allowed_ips`; [`ApiError::RateLimited`] past
    /// `limits.stream_requests_per_second`; else as [`Node::ingest`].
    pub(crate) async fn ingest(
        &self,
        stream: &Arc<Stream>,
        from: Peer,
        request: IngestRequest,
    ) -> Result<IngestOutcome, ApiError> {
        note_stream(stream.name());
        check_source(stream, from)?;
        if let Some(rates) = &self.stream_rates {
            rates.admit(stream.name(), || format!("stream {:?}", stream.name()))?;
        }
        let bytes = match &request.items {
            Items::Body { body, .. } => body.len(),
            Items::Split(items) => items.iter().map(|i| i.value.len()).sum(),
        };
        let outcome = self.node.ingest(stream, request).await?;
        // A replay wrote nothing: intake_dedup_replayed_total counts it.
        if !outcome.replayed {
            note_ingested(outcome.records as u64, bytes as u64);
        }
        Ok(outcome)
    }
}

/// Refuses a client outside `stream`'s `allowed_ips` (an unknown address
/// is outside every list).
///
/// # Errors
/// [`ApiError::Forbidden`] naming the stream and the address.
pub(crate) fn check_source(stream: &Stream, from: Peer) -> Result<(), ApiError> {
    let allowed = stream.allowed_ips();
    if allowed.is_empty() {
        return Ok(());
    }
    match from.0 {
        Some(ip) if allowed.iter().any(|range| range.contains(ip)) => Ok(()),
        Some(ip) => Err(ApiError::Forbidden(format!(
            "stream {:?} takes no records from {ip} (allowed_ips)",
            stream.name()
        ))),
        None => Err(ApiError::Forbidden(format!(
            "stream {:?} takes records only from its allowed_ips, and this client's address is unknown",
            stream.name()
        ))),
    }
}

impl Deref for AppState {
    type Target = AppContext;

    fn deref(&self) -> &AppContext {
        &self.0
    }
}
