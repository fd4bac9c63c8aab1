//! The records the log stores: opaque keys, values and headers.

use bytes::Bytes;

/// One header of a record: a UTF-8 name and an opaque value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header name.
    pub key: String,
    /// Header value, opaque to the log.
    pub value: Bytes,
}

/// A record to append; the log assigns its offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// Optional key (absent is different from empty).
    pub key: Option<Bytes>,
    /// The payload.
    pub value: Bytes,
    /// Headers, in order.
    pub headers: Vec<Header>,
}

impl NewRecord {
    /// A record with a value and timestamp, no key and no headers.
    pub fn new(timestamp: i64, value: impl Into<Bytes>) -> Self {
        Self {
            timestamp,
            key: None,
            value: value.into(),
            headers: Vec::new(),
        }
    }
}

/// A record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Position of the record in its partition.
    pub offset: u64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// Optional key.
    pub key: Option<Bytes>,
    /// The payload.
    pub value: Bytes,
    /// Headers, in order.
    pub headers: Vec<Header>,
}

impl Record {
    /// Bytes of key, value and headers: what a read budget counts.
    pub fn payload_len(&self) -> usize {
        self.key.as_ref().map_or(0, Bytes::len)
            + self.value.len()
            + self
                .headers
                .iter()
                .map(|h| h.key.len() + h.value.len())
                .sum::<usize>()
    }
}
