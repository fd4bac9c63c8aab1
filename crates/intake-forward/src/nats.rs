//! NATS JetStream sinks: every record is published to the sink's subject
//! with `Nats-Msg-Id: <stream>/<partition>/<offset>`. A batch in doubt
//! after a crash or a failed ack is read back by that id (see
//! [`NatsSink::read_back`]) and not sent again; the server's duplicate
//! window is a second guard.
//! Record headers become NATS headers; the key and timestamp travel as
//! `Intake-Key` and `Intake-Timestamp` (epoch ms).

use std::sync::Arc;
use std::time::Duration;

use std::fmt::Write as _;
use std::future::IntoFuture;

use async_nats::connection::State;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{self, Context, message::PublishMessage, stream};
use async_nats::{HeaderMap, HeaderName};
use futures::StreamExt;
use intake_log::Record;
use tokio::sync::OnceCell;

use crate::broker::{BrokerPosition, Delivery, Handover, PendingBatch, offset_in_id};
use crate::clients::BrokerClients;
use crate::cursor::Fence;
use crate::error::SendError;

/// How often a waiting retry looks whether a lost connection is back.
const RECONNECT_POLL: Duration = Duration::from_millis(20);
/// How long a JetStream request or a batch's acks may take.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// The header carrying a record's key.
const KEY_HEADER: HeaderName = HeaderName::from_static("Intake-Key");
/// The header carrying a record's timestamp (epoch ms).
const TIMESTAMP_HEADER: HeaderName = HeaderName::from_static("Intake-Timestamp");
/// Publishes awaiting their JetStream ack, per connection.
const MAX_ACKS_IN_FLIGHT: usize = 65_536;
/// How long a read-back may wait for its next message.
const READ_BACK_STALL: Duration = Duration::from_secs(30);

/// A connection to one NATS server, shared by the sinks that send there
/// (see [`crate::BrokerClients`]).
#[derive(Debug)]
pub(crate) struct NatsConnection {
    /// The connection, kept to see whether the server is reachable.
    client: async_nats::Client,
    js: Context,
}

impl NatsConnection {
    /// Connects in the background (retrying until the server answers).
    pub(crate) async fn connect(url: &str) -> Result<Self, SendError> {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|e| SendError(format!("cannot connect to {url}: {e}")))?;
        let js = jetstream::context::ContextBuilder::new()
            .timeout(ACK_TIMEOUT)
            // Shared by every sink on this connection: room for several
            // partitions' batches in flight (publishes wait beyond it).
            .max_ack_inflight(MAX_ACKS_IN_FLIGHT)
            .build(client.clone());
        Ok(Self { client, js })
    }
}

/// A sink's way to one JetStream subject.
#[derive(Debug)]
pub(crate) struct NatsSink {
    connection: Arc<NatsConnection>,
    /// The server address, for error messages.
    url: String,
    subject: String,
    /// The subject, as async-nats takes it (cheap to clone per message).
    subject_bytes: async_nats::Subject,
    /// The JetStream stream capturing the subject, once known to exist.
    stream_name: OnceCell<String>,
}

impl NatsSink {
    /// A sink to `subject` over the node's connection to `url`.
    pub(crate) async fn connect(
        clients: &BrokerClients,
        url: &str,
        subject: &str,
    ) -> Result<Self, SendError> {
        Ok(Self {
            connection: clients.nats_connection(url).await?,
            url: url.to_owned(),
            subject: subject.to_owned(),
            subject_bytes: async_nats::Subject::from(subject),
            stream_name: OnceCell::new(),
        })
    }

    /// Resolves once the connection, down when called, is back; never
    /// while it is up (or not yet made).
    pub(crate) async fn reconnected(&self) {
        if self.connection.client.connection_state() != State::Disconnected {
            return std::future::pending().await;
        }
        while self.connection.client.connection_state() != State::Connected {
            tokio::time::sleep(RECONNECT_POLL).await;
        }
    }

