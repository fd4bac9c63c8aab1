//! A torn or corrupt last batch of the active segment is cut off at open,
//! and the partition continues from the last complete batch.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod fixture;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fixture::{append, open, read_all, runtime, value};
use intake_log::{Error, Filesystem, PartitionConfig, PersistMode, RecoveryMode, StdFilesystem};

/// Writes four batches, returns the segment path, its bytes, and where the
/// last batch starts.
fn build(dir: &Path) -> (PathBuf, Vec<u8>, u64) {
    let fs: Arc<dyn Filesystem> = Arc::new(StdFilesystem);
    let rt = runtime();
    let p = open(&fs, dir, &PartitionConfig::default());
    rt.block_on(async {
        append(&p, &[value(0, 40), value(1, 3)]).await.unwrap();
        append(&p, &[value(2, 100)]).await.unwrap();
        append(&p, &[value(3, 7), value(4, 8), value(5, 9)])
            .await
            .unwrap();
        // Written to the segment (appends wait in the partition's tail).
        p.persist(PersistMode::SyncAll).await.unwrap();
    });
    let segment = dir.join("00000000000000000000.log");
    let before_last = std::fs::metadata(&segment).unwrap().len();
    rt.block_on(async {
        append(&p, &[value(6, 30), value(7, 31)]).await.unwrap();
        p.close().await.unwrap();
    });
    let bytes = std::fs::read(&segment).unwrap();
    (segment, bytes, before_last)
}

/// Opens a copy of the partition whose segment holds `bytes`, and checks it
/// recovered to the six records before the last batch and accepts appends.
fn assert_recovers(bytes: &[u8], last_batch_start: u64, what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let pdir = dir.path().join("p");
    std::fs::create_dir(&pdir).unwrap();
    std::fs::write(pdir.join("00000000000000000000.log"), bytes).unwrap();
    let fs: Arc<dyn Filesystem> = Arc::new(StdFilesystem);
    let p = open(&fs, &pdir, &PartitionConfig::default());
    assert_eq!(p.next_offset(), 6, "{what}");
    let len = std::fs::metadata(pdir.join("00000000000000000000.log"))
        .unwrap()
        .len();
    assert_eq!(
        len, last_batch_start,
        "{what}: file not truncated to the last whole batch"
    );
    let records = read_all(&p);
    let values: Vec<_> = records.iter().map(|r| r.value.to_vec()).collect();
    let want: Vec<_> = [(0, 40), (1, 3), (2, 100), (3, 7), (4, 8), (5, 9)]
        .iter()
        .map(|&(i, n)| value(i, n))
        .collect();
    assert_eq!(values, want, "{what}");
    let rt = runtime();
    let first = rt.block_on(append(&p, &[value(99, 5)])).unwrap();
    assert_eq!(first, 6, "{what}: appends continue at the recovered end");
    assert_eq!(
        p.read(6, 10, 1 << 20).unwrap().records[0].value,
        value(99, 5)
    );
}

#[test]
fn truncation_at_every_byte_of_the_last_batch_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes, last) = build(dir.path());
    for cut in last..bytes.len() as u64 {
        assert_recovers(&bytes[..cut as usize], last, &format!("cut at {cut}"));
    }
}

#[test]
fn every_flipped_bit_of_the_last_batch_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes, last) = build(dir.path());
    for bit in (last as usize * 8)..bytes.len() * 8 {
        let mut damaged = bytes.clone();
        damaged[bit / 8] ^= 1 << (bit % 8);
        assert_recovers(&damaged, last, &format!("bit {bit} flipped"));
    }
}

#[test]
fn garbage_appended_after_the_last_batch_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut bytes, _) = build(dir.path());
    let whole = bytes.len() as u64;
    bytes.extend_from_slice(&[0u8; 100]); // preallocated zeros
    let pdir = tempfile::tempdir().unwrap();
    std::fs::write(pdir.path().join("00000000000000000000.log"), &bytes).unwrap();
    let fs: Arc<dyn Filesystem> = Arc::new(StdFilesystem);
    let p = open(&fs, pdir.path(), &PartitionConfig::default());
    assert_eq!(p.next_offset(), 8);
    assert_eq!(
        std::fs::metadata(pdir.path().join("00000000000000000000.log"))
            .unwrap()
            .len(),
        whole
    );
}

#[test]
fn absolute_consistency_refuses_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes, last) = build(dir.path());
    let pdir = tempfile::tempdir().unwrap();
    let segment = pdir.path().join("00000000000000000000.log");
    std::fs::write(&segment, &bytes[..last as usize + 10]).unwrap();
    let config = PartitionConfig {
        recovery: RecoveryMode::AbsoluteConsistency,
        ..PartitionConfig::default()
    };
    let err =
        intake_log::Partition::open(Arc::new(StdFilesystem), pdir.path(), config).unwrap_err();
    match err {
        Error::Corrupt { path, position, .. } => {
            assert_eq!(path, segment);
            assert_eq!(position, last);
        }
        other => panic!("expected Corrupt, got {other}"),
    }
    assert_eq!(
        std::fs::metadata(&segment).unwrap().len(),
        last + 10,
        "nothing truncated"
    );
}
