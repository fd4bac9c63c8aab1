//! A failed fsync poisons the partition until restart; a full disk refuses
//! the append, keeps nothing of it, and lets writes resume when space returns.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod fixture;

use std::path::Path;
use std::sync::Arc;

use fixture::{append, read_all, runtime, value};
use intake_log::{Error, Filesystem, MemoryFilesystem, Partition, PartitionConfig};

#[test]
fn failed_fsync_poisons_until_restart() {
    let rt = runtime();
    let mem = MemoryFilesystem::new();
    let fs: Arc<dyn Filesystem> = Arc::new(mem.clone());
    let dir = Path::new("/d/0");
    let p = Partition::open(Arc::clone(&fs), dir, PartitionConfig::default()).unwrap();
    rt.block_on(append(&p, &[value(0, 10)])).unwrap();

    mem.fail_syncs(true);
    let err = rt.block_on(append(&p, &[value(1, 10)])).unwrap_err();
    assert!(matches!(err, Error::Poisoned { .. }), "{err}");
    assert!(err.to_string().contains("injected fsync failure"), "{err}");
    assert!(p.poisoned().is_some());

    // The disk recovers, but the partition stays poisoned: the page cache
    // may no longer match the disk.
    mem.fail_syncs(false);
    let err = rt.block_on(append(&p, &[value(2, 10)])).unwrap_err();
    assert!(matches!(err, Error::Poisoned { .. }), "{err}");
    assert!(!err.is_retryable());
    assert_eq!(
        p.next_offset(),
        1,
        "nothing after the failure became visible"
    );
    // Reads still work.
    assert_eq!(read_all(&p).len(), 1);

    drop(p);
    let p = Partition::open(fs, dir, PartitionConfig::default()).unwrap();
    assert!(p.poisoned().is_none());
    let next = rt.block_on(append(&p, &[value(3, 10)])).unwrap();
    assert!(next >= 1);
}

#[test]
fn disk_full_refuses_then_resumes() {
    let rt = runtime();
    let mem = MemoryFilesystem::new();
    let fs: Arc<dyn Filesystem> = Arc::new(mem.clone());
    let dir = Path::new("/d/0");
    let p = Partition::open(Arc::clone(&fs), dir, PartitionConfig::default()).unwrap();
    rt.block_on(append(&p, &[value(0, 100)])).unwrap();
    let segment = dir.join("00000000000000000000.log");
    let size = mem.contents(&segment).unwrap().len() as u64;

    mem.set_capacity(size + 50);
    let err = rt.block_on(append(&p, &[value(1, 100)])).unwrap_err();
    assert!(matches!(err, Error::NoSpace { .. }), "{err}");
    assert!(err.is_retryable());
    assert_eq!(
        mem.contents(&segment).unwrap().len() as u64,
        size,
        "partial write undone"
    );
    assert!(p.poisoned().is_none());

    mem.set_capacity(u64::MAX);
    let first = rt.block_on(append(&p, &[value(1, 100)])).unwrap();
    assert_eq!(first, 1, "no offset was burnt by the refused append");
    let all = read_all(&p);
    assert_eq!(
        all.iter().map(|r| r.value.to_vec()).collect::<Vec<_>>(),
        vec![value(0, 100), value(1, 100)]
    );

    // And after a power loss everything acknowledged is there.
    drop(p);
    let after = mem.crash();
    let p = Partition::open(Arc::new(after), dir, PartitionConfig::default()).unwrap();
    assert_eq!(read_all(&p).len(), 2);
}
