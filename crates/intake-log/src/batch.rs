//! Batch encoding and decoding.
//!
//! A batch is what one append request becomes on disk. The caller encodes it
//! (off the writer thread) with [`EncodedBatch::encode`]; the writer only
//! patches the base offset, which the CRC deliberately does not cover, so
//! offsets are assigned without re-hashing. The layout is in the crate docs.

use bytes::Bytes;

use crate::coding::{DecodeError, Reader, put_varint, put_varint_signed, varint_size};
use crate::error::Error;
use crate::record::{Header, NewRecord, Record};

/// Version byte of the batch format.
pub(crate) const BATCH_MAGIC: u8 = 1;
/// Size of the fixed batch header.
pub const BATCH_HEADER_LEN: usize = 39;
/// Bytes before the part the `length` field counts (base offset + length).
pub(crate) const LENGTH_PREFIX_LEN: usize = 12;
/// Where the CRC-covered part starts.
const CRC_START: usize = 16;
/// Flag: a request tag sits between the header and the records.
pub(crate) const FLAG_REQUEST_TAG: u16 = 0x0002;
/// Every flag this version knows; a batch with another bit set is refused.
const KNOWN_FLAGS: u16 = FLAG_REQUEST_TAG;
/// Largest request tag a batch may carry (a request over several
/// partitions lists the request positions of each batch's records).
pub const MAX_REQUEST_TAG_BYTES: usize = 16 << 20;

/// The fixed header in front of every batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    pub(crate) base_offset: u64,
    /// Bytes after the length field: CRC, the rest of the header, records.
    pub(crate) length: u32,
    pub(crate) crc: u32,
    pub(crate) count: u32,
    pub(crate) first_ts: i64,
    pub(crate) max_ts: i64,
    pub(crate) flags: u16,
}

impl BatchHeader {
    /// Parses and sanity-checks a header (not the CRC, which needs the body).
    pub(crate) fn parse(buf: &[u8], max_batch_bytes: u32) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let base_offset = r.u64()?;
        let length_at = r.position();
        let length = r.u32()?;
        let crc = r.u32()?;
        let magic_at = r.position();
        let magic = r.u8()?;
        let count_at = r.position();
        let count = r.u32()?;
        let first_ts = r.i64()?;
        let max_ts = r.i64()?;
        let flags = r.u16()?;
        let min_length = (BATCH_HEADER_LEN - LENGTH_PREFIX_LEN) as u32;
        if length < min_length || length > max_batch_bytes {
            return Err(DecodeError::Invalid {
                at: length_at,
                what: "batch length",
            });
        }
        if magic != BATCH_MAGIC {
            return Err(DecodeError::Invalid {
                at: magic_at,
                what: "batch magic",
            });
        }
        if count == 0 {
            return Err(DecodeError::Invalid {
                at: count_at,
                what: "record count",
            });
        }
        if flags & !KNOWN_FLAGS != 0 {
            return Err(DecodeError::Invalid {
                at: BATCH_HEADER_LEN - 2,
                what: "batch flags",
            });
        }
        Ok(Self {
            base_offset,
            length,
            crc,
            count,
            first_ts,
            max_ts,
            flags,
        })
    }

    /// Bytes of the whole batch, header included.
    pub(crate) fn total_len(&self) -> usize {
        LENGTH_PREFIX_LEN + self.length as usize
    }

    /// Offset just past the batch's last record.
    pub(crate) fn next_offset(&self) -> u64 {
        self.base_offset.saturating_add(u64::from(self.count))
    }

    /// Checks the CRC of a whole batch (header included).
    pub(crate) fn verify_crc(&self, batch: &[u8]) -> Result<(), DecodeError> {
        let covered = batch.get(CRC_START..).ok_or(DecodeError::Truncated {
            at: batch.len(),
            needed: CRC_START.saturating_sub(batch.len()),
        })?;
        if crc32c::crc32c(covered) == self.crc {
            Ok(())
        } else {
            Err(DecodeError::Invalid {
                at: 12,
                what: "crc32c",
            })
        }
    }
}

/// A batch encoded and checksummed, waiting for its base offset.
#[derive(Debug, Clone)]
pub struct EncodedBatch {
    buf: Vec<u8>,
    count: u32,
    max_ts: i64,
}

impl EncodedBatch {
    /// Encodes `records` into one batch.
    ///
    /// # Errors
    /// [`Error::EmptyBatch`] for no records; [`Error::BatchTooLarge`] when the
    /// batch would not fit the 32-bit length field.
    pub fn encode(records: &[NewRecord]) -> Result<Self, Error> {
        Self::encode_tagged(records, None)
    }

