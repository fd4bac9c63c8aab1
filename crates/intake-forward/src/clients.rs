//! Broker clients shared by every sink of a node: one Kafka producer per
//! broker list and producer settings, one NATS connection per URL. A node
//! with thousands of streams forwarding to one cluster keeps one client
//! (and, for librdkafka, one set of threads), not one per sink. A client
//! lives as long as some sink uses it.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::error::SendError;

/// The clients the sinks of one node share.
pub struct BrokerClients {
    #[cfg(feature = "kafka")]
    kafka: Mutex<HashMap<String, Weak<rdkafka::producer::FutureProducer>>>,
    /// Blocking librdkafka lookups (metadata, watermarks, read-backs) in
    /// progress at once, node-wide: each holds a thread, and with a
    /// broker away every sink partition would hold one for its timeout.
    #[cfg(feature = "kafka")]
    pub(crate) kafka_lookups: Arc<tokio::sync::Semaphore>,
    #[cfg(feature = "nats")]
    nats: tokio::sync::Mutex<HashMap<String, Weak<crate::nats::NatsConnection>>>,
}

impl std::fmt::Debug for BrokerClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("BrokerClients");
        #[cfg(feature = "kafka")]
        d.field("kafka_producers", &self.kafka.lock().len());
        d.finish_non_exhaustive()
    }
}

impl Default for BrokerClients {
    fn default() -> Self {
        Self {
            #[cfg(feature = "kafka")]
            kafka: Mutex::default(),
            #[cfg(feature = "kafka")]
            kafka_lookups: Arc::new(tokio::sync::Semaphore::new(KAFKA_LOOKUPS)),
            #[cfg(feature = "nats")]
            nats: tokio::sync::Mutex::default(),
        }
    }
}

/// Blocking Kafka lookups at once (see [`BrokerClients`]).
#[cfg(feature = "kafka")]
const KAFKA_LOOKUPS: usize = 4;

impl BrokerClients {
    /// No client yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The producer for `key` (its broker list and settings), made by
    /// `make` when no sink holds one.
    #[cfg(feature = "kafka")]
    pub(crate) fn kafka_producer(
        &self,
        key: String,
        make: impl FnOnce() -> Result<rdkafka::producer::FutureProducer, SendError>,
    ) -> Result<Arc<rdkafka::producer::FutureProducer>, SendError> {
        let mut producers = self.kafka.lock();
        if let Some(producer) = producers.get(&key).and_then(Weak::upgrade) {
            return Ok(producer);
        }
        let producer = Arc::new(make()?);
        producers.retain(|_, p| p.strong_count() > 0);
        producers.insert(key, Arc::downgrade(&producer));
        Ok(producer)
    }

    /// The connection to `url`, made when no sink holds one.
    #[cfg(feature = "nats")]
    pub(crate) async fn nats_connection(
        &self,
        url: &str,
    ) -> Result<Arc<crate::nats::NatsConnection>, SendError> {
        let mut connections = self.nats.lock().await;
        if let Some(connection) = connections.get(url).and_then(Weak::upgrade) {
            return Ok(connection);
        }
        let connection = Arc::new(crate::nats::NatsConnection::connect(url).await?);
        connections.retain(|_, c| c.strong_count() > 0);
        connections.insert(url.to_owned(), Arc::downgrade(&connection));
        Ok(connection)
    }
}

#[cfg(all(test, feature = "kafka"))]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use std::cell::Cell;

    use super::*;

    fn producer() -> Result<rdkafka::producer::FutureProducer, SendError> {
        rdkafka::ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:9")
            .create()
            .map_err(|e| SendError(e.to_string()))
    }

    #[test]
    fn sinks_of_one_broker_list_share_a_producer_while_one_holds_it() {
        let clients = BrokerClients::new();
        let made = Cell::new(0);
        let make = || {
            made.set(made.get() + 1);
            producer()
        };
        let a = clients.kafka_producer("b1".into(), make).unwrap();
        let b = clients.kafka_producer("b1".into(), make).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(made.get(), 1);
        let other = clients.kafka_producer("b2".into(), make).unwrap();
        assert!(!Arc::ptr_eq(&a, &other));
        assert_eq!(made.get(), 2);
        drop((a, b));
        let again = clients.kafka_producer("b1".into(), make).unwrap();
        assert_eq!(made.get(), 3, "a producer no sink holds is dropped");
        drop(again);
        assert_eq!(
            clients
                .kafka
                .lock()
                .values()
                .filter(|p| p.strong_count() > 0)
                .count(),
            1
        );
    }
}
