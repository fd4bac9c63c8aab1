//! Little-endian and varint coding with checked reads.
//!
//! Everything read from disk goes through [`Reader`], which never panics: a
//! short buffer or an oversized varint is a [`DecodeError`] that the caller
//! turns into [`crate::Error::Corrupt`] with the file and position.

use std::fmt;

/// Why a byte sequence could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// The buffer ended `needed` bytes early, at `at`.
    Truncated { at: usize, needed: usize },
    /// A varint ran over ten bytes or over 64 bits.
    VarintOverflow { at: usize },
    /// A value decoded but is not acceptable.
    Invalid { at: usize, what: &'static str },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { at, needed } => {
                write!(f, "truncated at byte {at}: {needed} more bytes needed")
            }
            Self::VarintOverflow { at } => write!(f, "varint overflows 64 bits at byte {at}"),
            Self::Invalid { at, what } => write!(f, "invalid {what} at byte {at}"),
        }
    }
}

/// A cursor over a byte slice whose every read is bounds-checked.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated {
            at: self.pos,
            needed: n,
        })?;
        let slice = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated {
            at: self.pos,
            needed: end.saturating_sub(self.buf.len()),
        })?;
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(u8::from_le_bytes(self.array()?))
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// An unsigned LEB128 varint.
    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = self.u8()?;
            let low = u64::from(byte & 0x7f);
            if shift == 63 && low > 1 {
                return Err(DecodeError::VarintOverflow { at: start });
            }
            value |= low.checked_shl(shift).unwrap_or(0);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
            if shift >= 63 {
                break;
            }
        }
        Err(DecodeError::VarintOverflow { at: start })
    }

    /// A varint that must fit in `usize` (a length).
    pub(crate) fn varint_len(&mut self) -> Result<usize, DecodeError> {
        let at = self.pos;
        let v = self.varint()?;
        usize::try_from(v).map_err(|_| DecodeError::Invalid { at, what: "length" })
    }

    /// A zigzag-encoded signed varint.
    pub(crate) fn varint_signed(&mut self) -> Result<i64, DecodeError> {
        Ok(unzigzag(self.varint()?))
    }
}

/// Appends `v` as an unsigned LEB128 varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` zigzag-encoded as a varint.
pub(crate) fn put_varint_signed(out: &mut Vec<u8>, v: i64) {
    put_varint(out, zigzag(v));
}

/// The number of bytes `put_varint(v)` writes.
pub(crate) fn varint_size(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varint_roundtrip(v: u64) {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            prop_assert_eq!(buf.len(), varint_size(v));
            let mut r = Reader::new(&buf);
            prop_assert_eq!(r.varint(), Ok(v));
            prop_assert_eq!(r.remaining(), 0);
        }

        #[test]
        fn signed_varint_roundtrip(v: i64) {
            let mut buf = Vec::new();
            put_varint_signed(&mut buf, v);
            prop_assert_eq!(Reader::new(&buf).varint_signed(), Ok(v));
        }

        #[test]
        fn reader_never_panics(bytes: Vec<u8>) {
            let mut r = Reader::new(&bytes);
            while r.remaining() > 0 {
                if r.varint().is_err() { break; }
            }
        }
    }

    #[test]
    fn overlong_varint_is_refused() {
        let buf = [0xffu8; 11];
        assert_eq!(
            Reader::new(&buf).varint(),
            Err(DecodeError::VarintOverflow { at: 0 })
        );
        // Ten bytes whose last carries more than the one bit left.
        let mut buf = vec![0xffu8; 9];
        buf.push(0x02);
        assert_eq!(
            Reader::new(&buf).varint(),
            Err(DecodeError::VarintOverflow { at: 0 })
        );
        let mut buf = vec![0xffu8; 9];
        buf.push(0x01);
        assert_eq!(Reader::new(&buf).varint(), Ok(u64::MAX));
    }

    #[test]
    fn truncated_read_names_position() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16(), Ok(0x0201));
        assert_eq!(r.u32(), Err(DecodeError::Truncated { at: 2, needed: 3 }));
    }
}
