//! What every handler shares.

use std::ops::Deref;
use std::sync::Arc;

use intake_core::Node;
use tokio_util::sync::CancellationToken;

use crate::config::Limits;

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
}

impl AppState {
    /// State for a node with these limits.
    pub fn new(node: Arc<Node>, limits: Limits) -> Self {
        Self(Arc::new(AppContext {
            node,
            limits,
            draining: CancellationToken::new(),
        }))
    }
}

impl Deref for AppState {
    type Target = AppContext;

    fn deref(&self) -> &AppContext {
        &self.0
    }
}