    /// The JetStream stream capturing the subject, created when none does.
    async fn ensure_stream(&self) -> Result<&str, SendError> {
        self.stream_name
            .get_or_try_init(|| async {
                if let Ok(name) = self.connection.js.stream_by_subject(self.subject.clone()).await {
                    return Ok(name);
                }
                let name = format!("INTAKE_{}", jetstream_name(&self.subject));
                self.connection
                    .js
                    .get_or_create_stream(stream::Config {
                        name: name.clone(),
                        subjects: vec![self.subject.clone()],
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| {
                        SendError(format!("cannot create JetStream stream {name}: {e}"))
                    })?;
                tracing::info!(stream = %name, subject = %self.subject, "created a JetStream stream for the sink");
                Ok(name)
            })
            .await
            .map(String::as_str)
    }

    /// Publishes `records` without waiting for acks (async-nats pipelines
    /// them on the connection); the batch resolves once every ack is in.
    ///
    /// Fails at once while the connection is lost: async-nats would buffer
    /// the publishes and wait for the reconnect, so an outage would show
    /// only as a stalled sink instead of an error in its status (the
    /// sink's retry waits for [`Self::reconnected`]). Before the first
    /// connection is made, sending waits as usual.
    pub(crate) async fn publish(&self, id_prefix: &str, records: &[Record]) -> Handover {
        let ready = match self.connected() {
            Ok(()) => self.ensure_stream().await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = ready {
            return Handover::refused(e);
        }
        // Acks are awaited as soon as they exist, on a task of their own:
        // each holds one of the connection's ack permits, which must come
        // back even while this batch (or another sink's) is still being
        // handed over.
        let (acks, mut pending) = tokio::sync::mpsc::unbounded_channel::<(
            u64,
            jetstream::context::PublishAckFuture,
            tokio::time::Instant,
        )>();
        let settled = tokio::spawn(async move {
            let mut deliveries = Vec::new();
            let mut failed = None;
            while let Some((offset, ack, sent_at)) = pending.recv().await {
                // Every ack is awaited, even after a failure: the batch
                // settles only when none of it is on its way. Each until
                // its own deadline, so lost acks expire together.
                let ack = tokio::time::timeout_at(sent_at + ACK_TIMEOUT, ack.into_future()).await;
                match ack {
                    Ok(Ok(ack)) => deliveries.push(Delivery {
                        offset,
                        position: BrokerPosition::Nats {
                            stream: ack.stream,
                            sequence: ack.sequence,
                            duplicate: ack.duplicate,
                        },
                    }),
                    Ok(Err(e)) => {
                        failed.get_or_insert(SendError(format!("no ack from JetStream: {e}")));
                    }
                    Err(_) => {
                        failed.get_or_insert(SendError(format!(
                            "no ack from JetStream within {ACK_TIMEOUT:?}"
                        )));
                    }
                }
            }
            (deliveries, failed)
        });
        let mut refused = None;
        let mut id = String::with_capacity(id_prefix.len() + 20);
        let mut timestamp = String::with_capacity(20);
        for record in records {
            let mut headers = HeaderMap::new();
            for h in &record.headers {
                headers.insert(h.key.as_str(), header_text(&h.value).as_str());
            }
            if let Some(key) = &record.key {
                headers.insert(KEY_HEADER, header_text(key).as_str());
            }
            timestamp.clear();
            let _ = write!(timestamp, "{}", record.timestamp);
            headers.insert(TIMESTAMP_HEADER, timestamp.as_str());
            id.clear();
            id.push_str(id_prefix);
            let _ = write!(id, "{}", record.offset);
            let message = PublishMessage::build()
                .payload(record.value.clone())
                .headers(headers)
                .message_id(id.as_str());
            match self
                .connection
                .js
                .send_publish(self.subject_bytes.clone(), message)
                .await
            {
                Ok(ack) => {
                    let _ = acks.send((record.offset, ack, tokio::time::Instant::now()));
                }
                Err(e) => {
                    refused = Some(SendError(format!("publish to {}: {e}", self.subject)));
                    break;
                }
            }
        }
        drop(acks);
        let refused_now = refused.is_some();
        let settled: PendingBatch = Box::pin(async move {
            let (deliveries, failed) = settled
                .await
                .map_err(|e| SendError(format!("the ack task failed: {e}")))?;
            match refused.or(failed) {
                Some(e) => Err(e),
                None => Ok(deliveries),
            }
        });
        Handover {
            settled,
            refused: refused_now,
        }
    }

    /// An error while the connection is lost (see [`Self::publish`]).
    fn connected(&self) -> Result<(), SendError> {
        if self.connection.client.connection_state() == State::Disconnected {
            return Err(SendError(format!(
                "disconnected from {}: the server is down or unreachable",
                self.url
            )));
        }
        Ok(())
    }

    /// Just past the JetStream stream's last sequence, as broker
    /// partition 0.
    pub(crate) async fn end(&self) -> Result<Fence, SendError> {
        self.connected()?;
        let name = self.ensure_stream().await?;
        let mut stream = self
            .connection
            .js
            .get_stream(name)
            .await
            .map_err(|e| SendError(format!("JetStream stream {name}: {e}")))?;
        let info = stream
            .info()
            .await
            .map_err(|e| SendError(format!("JetStream stream {name}: {e}")))?;
        Ok(Fence::from([(0, info.state.last_sequence + 1)]))
    }

    /// Reads the subject's messages from sequence `from` up to `to`
    /// (headers only, through an ephemeral consumer) and returns those
    /// whose `Nats-Msg-Id` starts with `id_prefix`. Unlike the server's
    /// duplicate window, this finds them however long ago they were sent.
    pub(crate) async fn read_back(
        &self,
        id_prefix: &str,
        from: &Fence,
        to: &Fence,
    ) -> Result<Vec<Delivery>, SendError> {
        let start = from.get(&0).copied().unwrap_or(1).max(1);
        let end = to.get(&0).copied().unwrap_or(0);
        if start >= end {
            return Ok(Vec::new());
        }
        self.connected()?;
        let name = self.ensure_stream().await?;
        let failed = |e: &dyn std::fmt::Display| {
            SendError(format!("read back JetStream stream {name}: {e}"))
        };
        let stream = self
            .connection
            .js
            .get_stream(name)
            .await
            .map_err(|e| failed(&e))?;
        let consumer = stream
            .create_consumer(pull::Config {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: start,
                },
                filter_subject: self.subject.clone(),
                ack_policy: AckPolicy::None,
                headers_only: true,
                inactive_threshold: Duration::from_secs(60),
                ..Default::default()
            })
            .await
            .map_err(|e| failed(&e))?;
        let mut pending = consumer.cached_info().num_pending;
        let consumer_name = consumer.cached_info().name.clone();
        let mut found = Vec::new();
        if pending > 0 {
            let mut messages = consumer.messages().await.map_err(|e| failed(&e))?;
            while pending > 0 {
                let message = tokio::time::timeout(READ_BACK_STALL, messages.next())
                    .await
                    .map_err(|_| failed(&format!("no message in {READ_BACK_STALL:?}")))?
                    .ok_or_else(|| failed(&"the consumer ended"))?
                    .map_err(|e| failed(&e))?;
                let info = message.info().map_err(|e| failed(&e))?;
                let sequence = info.stream_sequence;
                // What is left to read, as the server counts it now (it
                // shrinks if limits delete messages meanwhile).
                pending = info.pending;
                if sequence >= end {
                    break;
                }
                let id = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID));
                if let Some(offset) =
                    id.and_then(|id| offset_in_id(id.as_str().as_bytes(), id_prefix))
                {
                    found.push(Delivery {
                        offset,
                        position: BrokerPosition::Nats {
                            stream: name.to_owned(),
                            sequence,
                            duplicate: false,
                        },
                    });
                }
            }
        }
        // Best effort: an ephemeral consumer also goes away once idle.
        let _ = stream.delete_consumer(&consumer_name).await;
        Ok(found)
    }
}

/// A header value NATS can carry: UTF-8 (lossy) without control
/// characters, which would end the header line.
fn header_text(value: &[u8]) -> String {
    String::from_utf8_lossy(value)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// A JetStream stream name from a subject: letters, digits, `-` and `_`.
fn jetstream_name(subject: &str) -> String {
    subject
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_header_values_are_safe() {
        assert_eq!(jetstream_name("intake.orders.>"), "intake_orders__");
        assert_eq!(header_text(b"a\r\nb"), "a??b");
        assert_eq!(header_text(&[0xff, b'x']), "\u{fffd}x");
    }
}
