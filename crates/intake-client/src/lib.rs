//! intake's Rust SDK: finds nodes (from a manager or a static list), picks
//! one per send by a [`Strategy`], and sends records with retries,
//! exponential backoff with jitter, an overall deadline, and failover.
//!
//! A node that fails to connect, answers 5xx or 429 is frozen for a while
//! (at least its `Retry-After`) and the send moves to another node. A 4xx
//! other than 429 is the records' fault and is returned at once
//! ([`Error::is_retryable`] is false). The node list is refreshed from the
//! manager periodically; when the manager is down the last list is kept.
//!
//! Sends are exactly once per node: each carries a producer id and
//! sequence (`Intake-Producer-Id`, `Intake-Sequence`), and a retry repeats
//! them, so a send whose answer was lost (a node killed after its fsync,
//! before its reply) is answered from the node's table of keys and stored
//! once. The keys live in each node's log: a retry that fails over to
//! another node (the first did not answer at all) is a new request there,
//! and may store the records a second time if the first node had them.
//! Concurrent sends use separate producer ids ("lanes"), as the sequence of
//! one producer must arrive in order.
//!
//! ```no_run
//! # async fn demo() -> Result<(), intake_client::Error> {
//! use intake_client::{Client, Strategy};
//!
//! let client = Client::builder()
//!     .manager("http://127.0.0.1:46800")
//!     .strategy(Strategy::LeastLoad)
//!     .build()
//!     .await?;
//! let ack = client
//!     .send("orders", vec![br#"{"id": 1}"#.to_vec().into()])
//!     .await?;
//! assert_eq!(ack.response.records, 1);
//!
//! // Or let a batcher group records by count, size and linger time.
//! let batcher = client.batcher("orders", Default::default());
//! let ack = batcher.push(br#"{"id": 2}"#.to_vec().into()).await?;
//! println!("stored by {} in a batch of {}", ack.node, ack.batch.records);
//! # Ok(()) }
//! ```

mod backoff;
mod batch;
mod error;
mod strategy;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use bytes::Bytes;
use intake_format::api::{AppendResponse, ErrorResponse};
use intake_format::cluster::NodeList;
use parking_lot::Mutex;

pub use backoff::RetryPolicy;
pub use batch::{BatchConfig, Batcher, RecordAck};
pub use error::{Error, Result};
pub use strategy::{Endpoint, Strategy, VIRTUAL_NODES, choose, ring_hash};

/// Builds a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    manager: Option<String>,
    nodes: Vec<String>,
    strategy: Strategy,
    retry: RetryPolicy,
    request_timeout: Duration,
    freeze_for: Duration,
    refresh_interval: Duration,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            manager: None,
            nodes: Vec::new(),
            strategy: Strategy::default(),
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(10),
            freeze_for: Duration::from_secs(5),
            refresh_interval: Duration::from_secs(5),
        }
    }
}

impl ClientBuilder {
    /// Discover nodes from this manager (`http://HOST:PORT`), through its
    /// `GET /v1/cluster/nodes`.
    pub fn manager(mut self, url: impl Into<String>) -> Self {
        self.manager = Some(url.into().trim_end_matches('/').to_owned());
        self
    }

    /// Add a static node (`HOST:PORT` or `http://HOST:PORT`); used alone, or
    /// as the fallback while the manager has not answered yet.
    pub fn node(mut self, addr: impl Into<String>) -> Self {
        let addr = addr.into();
        let addr = addr
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        self.nodes.push(addr);
        self
    }

    /// How to pick a node (default round robin).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Retry timing and the overall deadline of one send.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Time limit of one HTTP request (default 10 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long a failing node is left alone (default 5 s, or its
    /// `Retry-After` when longer).
    pub fn freeze_for(mut self, duration: Duration) -> Self {
        self.freeze_for = duration;
        self
    }

    /// How often the node list is read from the manager (default 5 s).
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
    }

    /// Builds the client; with a manager, reads the node list once (a
    /// manager that does not answer is an error unless static nodes are
    /// set) and keeps refreshing it in the background.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] without a manager and without nodes;
    /// [`Error::Discovery`] when the manager cannot be read and no static
    /// node is set.
    pub async fn build(self) -> Result<Client> {
        if self.manager.is_none() && self.nodes.is_empty() {
            return Err(Error::InvalidSetting {
                name: "nodes",
                reason: "set a manager URL or at least one node".into(),
            });
        }
        let http = reqwest::Client::builder()
            .timeout(self.request_timeout)
            .build()
            .map_err(|e| Error::InvalidSetting {
                name: "request_timeout",
                reason: e.to_string(),
            })?;
        let static_nodes: Vec<Endpoint> = self
            .nodes
            .iter()
            .map(|addr| Endpoint {
                addr: addr.clone(),
                load: 0,
            })
            .collect();
        let inner = Arc::new(Inner {
            http,
            manager: self.manager.clone(),
            nodes: Mutex::new(static_nodes.clone()),
            frozen: Mutex::new(HashMap::new()),
            lanes: Mutex::new(HashMap::new()),
            turn: AtomicUsize::new(0),
            strategy: self.strategy,
            retry: self.retry,
            freeze_for: self.freeze_for,
        });
        if let Some(manager) = &self.manager {
            match inner.refresh().await {
                Ok(()) => {}
                Err(e) if static_nodes.is_empty() => return Err(e),
                Err(e) => {
                    tracing::warn!(%manager, error = %e, "manager unreachable; using the static nodes")
                }
            }
            let weak = Arc::downgrade(&inner);
            let every = self.refresh_interval;
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(every);
                ticker.tick().await;
                loop {
                    ticker.tick().await;
                    let Some(inner) = weak.upgrade() else { return };
                    if let Err(e) = inner.refresh().await {
                        tracing::warn!(error = %e, "node list refresh failed; keeping the cached list");
                    }
                }
            });
        }
        Ok(Client { inner })
    }
}

