//! The sparse offset index of a segment.
//!
//! One entry per `index_interval_bytes` of batches maps a batch's offset
//! (relative to the segment's base) to its byte position. The active
//! segment's index lives in memory and is rebuilt by the recovery scan; a
//! sealed segment's index is written once, atomically, at roll time.

use crate::coding::{DecodeError, Reader};
use crate::segment::SEGMENT_HEADER_LEN;

const INDEX_MAGIC: &[u8; 8] = b"INTKIDX\x01";

/// One index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    /// Offset of a batch's first record minus the segment's base offset.
    pub(crate) relative_offset: u32,
    /// Byte position of that batch in the segment file.
    pub(crate) position: u32,
}

/// A segment's sparse index.
#[derive(Debug, Clone)]
pub(crate) struct Index {
    base_offset: u64,
    interval: u64,
    entries: Vec<IndexEntry>,
    bytes_since_entry: u64,
}

impl Index {
    pub(crate) fn new(base_offset: u64, interval: u32) -> Self {
        Self {
            base_offset,
            interval: u64::from(interval),
            entries: Vec::new(),
            bytes_since_entry: 0,
        }
    }

    /// Notes a batch of `len` bytes at `position` starting at `offset`.
    pub(crate) fn on_batch(&mut self, offset: u64, position: u64, len: usize) {
        if (self.entries.is_empty() || self.bytes_since_entry >= self.interval)
            && let (Ok(relative_offset), Ok(position)) = (
                u32::try_from(offset.saturating_sub(self.base_offset)),
                u32::try_from(position),
            )
        {
            self.entries.push(IndexEntry {
                relative_offset,
                position,
            });
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += len as u64;
    }

    /// Byte position of the last indexed batch starting at or before `offset`.
    pub(crate) fn lookup(&self, offset: u64) -> u64 {
        let relative = offset.saturating_sub(self.base_offset);
        let i = self
            .entries
            .partition_point(|e| u64::from(e.relative_offset) <= relative);
        i.checked_sub(1)
            .and_then(|i| self.entries.get(i))
            .map_or(SEGMENT_HEADER_LEN, |e| u64::from(e.position))
    }

    /// The last entry as (absolute offset, position).
    pub(crate) fn last(&self) -> Option<(u64, u64)> {
        self.entries.last().map(|e| {
            (
                self.base_offset + u64::from(e.relative_offset),
                u64::from(e.position),
            )
        })
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(INDEX_MAGIC.len() + self.entries.len() * 8 + 4);
        out.extend_from_slice(INDEX_MAGIC);
        for e in &self.entries {
            out.extend_from_slice(&e.relative_offset.to_le_bytes());
            out.extend_from_slice(&e.position.to_le_bytes());
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes an index file and checks it against its segment's length.
    pub(crate) fn decode(
        bytes: &[u8],
        base_offset: u64,
        interval: u32,
        segment_len: u64,
    ) -> Result<Self, DecodeError> {
        let body_len = bytes.len().checked_sub(4).ok_or(DecodeError::Truncated {
            at: bytes.len(),
            needed: 4,
        })?;
        let (body, crc) = bytes.split_at(body_len);
        let mut r = Reader::new(crc);
        if crc32c::crc32c(body) != r.u32()? {
            return Err(DecodeError::Invalid {
                at: body_len,
                what: "index crc32c",
            });
        }
        let mut r = Reader::new(body);
        if r.bytes(INDEX_MAGIC.len())? != INDEX_MAGIC {
            return Err(DecodeError::Invalid {
                at: 0,
                what: "index magic",
            });
        }
        if !r.remaining().is_multiple_of(8) {
            return Err(DecodeError::Invalid {
                at: r.position(),
                what: "index length",
            });
        }
        let mut index = Self::new(base_offset, interval);
        let mut previous: Option<IndexEntry> = None;
        while r.remaining() > 0 {
            let at = r.position();
            let entry = IndexEntry {
                relative_offset: r.u32()?,
                position: r.u32()?,
            };
            let ordered = previous.is_none_or(|p| {
                p.relative_offset < entry.relative_offset && p.position < entry.position
            });
            let in_file = u64::from(entry.position) >= SEGMENT_HEADER_LEN
                && u64::from(entry.position) < segment_len;
            if !ordered || !in_file {
                return Err(DecodeError::Invalid {
                    at,
                    what: "index entry",
                });
            }
            index.entries.push(entry);
            previous = Some(entry);
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_the_entry_at_or_before() {
        let mut index = Index::new(100, 10);
        index.on_batch(100, 16, 10); // entry
        index.on_batch(105, 26, 4); // 10 bytes since: entry
        index.on_batch(110, 30, 4); // 4 since: none
        index.on_batch(112, 34, 8); // 8 since: none
        index.on_batch(120, 42, 1); // 16 since: entry
        assert_eq!(index.len(), 3);
        assert_eq!(index.lookup(99), 16);
        assert_eq!(index.lookup(100), 16);
        assert_eq!(index.lookup(104), 16);
        assert_eq!(index.lookup(105), 26);
        assert_eq!(index.lookup(119), 26);
        assert_eq!(index.lookup(500), 42);
        assert_eq!(index.last(), Some((120, 42)));
    }

    #[test]
    fn encode_decode_roundtrip_and_checks() {
        let mut index = Index::new(7, 1);
        index.on_batch(7, 16, 50);
        index.on_batch(9, 66, 50);
        let bytes = index.encode();
        let back = Index::decode(&bytes, 7, 1, 200).unwrap();
        assert_eq!(back.entries, index.entries);
        // Entry past the end of the segment.
        assert!(Index::decode(&bytes, 7, 1, 60).is_err());
        // Any flipped bit is caught.
        for i in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[i / 8] ^= 1 << (i % 8);
            assert!(Index::decode(&b, 7, 1, 200).is_err(), "bit {i}");
        }
    }
}
