//! Batching: records pushed one by one are sent together, by count, size
//! and linger time, and each push resolves when its batch is durable.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use intake_format::api::AppendResponse;
use tokio::sync::{mpsc, oneshot};

use crate::{Client, Error, Result};

/// When a [`Batcher`] sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most records per request (default 500).
    pub max_records: usize,
    /// Most bytes per request (default 1 MiB; a single larger record is
    /// sent alone).
    pub max_bytes: usize,
    /// Longest wait for more records after the first of a batch (default
    /// 5 ms).
    pub linger: Duration,
    /// Batches in flight at once (default 4).
    pub max_in_flight: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_records: 500,
            max_bytes: 1 << 20,
            linger: Duration::from_millis(5),
            max_in_flight: 4,
        }
    }
}

/// The acknowledgement of one record sent by a [`Batcher`].
#[derive(Debug, Clone)]
pub struct RecordAck {
    /// The node that stored the batch.
    pub node: String,
    /// The batch's answer (offsets per partition).
    pub batch: Arc<AppendResponse>,
    /// The record's place in its batch.
    pub index: usize,
}

type Pending = (Bytes, oneshot::Sender<Result<RecordAck>>);

/// Sends records of one stream in batches; cheap to clone. Dropping every
/// clone flushes what is queued, then the task ends.
#[derive(Debug, Clone)]
pub struct Batcher {
    queue: mpsc::Sender<Pending>,
}

impl Batcher {
    pub(crate) fn spawn(client: Client, stream: String, config: BatchConfig) -> Self {
        let (queue, mut rx) = mpsc::channel::<Pending>(config.max_records.max(1) * 2);
        let in_flight = Arc::new(tokio::sync::Semaphore::new(config.max_in_flight.max(1)));
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut bytes = first.0.len();
                let mut batch = vec![first];
                let deadline = tokio::time::Instant::now() + config.linger;
                while batch.len() < config.max_records && bytes < config.max_bytes {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(next)) => {
                            bytes += next.0.len();
                            batch.push(next);
                        }
                        Ok(None) | Err(_) => break,
                    }
                }
                let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
                    return;
                };
                let client = client.clone();
                let stream = stream.clone();
                tokio::spawn(async move {
                    let (records, waiters): (Vec<Bytes>, Vec<_>) = batch.into_iter().unzip();
                    let result = client.send(&stream, records).await;
                    drop(permit);
                    match result {
                        Ok(ack) => {
                            let response = Arc::new(ack.response);
                            for (index, waiter) in waiters.into_iter().enumerate() {
                                let _ = waiter.send(Ok(RecordAck {
                                    node: ack.node.clone(),
                                    batch: Arc::clone(&response),
                                    index,
                                }));
                            }
                        }
                        Err(e) => {
                            let shared = Arc::new(e);
                            for waiter in waiters {
                                let _ = waiter.send(Err(clone_error(&shared)));
                            }
                        }
                    }
                });
            }
        });
        Self { queue }
    }

    /// Queues one record; resolves once its batch is durable on a node.
    ///
    /// # Errors
    /// The batch's send error; [`Error::Closed`] if the batcher's task is
    /// gone.
    pub async fn push(&self, record: Bytes) -> Result<RecordAck> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .send((record, tx))
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }
}

/// Every record of a failed batch gets the batch's error.
fn clone_error(error: &Error) -> Error {
    match error {
        Error::Rejected {
            node,
            status,
            code,
            message,
            expected,
        } => Error::Rejected {
            node: node.clone(),
            status: *status,
            code: code.clone(),
            message: message.clone(),
            expected: *expected,
        },
        Error::DeadlineExceeded {
            attempts,
            elapsed,
            last,
        } => Error::DeadlineExceeded {
            attempts: *attempts,
            elapsed: *elapsed,
            last: Box::new(clone_error(last)),
        },
        other => Error::Unreachable {
            node: String::new(),
            reason: other.to_string(),
        },
    }
}
