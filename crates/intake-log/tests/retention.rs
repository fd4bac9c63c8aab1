//! Retention deletes whole sealed segments, oldest first, by size or age,
//! never the active one and never past what a consumer still needs.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod fixture;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fixture::{append, read_all, runtime, small_segments, value};
use intake_log::{Error, Filesystem, MemoryFilesystem, Partition, Retention};

fn filled() -> (MemoryFilesystem, Partition) {
    let mem = MemoryFilesystem::new();
    let fs: Arc<dyn Filesystem> = Arc::new(mem.clone());
    let p = Partition::open(fs, Path::new("/d/0"), small_segments(4096)).unwrap();
    let rt = runtime();
    for i in 0..100 {
        rt.block_on(append(&p, &[value(i, 300)])).unwrap();
    }
    (mem, p)
}

#[test]
fn by_size_deletes_oldest_whole_segments() {
    let (_, p) = filled();
    let before = p.segment_count();
    assert!(before > 5);
    let report = p
        .enforce_retention(
            &Retention {
                max_bytes: Some(10_000),
                max_age: None,
            },
            None,
            SystemTime::now(),
        )
        .unwrap();
    assert!(report.segments > 0);
    assert!(p.size_bytes() <= 10_000);
    assert!(p.start_offset() > 0);
    assert_eq!(report.start_offset, p.start_offset());
    // What is left reads back intact, from the new start.
    let all = read_all(&p);
    assert_eq!(all.first().unwrap().offset, p.start_offset());
    assert_eq!(all.last().unwrap().offset, 99);
    // Reading before the start says so.
    let err = p.read(0, 1, 100).unwrap_err();
    assert!(
        matches!(err, Error::OffsetOutOfRange { requested: 0, .. }),
        "{err}"
    );
}

#[test]
fn by_age_keeps_young_segments() {
    let (_, p) = filled();
    let retention = Retention {
        max_bytes: None,
        max_age: Some(Duration::from_secs(60)),
    };
    let report = p
        .enforce_retention(&retention, None, SystemTime::now())
        .unwrap();
    assert_eq!(report.segments, 0);
    let later = SystemTime::now() + Duration::from_secs(61);
    p.enforce_retention(&retention, None, later).unwrap();
    assert_eq!(p.segment_count(), 1, "only the active segment is left");
    assert_eq!(p.next_offset(), 100);
}

#[test]
fn never_deletes_what_a_consumer_still_needs() {
    let (_, p) = filled();
    let retention = Retention {
        max_bytes: Some(0),
        max_age: None,
    };
    p.enforce_retention(&retention, Some(10), SystemTime::now())
        .unwrap();
    assert!(p.start_offset() <= 10, "offset 10 is still needed");
    let read = p.read(10, 1, 1000).unwrap();
    assert_eq!(read.records[0].offset, 10);
}

#[test]
fn deleted_segments_stay_deleted_after_restart() {
    let (mem, p) = filled();
    p.enforce_retention(
        &Retention {
            max_bytes: Some(5000),
            max_age: None,
        },
        None,
        SystemTime::now(),
    )
    .unwrap();
    let start = p.start_offset();
    drop(p);
    let p = Partition::open(
        Arc::new(mem.crash()),
        Path::new("/d/0"),
        small_segments(4096),
    )
    .unwrap();
    assert_eq!(p.start_offset(), start);
    assert_eq!(p.next_offset(), 100);
}
