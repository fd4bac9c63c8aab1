//! Record formats, schemas and the native API's serde types.
//!
//! Pure bytes-in, types-out: nothing here does I/O, so the same code serves
//! the server, the CLI and the SDK, and every decoder can be fuzzed alone.
//!
//! ```
//! use bytes::Bytes;
//! use intake_format::{Framing, RecordCodec, api::StreamDefinition};
//!
//! let codec = RecordCodec::new(&StreamDefinition::new("demo")).unwrap();
//! let body = Bytes::from_static(br#"[{"temp": 21.5}, {"temp": 22.0}]"#);
//! let items = codec.split(&body, Framing::Json).unwrap();
//! assert_eq!(items.len(), 2);
//! let record = codec.decode(0, items[0].clone(), true).unwrap();
//! assert_eq!(record.value, r#"{"temp": 21.5}"#);
//! ```

pub mod api;
pub mod cluster;
mod codec;
pub mod ddl;
pub mod delimited;
mod error;
pub mod filter;
mod json;
pub mod protobuf;
mod scan;
pub mod schema;
pub mod time;

pub use codec::{DecodedRecord, Framing, RecordCodec};
pub use error::FormatError;
pub use json::{check_json, depth_exceeded_at, split_json, split_ndjson};
