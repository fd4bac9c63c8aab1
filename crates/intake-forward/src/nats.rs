//! NATS JetStream sinks: every record is published to the sink's subject
//! with `Nats-Msg-Id: <stream>/<partition>/<offset>`, so a batch sent again
//! after a failure or a crash is dropped by the server's duplicate window.
//! Record headers become NATS headers; the key and timestamp travel as
//! `Intake-Key` and `Intake-Timestamp` (epoch ms).

use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::connection::State;
use async_nats::jetstream::{self, Context, message::PublishMessage, stream};
use intake_log::Record;
use tokio::sync::OnceCell;

use crate::broker::{BrokerPosition, Delivery};
use crate::clients::BrokerClients;
use crate::error::SendError;

/// How often a waiting retry looks whether a lost connection is back.
const RECONNECT_POLL: Duration = Duration::from_millis(20);

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
            .timeout(Duration::from_secs(10))
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
    /// Set once a JetStream stream capturing the subject is known to exist.
    stream_ready: OnceCell<()>,
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
            stream_ready: OnceCell::new(),
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

    /// Creates a JetStream stream for the subject when none captures it.
    async fn ensure_stream(&self) -> Result<(), SendError> {
        self.stream_ready
            .get_or_try_init(|| async {
                if self.connection.js.stream_by_subject(self.subject.clone()).await.is_ok() {
                    return Ok(());
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
                Ok(())
            })
            .await
            .map(|_| ())
    }

    /// Publishes `records` (pipelined) and waits for every ack.
    ///
    /// Fails at once while the connection is lost: async-nats would buffer
    /// the publishes and wait for the reconnect, so an outage would show
    /// only as a stalled sink instead of an error in its status (the
    /// sink's retry waits for [`Self::reconnected`]). Before the first
    /// connection is made, sending waits as usual.
    pub(crate) async fn send(
        &self,
        stream: &str,
        partition: u32,
        records: &[Record],
    ) -> Result<Vec<Delivery>, SendError> {
        if self.connection.client.connection_state() == State::Disconnected {
            return Err(SendError(format!(
                "disconnected from {}: the server is down or unreachable",
                self.url
            )));
        }
        self.ensure_stream().await?;
        let mut acks = Vec::with_capacity(records.len());
        for record in records {
            let mut headers = HeaderMap::new();
            for h in &record.headers {
                headers.insert(h.key.as_str(), header_text(&h.value).as_str());
            }
            if let Some(key) = &record.key {
                headers.insert("Intake-Key", header_text(key).as_str());
            }
            headers.insert("Intake-Timestamp", record.timestamp.to_string().as_str());
            let message = PublishMessage::build()
                .payload(record.value.clone())
                .headers(headers)
                .message_id(format!("{stream}/{partition}/{}", record.offset));
            let ack = self
                .connection
                .js
                .send_publish(self.subject.clone(), message)
                .await
                .map_err(|e| SendError(format!("publish to {}: {e}", self.subject)))?;
            acks.push((record.offset, ack));
        }
        let mut deliveries = Vec::with_capacity(acks.len());
        for (offset, ack) in acks {
            let ack = ack
                .await
                .map_err(|e| SendError(format!("no ack from JetStream: {e}")))?;
            deliveries.push(Delivery {
                offset,
                position: BrokerPosition::Nats {
                    stream: ack.stream,
                    sequence: ack.sequence,
                    duplicate: ack.duplicate,
                },
            });
        }
        Ok(deliveries)
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
