//! The journal's files: naming, the file header, and entries (the layout is
//! in the crate docs).
//!
//! The commit thread writes entries with [`EntryWriter`]; recovery reads a
//! whole file back with [`read_file`], which verifies every entry and stops
//! at the first torn or damaged one.

use std::path::{Path, PathBuf};

use crate::coding::Reader;

/// Magic bytes at the start of every journal file.
const JOURNAL_MAGIC: &[u8; 8] = b"INTKJRNL";
/// Version of the journal format.
const JOURNAL_VERSION: u8 = 1;
/// Size of the journal file header.
pub(crate) const JOURNAL_HEADER_LEN: u64 = 16;
/// Bytes in front of an entry's CRC-covered part: length and CRC.
const ENTRY_PREFIX_LEN: usize = 8;
/// The longest partition path an entry holds.
pub(crate) const MAX_PATH_LEN: usize = u16::MAX as usize;

/// What an entry says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    /// Batches appended to a partition, in order.
    Append = 1,
    /// A partition was removed: its earlier entries describe data that no
    /// longer exists (a new partition may take its path).
    Forget = 2,
}

/// `<dir>/<sequence:020>.journal`.
pub(crate) fn journal_path(dir: &Path, sequence: u64) -> PathBuf {
    dir.join(format!("{sequence:020}.journal"))
}

/// The sequence number of a journal file's name.
pub(crate) fn parse_journal_name(path: &Path) -> Option<u64> {
    let stem = path.file_name()?.to_str()?.strip_suffix(".journal")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// The header of journal file `sequence`.
pub(crate) fn header_bytes(sequence: u64) -> [u8; JOURNAL_HEADER_LEN as usize] {
    let mut h = [0u8; JOURNAL_HEADER_LEN as usize];
    let (magic, rest) = h.split_at_mut(8);
    magic.copy_from_slice(JOURNAL_MAGIC);
    let (version, rest) = rest.split_at_mut(1);
    version.copy_from_slice(&[JOURNAL_VERSION]);
    // 3 reserved bytes, then the low 32 bits of the sequence (a check
    // that the file was not renamed).
    let (_reserved, seq) = rest.split_at_mut(3);
    seq.copy_from_slice(&(sequence as u32).to_le_bytes());
    h
}

/// Builds the entries of one group into a buffer: each is begun, its
/// payload appended, and finished (length and CRC filled in).
#[derive(Debug, Default)]
pub(crate) struct EntryWriter {
    buf: Vec<u8>,
    open: Option<usize>,
}

impl EntryWriter {
    /// Starts an entry of `kind` for the partition at `path`; what is
    /// appended to [`EntryWriter::payload`] until [`EntryWriter::finish`]
    /// is its payload.
    pub(crate) fn begin(&mut self, kind: EntryKind, path: &str) {
        debug_assert!(self.open.is_none(), "an entry is open");
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; ENTRY_PREFIX_LEN]);
        self.buf.push(kind as u8);
        let len = path.len().min(MAX_PATH_LEN);
        self.buf.extend_from_slice(&(len as u16).to_le_bytes());
        self.buf
            .extend_from_slice(path.as_bytes().get(..len).unwrap_or_default());
        self.open = Some(start);
    }

    /// The buffer to append the open entry's payload to.
    pub(crate) fn payload(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Fills in the open entry's length and CRC.
    pub(crate) fn finish(&mut self) {
        let Some(start) = self.open.take() else {
            return;
        };
        let covered = self.buf.get(start + ENTRY_PREFIX_LEN..).unwrap_or_default();
        let length = covered.len() as u32;
        let crc = crc32c::crc32c(covered);
        if let Some(prefix) = self.buf.get_mut(start..start + ENTRY_PREFIX_LEN) {
            let (len_bytes, crc_bytes) = prefix.split_at_mut(4);
            len_bytes.copy_from_slice(&length.to_le_bytes());
            crc_bytes.copy_from_slice(&crc.to_le_bytes());
        }
    }

    /// Bytes of the finished entries.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Empties the buffer for the next group; a buffer grown far past
    /// `keep` is released.
    pub(crate) fn clear(&mut self, keep: usize) {
        self.open = None;
        self.buf.clear();
        if self.buf.capacity() > 4 * keep {
            self.buf = Vec::new();
        }
    }
}

/// One entry read back.
#[derive(Debug)]
pub(crate) struct Entry<'a> {
    /// Position of the entry in its file.
    pub(crate) position: u64,
    pub(crate) kind: EntryKind,
    /// The partition's path relative to the log's root.
    pub(crate) path: &'a str,
    /// What follows the path: batches, for an append.
    pub(crate) payload: &'a [u8],
}

/// What a journal file holds.
#[derive(Debug)]
pub(crate) struct FileContents<'a> {
    /// Every entry that checked out, in order.
    pub(crate) entries: Vec<Entry<'a>>,
    /// Position and description of the first entry that did not, if any:
    /// the torn tail of a write that was never acknowledged, or damage.
    pub(crate) damage: Option<(u64, String)>,
}