    /// Encodes `records` into one batch that carries `tag`, opaque bytes
    /// about the request that wrote it (intake-core keeps its idempotency
    /// keys there), under the batch's CRC: durable in the same write and
    /// fsync as the records, and found again by [`crate::Partition::request_tags`].
    ///
    /// # Errors
    /// As [`EncodedBatch::encode`]; [`Error::InvalidParameter`] for a tag
    /// over [`MAX_REQUEST_TAG_BYTES`].
    pub fn encode_tagged(records: &[NewRecord], tag: Option<&[u8]>) -> Result<Self, Error> {
        if let Some(tag) = tag
            && tag.len() > MAX_REQUEST_TAG_BYTES
        {
            return Err(Error::InvalidParameter {
                name: "request tag",
                reason: format!(
                    "{} bytes, over the {MAX_REQUEST_TAG_BYTES}-byte limit",
                    tag.len()
                ),
            });
        }
        let first = records.first().ok_or(Error::EmptyBatch)?;
        let count = u32::try_from(records.len()).map_err(|_| Error::BatchTooLarge {
            len: records.len() as u64,
            limit: u64::from(u32::MAX),
        })?;
        let first_ts = first.timestamp;
        let max_ts = records
            .iter()
            .map(|r| r.timestamp)
            .max()
            .unwrap_or(first_ts);
        let estimate: usize = BATCH_HEADER_LEN
            + tag.map_or(0, |t| t.len() + 4)
            + records
                .iter()
                .map(|r| {
                    16 + r.value.len()
                        + r.key.as_ref().map_or(0, Bytes::len)
                        + r.headers
                            .iter()
                            .map(|h| 8 + h.key.len() + h.value.len())
                            .sum::<usize>()
                })
                .sum::<usize>();
        let mut buf = Vec::with_capacity(estimate);
        buf.extend_from_slice(&0u64.to_le_bytes()); // base offset, patched by the writer
        buf.extend_from_slice(&0u32.to_le_bytes()); // length, patched below
        buf.extend_from_slice(&0u32.to_le_bytes()); // crc, patched below
        buf.push(BATCH_MAGIC);
        buf.extend_from_slice(&count.to_le_bytes());
        buf.extend_from_slice(&first_ts.to_le_bytes());
        buf.extend_from_slice(&max_ts.to_le_bytes());
        let flags = if tag.is_some() { FLAG_REQUEST_TAG } else { 0 };
        buf.extend_from_slice(&flags.to_le_bytes());
        if let Some(tag) = tag {
            put_varint(&mut buf, tag.len() as u64);
            buf.extend_from_slice(tag);
        }
        for (delta, record) in records.iter().enumerate() {
            encode_record(&mut buf, delta as u64, first_ts, record);
        }
        let length =
            u32::try_from(buf.len() - LENGTH_PREFIX_LEN).map_err(|_| Error::BatchTooLarge {
                len: buf.len() as u64,
                limit: u64::from(u32::MAX),
            })?;
        let crc = crc32c::crc32c(buf.get(CRC_START..).unwrap_or_default());
        patch(&mut buf, 8, &length.to_le_bytes());
        patch(&mut buf, 12, &crc.to_le_bytes());
        Ok(Self { buf, count, max_ts })
    }

    /// Number of records.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Encoded size in bytes, header included.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Always false: a batch holds at least one record.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The newest timestamp in the batch.
    pub fn max_timestamp(&self) -> i64 {
        self.max_ts
    }

    /// Sets the base offset (not covered by the CRC) and returns the bytes.
    pub(crate) fn with_base_offset(&mut self, base_offset: u64) -> &[u8] {
        patch(&mut self.buf, 0, &base_offset.to_le_bytes());
        &self.buf
    }

    /// The encoded bytes (base offset as last set), without a copy.
    pub(crate) fn into_bytes(self) -> Bytes {
        Bytes::from(self.buf)
    }
}

