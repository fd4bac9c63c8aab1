//! Damage outside the active segment's tail is refused, naming the file and
//! the byte position, never silently skipped.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod fixture;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fixture::{append, open, read_all, runtime, small_segments, value};
use intake_log::{Error, Filesystem, Partition, PartitionConfig, StdFilesystem};

fn config() -> PartitionConfig {
    small_segments(4096)
}

/// Fills a partition over several segments; returns the sorted segment paths.
fn build(dir: &Path) -> Vec<PathBuf> {
    let fs: Arc<dyn Filesystem> = Arc::new(StdFilesystem);
    let rt = runtime();
    let p = open(&fs, dir, &config());
    rt.block_on(async {
        for i in 0..60 {
            append(&p, &[value(i, 200)]).await.unwrap();
        }
        p.close().await.unwrap();
    });
    let mut segments: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segments.sort();
    assert!(
        segments.len() >= 3,
        "test needs several segments, got {}",
        segments.len()
    );
    segments
}

fn flip(path: &Path, at: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at as usize] ^= 0x10;
    std::fs::write(path, bytes).unwrap();
}

fn expect_corrupt(
    result: Result<impl std::fmt::Debug, Error>,
    file: &Path,
    at: Option<u64>,
) -> String {
    match result {
        Err(Error::Corrupt {
            path,
            position,
            reason,
        }) => {
            assert_eq!(path, file);
            if let Some(at) = at {
                assert_eq!(position, at);
            }
            let message = Error::Corrupt {
                path,
                position,
                reason,
            }
            .to_string();
            assert!(message.contains(&file.display().to_string()), "{message}");
            assert!(message.contains(&format!("byte {position}")), "{message}");
            message
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn damage_near_the_end_of_a_sealed_segment_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let segments = build(dir.path());
    let first = &segments[0];
    let len = std::fs::metadata(first).unwrap().len();
    flip(first, len - 3);
    expect_corrupt(
        Partition::open(Arc::new(StdFilesystem), dir.path(), config()),
        first,
        None,
    );
}

#[test]
fn damage_anywhere_in_a_sealed_segment_is_refused_when_verifying_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let segments = build(dir.path());
    let first = &segments[0];
    flip(first, 16 + 50); // inside the first batch, which starts at byte 16
    let strict = PartitionConfig {
        verify_on_open: true,
        ..config()
    };
    expect_corrupt(
        Partition::open(Arc::new(StdFilesystem), dir.path(), strict),
        first,
        Some(16),
    );
}

#[test]
fn damage_inside_an_indexed_sealed_segment_is_refused_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let segments = build(dir.path());
    let first = &segments[0];
    flip(first, 16 + 50);
    let fs: Arc<dyn Filesystem> = Arc::new(StdFilesystem);
    let p = open(&fs, dir.path(), &config());
    expect_corrupt(p.read(0, 10, 1 << 20), first, Some(16));
    // Records elsewhere are still served.
    let later = p.read(p.next_offset() - 1, 10, 1 << 20).unwrap();
    assert_eq!(later.records.len(), 1);
}

#[test]
fn a_truncated_sealed_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let segments = build(dir.path());
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segments[1])
        .unwrap();
    let len = file.metadata().unwrap().len();
    file.set_len(len - 1).unwrap();
    expect_corrupt(
        Partition::open(Arc::new(StdFilesystem), dir.path(), config()),
        &segments[1],
        None,
    );
}

#[test]
fn a_missing_segment_in_the_middle_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let segments = build(dir.path());
    std::fs::remove_file(&segments[1]).unwrap();
    let message = expect_corrupt(
        Partition::open(Arc::new(StdFilesystem), dir.path(), config()),
        &segments[2],
        Some(0),
    );
    assert!(message.contains("ends at offset"), "{message}");
}

#[test]
fn a_damaged_index_is_rebuilt_and_reads_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let segments = build(dir.path());
    let index = segments[0].with_extension("index");
    assert!(index.exists(), "sealed segments have an index");
    std::fs::write(&index, b"garbage").unwrap();
    let fs: Arc<dyn Filesystem> = Arc::new(StdFilesystem);
    let p = open(&fs, dir.path(), &config());
    let all = read_all(&p);
    assert_eq!(all.len(), 60);
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.offset, i as u64);
        assert_eq!(r.value, value(i as u64, 200));
    }
    assert_ne!(std::fs::read(&index).unwrap(), b"garbage");
}
