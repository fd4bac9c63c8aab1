//! intake's core: streams and their catalog, and the ingest pipeline that
//! every face shares.
//!
//! A face parses its request into an [`IngestRequest`] and calls
//! [`Node::ingest`]; the pipeline checks the stream's state, decodes and
//! validates every record, chooses partitions, appends, and returns once the
//! records are durable. Faces then render the [`IngestOutcome`] (or the
//! [`Error`]) in their own wire shape.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), intake_core::Error> {
//! use bytes::Bytes;
//! use intake_core::{CoreConfig, IngestRequest, Node};
//! use intake_format::{Framing, api::StreamDefinition};
//!
//! let dir = tempfile::tempdir().expect("tempdir");
//! let node = Node::open(CoreConfig::new(dir.path())).await?;
//! let stream = node.create_stream(StreamDefinition::new("demo")).await?;
//! let body = Bytes::from_static(br#"[{"temp": 21.5}, {"temp": 22.0}]"#);
//! let outcome = node.ingest(&stream, IngestRequest::body(body, Framing::Json)).await?;
//! assert_eq!(outcome.records, 2);
//! assert_eq!(stream.partition(0)?.read(0, 10, 1 << 20)?.records.len(), 2);
//! node.shutdown().await;
//! # Ok(()) }
//! ```

pub mod auth;
mod catalog;
pub mod cluster;
pub mod config;
mod dedup;
mod error;
mod ingest;
mod node;
pub mod partitioner;
mod schemas;
mod stream;
mod table;

pub use catalog::Catalog;
pub use cluster::NodeRegistry;
pub use config::{CoreConfig, IngestLimits, LogSettings, check_node_id, stored_node_id};
pub use dedup::{DedupCounts, MAX_IDEMPOTENCY_KEY_LEN, MAX_PRODUCER_ID_LEN, RequestKey};
pub use error::{Error, Result};
pub use ingest::{IngestOutcome, IngestRequest, Item, Items, now_ms};
pub use intake_log::{Error as LogError, Header, LogMetrics, Partition, ReadBatch, Record};
pub use node::{Node, normalize_definition};
pub use schemas::SchemaDir;
pub use stream::Stream;
pub use table::Table;