fn patch(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = buf.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

fn encode_record(buf: &mut Vec<u8>, offset_delta: u64, first_ts: i64, record: &NewRecord) {
    let ts_delta = record.timestamp.wrapping_sub(first_ts);
    let zig = ((ts_delta << 1) ^ (ts_delta >> 63)) as u64;
    let key_tag = record.key.as_ref().map_or(0, |k| k.len() as u64 + 1);
    let mut body_len = varint_size(offset_delta)
        + varint_size(zig)
        + varint_size(key_tag)
        + record.key.as_ref().map_or(0, Bytes::len)
        + varint_size(record.value.len() as u64)
        + record.value.len()
        + varint_size(record.headers.len() as u64);
    for h in &record.headers {
        body_len += varint_size(h.key.len() as u64)
            + h.key.len()
            + varint_size(h.value.len() as u64)
            + h.value.len();
    }
    put_varint(buf, body_len as u64);
    put_varint(buf, offset_delta);
    put_varint_signed(buf, ts_delta);
    put_varint(buf, key_tag);
    if let Some(key) = &record.key {
        buf.extend_from_slice(key);
    }
    put_varint(buf, record.value.len() as u64);
    buf.extend_from_slice(&record.value);
    put_varint(buf, record.headers.len() as u64);
    for h in &record.headers {
        put_varint(buf, h.key.len() as u64);
        buf.extend_from_slice(h.key.as_bytes());
        put_varint(buf, h.value.len() as u64);
        buf.extend_from_slice(&h.value);
    }
}

/// Decodes the records of a whole batch whose CRC has been verified.
///
/// `batch` must be exactly one batch; values are zero-copy slices of it.
pub(crate) fn decode_records(
    batch: &Bytes,
    header: &BatchHeader,
) -> Result<Vec<Record>, DecodeError> {
    let body = batch
        .get(BATCH_HEADER_LEN..)
        .ok_or(DecodeError::Truncated {
            at: batch.len(),
            needed: BATCH_HEADER_LEN.saturating_sub(batch.len()),
        })?;
    let mut r = Reader::new(body);
    let slice = |r: &Reader<'_>, len: usize| -> Bytes {
        let end = BATCH_HEADER_LEN + r.position();
        batch.slice(end - len..end)
    };
    if header.flags & FLAG_REQUEST_TAG != 0 {
        let len = r.varint_len()?;
        r.bytes(len)?;
    }
    let mut records = Vec::with_capacity(header.count as usize);
    for expected_delta in 0..u64::from(header.count) {
        let at = r.position();
        let len = r.varint_len()?;
        let record_end = r.position().checked_add(len).ok_or(DecodeError::Invalid {
            at,
            what: "record length",
        })?;
        let delta_at = r.position();
        let offset_delta = r.varint()?;
        if offset_delta != expected_delta {
            return Err(DecodeError::Invalid {
                at: delta_at,
                what: "offset delta",
            });
        }
        let timestamp = header.first_ts.wrapping_add(r.varint_signed()?);
        let key = match r.varint_len()? {
            0 => None,
            tag => {
                r.bytes(tag - 1)?;
                Some(slice(&r, tag - 1))
            }
        };
        let value_len = r.varint_len()?;
        r.bytes(value_len)?;
        let value = slice(&r, value_len);
        let header_count = r.varint_len()?;
        let mut headers = Vec::with_capacity(header_count.min(64));
        for _ in 0..header_count {
            let name_at = r.position();
            let name_len = r.varint_len()?;
            let name =
                std::str::from_utf8(r.bytes(name_len)?).map_err(|_| DecodeError::Invalid {
                    at: name_at,
                    what: "header name",
                })?;
            let name = name.to_owned();
            let value_len = r.varint_len()?;
            r.bytes(value_len)?;
            headers.push(Header {
                key: name,
                value: slice(&r, value_len),
            });
        }
        if r.position() != record_end {
            return Err(DecodeError::Invalid {
                at,
                what: "record length",
            });
        }
        records.push(Record {
            offset: header.base_offset.saturating_add(offset_delta),
            timestamp,
            key,
            value,
            headers,
        });
    }
    if r.remaining() != 0 {
        return Err(DecodeError::Invalid {
            at: r.position(),
            what: "trailing bytes",
        });
    }
    Ok(records)
}