/// A handle on a set of intake nodes; cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    manager: Option<String>,
    nodes: Mutex<Vec<Endpoint>>,
    /// Node → until when it is left alone.
    frozen: Mutex<HashMap<String, Instant>>,
    turn: AtomicUsize,
    strategy: Strategy,
    retry: RetryPolicy,
    freeze_for: Duration,
    /// Idle producer lanes per (node, stream).
    lanes: Mutex<HashMap<(String, String), Vec<Lane>>>,
}

/// One producer id and its next sequence on one node and stream; a send
/// holds it alone, so its sequence arrives in order.
#[derive(Debug)]
struct Lane {
    producer: String,
    next: u64,
}

impl Lane {
    fn new() -> Self {
        Self {
            producer: uuid::Uuid::new_v4().simple().to_string(),
            next: 0,
        }
    }
}

/// The answer to a successful [`Client::send`].
#[derive(Debug, Clone)]
pub struct Ack {
    /// The node that stored the records.
    pub node: String,
    /// Its answer: record count and offsets per partition.
    pub response: AppendResponse,
    /// Sends tried, this one included.
    pub attempts: u32,
}

impl Client {
    /// A builder with the defaults.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The nodes the client currently knows (frozen ones included).
    pub fn nodes(&self) -> Vec<Endpoint> {
        self.inner.nodes.lock().clone()
    }

    /// Sends `records` (each one JSON value, or one raw record for a binary
    /// stream) to `stream` in one request, retrying and failing over until
    /// the policy's deadline. Records go as NDJSON, so none may contain a
    /// newline unless the stream is binary and gets one record per send.
    ///
    /// # Errors
    /// [`Error::Rejected`] at once for the records' own faults;
    /// [`Error::DeadlineExceeded`] when retries run out of time.
    pub async fn send(&self, stream: &str, records: Vec<Bytes>) -> Result<Ack> {
        self.send_keyed(stream, stream.as_bytes(), records).await
    }

