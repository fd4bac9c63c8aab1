//! Sinks: each forwards one stream's records to a broker, Kafka or NATS
//! JetStream, in order per partition and exactly once.
//!
//! The local log is the write-ahead buffer: a worker per sink and partition
//! reads from the sink's committed cursor (a file per partition under the
//! stream's `sinks/<sink>/` directory, replaced atomically) and keeps
//! several batches in flight; acknowledgements commit the cursor in order.
//! A crash or a failed send leaves records whose fate is unknown: before it
//! sends again, the worker reads the broker back from the cursor's fence
//! and skips its own records found there (by `Intake-Id` on Kafka,
//! `Nats-Msg-Id` on NATS), so consumers see each record once without
//! deduplicating. A broker outage only grows the lag; retention keeps
//! every record a sink has not forwarded ([`StreamSinks::retention_floor`])
//! unless the sink sets `max_lag_bytes`. Each broker client sits behind a
//! cargo feature (`nats`, `kafka`; both on by default).

mod broker;
mod clients;
mod cursor;
mod error;
#[cfg(feature = "kafka")]
mod kafka;
#[cfg(feature = "nats")]
mod nats;
mod sinks;

pub use broker::{BrokerPosition, Delivery};
pub use clients::BrokerClients;
pub use error::{ForwardError, SendError};
pub use sinks::{
    DEFAULT_BATCH_RECORDS, DEFAULT_IN_FLIGHT_BATCHES, DEFAULT_IN_FLIGHT_BYTES, SinkRuntime,
    StreamSinks,
};