/// The request tag of a whole batch whose CRC has been verified, if it
/// carries one (a zero-copy slice of `batch`).
pub(crate) fn request_tag(
    batch: &Bytes,
    header: &BatchHeader,
) -> Result<Option<Bytes>, DecodeError> {
    if header.flags & FLAG_REQUEST_TAG == 0 {
        return Ok(None);
    }
    let body = batch
        .get(BATCH_HEADER_LEN..)
        .ok_or(DecodeError::Truncated {
            at: batch.len(),
            needed: BATCH_HEADER_LEN.saturating_sub(batch.len()),
        })?;
    let mut r = Reader::new(body);
    let len = r.varint_len()?;
    if len > MAX_REQUEST_TAG_BYTES {
        return Err(DecodeError::Invalid {
            at: BATCH_HEADER_LEN,
            what: "request tag length",
        });
    }
    r.bytes(len)?;
    let end = BATCH_HEADER_LEN + r.position();
    Ok(Some(batch.slice(end - len..end)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_record() -> impl Strategy<Value = NewRecord> {
        (
            any::<i64>(),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
            proptest::collection::vec(any::<u8>(), 0..512),
            proptest::collection::vec(
                (
                    "[a-z-]{0,12}",
                    proptest::collection::vec(any::<u8>(), 0..32),
                ),
                0..4,
            ),
        )
            .prop_map(|(timestamp, key, value, headers)| NewRecord {
                timestamp,
                key: key.map(Bytes::from),
                value: Bytes::from(value),
                headers: headers
                    .into_iter()
                    .map(|(key, value)| Header {
                        key,
                        value: Bytes::from(value),
                    })
                    .collect(),
            })
    }

    fn decode(bytes: &[u8]) -> Result<Vec<Record>, DecodeError> {
        let header = BatchHeader::parse(bytes, u32::MAX)?;
        let whole = bytes
            .get(..header.total_len())
            .ok_or(DecodeError::Truncated { at: 0, needed: 1 })?;
        header.verify_crc(whole)?;
        decode_records(&Bytes::copy_from_slice(whole), &header)
    }

    proptest! {
        #[test]
        fn batch_roundtrip(
            records in proptest::collection::vec(arb_record(), 1..20),
            base in 0u64..u64::MAX / 2,
            tag in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
        ) {
            let mut batch = EncodedBatch::encode_tagged(&records, tag.as_deref()).expect("encodes");
            prop_assert_eq!(batch.count() as usize, records.len());
            let bytes = batch.with_base_offset(base).to_vec();
            let decoded = decode(&bytes).expect("decodes");
            let header = BatchHeader::parse(&bytes, u32::MAX).expect("header");
            let read_tag = request_tag(&Bytes::copy_from_slice(&bytes), &header).expect("tag");
            prop_assert_eq!(read_tag.as_deref(), tag.as_deref());
            prop_assert_eq!(decoded.len(), records.len());
            for (i, (got, want)) in decoded.iter().zip(&records).enumerate() {
                prop_assert_eq!(got.offset, base + i as u64);
                prop_assert_eq!(got.timestamp, want.timestamp);
                prop_assert_eq!(&got.key, &want.key);
                prop_assert_eq!(&got.value, &want.value);
                prop_assert_eq!(&got.headers, &want.headers);
            }
        }

        #[test]
        fn any_flipped_bit_is_detected(records in proptest::collection::vec(arb_record(), 1..4), bit in any::<proptest::sample::Index>()) {
            let mut batch = EncodedBatch::encode(&records).expect("encodes");
            let mut bytes = batch.with_base_offset(7).to_vec();
            // Bits of the base offset are not covered by the CRC by design;
            // the scanner checks them against the expected offset instead.
            let i = bit.index((bytes.len() - 8) * 8) + 64;
            bytes[i / 8] ^= 1 << (i % 8);
            prop_assert!(decode(&bytes).is_err());
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
            if let Ok(header) = BatchHeader::parse(&bytes, u32::MAX)
                && let Some(whole) = bytes.get(..header.total_len())
            {
                let _ = decode_records(&Bytes::copy_from_slice(whole), &header);
            }
        }
    }

    #[test]
    fn request_tags_are_limited_at_the_edge() {
        let records = [NewRecord::new(1, "v")];
        let at_limit = vec![7u8; MAX_REQUEST_TAG_BYTES];
        assert!(EncodedBatch::encode_tagged(&records, Some(&at_limit)).is_ok());
        let past = vec![7u8; MAX_REQUEST_TAG_BYTES + 1];
        assert!(matches!(
            EncodedBatch::encode_tagged(&records, Some(&past)),
            Err(Error::InvalidParameter { .. })
        ));
    }

    #[test]
    fn unknown_flags_are_refused() {
        let mut batch = EncodedBatch::encode(&[NewRecord::new(1, "v")]).expect("encodes");
        let mut bytes = batch.with_base_offset(0).to_vec();
        bytes[37] = 0x04;
        assert!(BatchHeader::parse(&bytes, u32::MAX).is_err());
    }

    #[test]
    fn empty_batch_is_refused() {
        assert!(matches!(EncodedBatch::encode(&[]), Err(Error::EmptyBatch)));
    }

    #[test]
    fn header_layout_is_stable() {
        let mut batch =
            EncodedBatch::encode(&[NewRecord::new(1_700_000_000_000, "hi")]).expect("encodes");
        let bytes = batch.with_base_offset(42).to_vec();
        assert_eq!(&bytes[0..8], &42u64.to_le_bytes());
        assert_eq!(
            u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize,
            bytes.len() - 12
        );
        assert_eq!(bytes[16], BATCH_MAGIC);
        assert_eq!(&bytes[17..21], &1u32.to_le_bytes());
        assert_eq!(&bytes[21..29], &1_700_000_000_000i64.to_le_bytes());
        // record: len, delta 0, ts delta 0, no key, value len 2, "hi", 0 headers
        assert_eq!(&bytes[39..], &[7, 0, 0, 0, 2, b'h', b'i', 0]);
    }
}