    /// [`Client::send`] with the key that [`Strategy::KeyHash`] hashes.
    ///
    /// # Errors
    /// As [`Client::send`].
    pub async fn send_keyed(&self, stream: &str, key: &[u8], records: Vec<Bytes>) -> Result<Ack> {
        let mut body = Vec::with_capacity(records.iter().map(|r| r.len() + 1).sum());
        for record in &records {
            body.extend_from_slice(record);
            body.push(b'\n');
        }
        let body = Bytes::from(body);
        let started = Instant::now();
        let mut attempts = 0;
        // The lane of the last attempt: a retry on its node repeats its
        // sequence.
        let mut held: Option<(String, Lane)> = None;
        let mut resynced = false;
        loop {
            attempts += 1;
            let result = match self.inner.pick(key) {
                Some(node) => {
                    let lane = match held.take() {
                        Some((at, lane)) if at == node => lane,
                        // Its outcome there is unknown: never reuse it.
                        Some(_) | None => self.inner.take_lane(&node, stream),
                    };
                    let result = self.inner.post(&node, stream, body.clone(), &lane).await;
                    match &result {
                        Ok(_) => {
                            let lane = Lane {
                                next: lane.next + 1,
                                ..lane
                            };
                            self.inner.return_lane(&node, stream, lane);
                        }
                        Err(Error::Rejected {
                            expected: Some(next),
                            ..
                        }) if !resynced => {
                            resynced = true;
                            // The node expects another sequence (this lane's
                            // earlier send was abandoned before the node got
                            // it): take its word and send again at once.
                            held = Some((
                                node.clone(),
                                Lane {
                                    next: *next,
                                    ..lane
                                },
                            ));
                            attempts -= 1;
                            continue;
                        }
                        // Refused: nothing was written, the sequence is free.
                        Err(e) if !e.is_retryable() => self.inner.return_lane(&node, stream, lane),
                        Err(_) => held = Some((node.clone(), lane)),
                    }
                    result
                }
                None => Err(Error::NoNodes),
            };
            let error = match result {
                Ok(response) => {
                    return Ok(Ack {
                        node: response.0,
                        response: response.1,
                        attempts,
                    });
                }
                Err(e) if !e.is_retryable() => return Err(e),
                Err(e) => e,
            };
            let wait = self.inner.retry.backoff(attempts - 1);
            let elapsed = started.elapsed();
            if elapsed + wait >= self.inner.retry.deadline {
                return Err(Error::DeadlineExceeded {
                    attempts,
                    elapsed,
                    last: Box::new(error),
                });
            }
            tracing::debug!(error = %error, ?wait, attempts, "send failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// A [`Batcher`] for `stream`: records pushed to it are sent in
    /// batches by a background task.
    pub fn batcher(&self, stream: &str, config: BatchConfig) -> Batcher {
        Batcher::spawn(self.clone(), stream.to_owned(), config)
    }
}

impl Inner {
    /// Reads the online nodes from the manager.
    async fn refresh(&self) -> Result<()> {
        let Some(manager) = &self.manager else {
            return Ok(());
        };
        let url = format!("{manager}/v1/cluster/nodes");
        let discovery = |reason: String| Error::Discovery {
            url: url.clone(),
            reason,
        };
        let list: NodeList = self
            .http
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| discovery(e.to_string()))?
            .json()
            .await
            .map_err(|e| discovery(e.to_string()))?;
        let nodes: Vec<Endpoint> = list
            .nodes
            .into_iter()
            .filter(|n| n.online)
            .map(|n| Endpoint {
                addr: format!("{}:{}", n.ip, n.port),
                load: n.load,
            })
            .collect();
        if nodes.is_empty() {
            tracing::warn!(%manager, "the manager lists no online node; keeping the cached list");
        } else {
            *self.nodes.lock() = nodes;
        }
        Ok(())
    }

    /// Picks a node that is not frozen; if all are frozen, the one whose
    /// freeze ends first.
    fn pick(&self, key: &[u8]) -> Option<String> {
        let nodes = self.nodes.lock().clone();
        let now = Instant::now();
        let mut frozen = self.frozen.lock();
        frozen.retain(|_, until| *until > now);
        let usable: Vec<Endpoint> = nodes
            .iter()
            .filter(|n| !frozen.contains_key(&n.addr))
            .cloned()
            .collect();
        if let Some(node) = choose(self.strategy, &usable, key, &self.turn) {
            return Some(node.addr.clone());
        }
        nodes
            .iter()
            .min_by_key(|n| frozen.get(&n.addr).copied())
            .map(|n| n.addr.clone())
    }

    /// An idle lane for `stream` on `node`, or a new one.
    fn take_lane(&self, node: &str, stream: &str) -> Lane {
        self.lanes
            .lock()
            .get_mut(&(node.to_owned(), stream.to_owned()))
            .and_then(Vec::pop)
            .unwrap_or_else(Lane::new)
    }

    fn return_lane(&self, node: &str, stream: &str, lane: Lane) {
        self.lanes
            .lock()
            .entry((node.to_owned(), stream.to_owned()))
            .or_default()
            .push(lane);
    }

    fn freeze(&self, node: &str, at_least: Option<Duration>) {
        let for_ = at_least.map_or(self.freeze_for, |d| d.max(self.freeze_for));
        self.frozen
            .lock()
            .insert(node.to_owned(), Instant::now() + for_);
    }

    async fn post(
        &self,
        node: &str,
        stream: &str,
        body: Bytes,
        lane: &Lane,
    ) -> Result<(String, AppendResponse)> {
        let url = format!("http://{node}/v1/streams/{stream}/records");
        let response = match self
            .http
            .post(url)
            .header("content-type", "application/x-ndjson")
            .header("intake-producer-id", &lane.producer)
            .header("intake-sequence", lane.next)
            .body(body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                self.freeze(node, None);
                return Err(Error::Unreachable {
                    node: node.to_owned(),
                    reason: e.to_string(),
                });
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = response.bytes().await.map_err(|e| {
            self.freeze(node, None);
            Error::Unreachable {
                node: node.to_owned(),
                reason: format!("answer cut short: {e}"),
            }
        })?;
        if status.is_success() {
            let parsed = serde_json::from_slice(&bytes).map_err(|e| Error::Unreachable {
                node: node.to_owned(),
                reason: format!("unreadable success answer: {e}"),
            })?;
            return Ok((node.to_owned(), parsed));
        }
        let (code, message, expected) = match serde_json::from_slice::<ErrorResponse>(&bytes) {
            Ok(e) => (e.error.code, e.error.message, e.error.expected),
            Err(_) => (
                "unknown".to_owned(),
                String::from_utf8_lossy(&bytes).into_owned(),
                None,
            ),
        };
        if status.is_server_error() || status.as_u16() == 429 {
            self.freeze(node, retry_after);
            return Err(Error::Unavailable {
                node: node.to_owned(),
                status: status.as_u16(),
                code,
                message,
                retry_after,
            });
        }
        Err(Error::Rejected {
            node: node.to_owned(),
            status: status.as_u16(),
            code,
            message,
            expected,
        })
    }
}