/// Parses the bytes of journal file `sequence`: its header, then entries
/// until the end or the first that does not check out. A file shorter than
/// its header holds nothing (created, but its header never synced).
pub(crate) fn read_file(bytes: &[u8], sequence: u64) -> FileContents<'_> {
    let mut contents = FileContents {
        entries: Vec::new(),
        damage: None,
    };
    let Some(header) = bytes.get(..JOURNAL_HEADER_LEN as usize) else {
        return contents;
    };
    if header != header_bytes(sequence) {
        contents.damage = Some((0, "bad journal file header".into()));
        return contents;
    }
    let mut position = JOURNAL_HEADER_LEN as usize;
    while position < bytes.len() {
        match read_entry(bytes, position) {
            Ok((entry, next)) => {
                contents.entries.push(entry);
                position = next;
            }
            Err(reason) => {
                contents.damage = Some((position as u64, reason));
                break;
            }
        }
    }
    contents
}

/// The entry at `position`, and where the next one starts.
fn read_entry(bytes: &[u8], position: usize) -> Result<(Entry<'_>, usize), String> {
    let rest = bytes.get(position..).unwrap_or_default();
    let mut r = Reader::new(rest);
    let length = r
        .u32()
        .map_err(|_| format!("{} bytes left, too few for an entry", rest.len()))?
        as usize;
    let crc = r.u32().map_err(|e| e.to_string())?;
    let covered = rest
        .get(ENTRY_PREFIX_LEN..ENTRY_PREFIX_LEN + length)
        .ok_or_else(|| {
            format!(
                "entry of {length} bytes but only {} bytes left",
                rest.len().saturating_sub(ENTRY_PREFIX_LEN)
            )
        })?;
    if crc32c::crc32c(covered) != crc {
        return Err("entry checksum mismatch".into());
    }
    let mut r = Reader::new(covered);
    let kind = match r.u8().map_err(|e| e.to_string())? {
        1 => EntryKind::Append,
        2 => EntryKind::Forget,
        other => return Err(format!("unknown entry kind {other}")),
    };
    let path_len = usize::from(r.u16().map_err(|e| e.to_string())?);
    let path = r.bytes(path_len).map_err(|e| e.to_string())?;
    let path = std::str::from_utf8(path).map_err(|_| "entry path is not UTF-8".to_string())?;
    let payload = covered.get(r.position()..).unwrap_or_default();
    Ok((
        Entry {
            position: position as u64,
            kind,
            path,
            payload,
        },
        position + ENTRY_PREFIX_LEN + length,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

    use super::*;

    fn file_with(entries: &[(EntryKind, &str, &[u8])]) -> Vec<u8> {
        let mut w = EntryWriter::default();
        for (kind, path, payload) in entries {
            w.begin(*kind, path);
            w.payload().extend_from_slice(payload);
            w.finish();
        }
        let mut bytes = header_bytes(7).to_vec();
        bytes.extend_from_slice(w.bytes());
        bytes
    }

    #[test]
    fn entries_read_back() {
        let bytes = file_with(&[
            (EntryKind::Append, "streams/a/0", b"batches"),
            (EntryKind::Forget, "streams/b/1", b""),
            (EntryKind::Append, "", b"x"),
        ]);
        let contents = read_file(&bytes, 7);
        assert!(contents.damage.is_none());
        let read: Vec<_> = contents
            .entries
            .iter()
            .map(|e| (e.kind, e.path, e.payload))
            .collect();
        assert_eq!(
            read,
            [
                (EntryKind::Append, "streams/a/0", &b"batches"[..]),
                (EntryKind::Forget, "streams/b/1", &b""[..]),
                (EntryKind::Append, "", &b"x"[..]),
            ]
        );
        assert_eq!(contents.entries[0].position, JOURNAL_HEADER_LEN);
    }

    #[test]
    fn a_cut_or_a_flipped_bit_ends_the_file_at_the_last_whole_entry() {
        let bytes = file_with(&[
            (EntryKind::Append, "p", b"first"),
            (EntryKind::Append, "p", b"second"),
        ]);
        let second = read_file(&bytes, 7).entries[1].position as usize;
        for cut in second..bytes.len() {
            let contents = read_file(&bytes[..cut], 7);
            assert_eq!(contents.entries.len(), 1, "cut at {cut}");
            if cut > second {
                assert_eq!(contents.damage.unwrap().0, second as u64);
            }
        }
        for byte in second..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[byte] ^= 1 << bit;
                let contents = read_file(&damaged, 7);
                assert_eq!(contents.entries.len(), 1, "bit {bit} of byte {byte}");
                assert!(contents.damage.is_some());
            }
        }
    }

    #[test]
    fn a_header_of_another_file_is_damage() {
        let bytes = file_with(&[(EntryKind::Append, "p", b"x")]);
        let contents = read_file(&bytes, 8);
        assert!(contents.entries.is_empty());
        assert_eq!(contents.damage.unwrap().0, 0);
        assert!(
            read_file(&bytes[..5], 7).damage.is_none(),
            "a header never written"
        );
    }

    #[test]
    fn names_parse() {
        assert_eq!(
            journal_path(Path::new("/j"), 3),
            Path::new("/j/00000000000000000003.journal")
        );
        assert_eq!(
            parse_journal_name(Path::new("/j/00000000000000000003.journal")),
            Some(3)
        );
        assert_eq!(parse_journal_name(Path::new("3.journal")), None);
        assert_eq!(
            parse_journal_name(Path::new("00000000000000000003.log")),
            None
        );
    }
}
