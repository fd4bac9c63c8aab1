//! Concurrent appends share writes and fsyncs; every one still gets its own
//! dense offsets.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod fixture;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fixture::{read_all, value};
use intake_log::{
    EncodedBatch, Filesystem, Log, LogConfig, MemoryFilesystem, NewRecord, Partition,
    PartitionConfig,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_fsyncs() {
    let mem = MemoryFilesystem::new();
    let fs: Arc<dyn Filesystem> = Arc::new(mem.clone());
    let p = Arc::new(Partition::open(fs, Path::new("/d/0"), PartitionConfig::default()).unwrap());
    mem.set_sync_delay(Duration::from_millis(20));
    let syncs_before = mem.sync_count();
    let mut tasks = Vec::new();
    for i in 0..64u64 {
        let p = Arc::clone(&p);
        tasks.push(tokio::spawn(async move {
            let batch = EncodedBatch::encode(&[
                NewRecord::new(0, value(i, 50)),
                NewRecord::new(0, value(i, 51)),
            ])
            .unwrap();
            (i, p.append(batch).await.unwrap())
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let syncs = mem.sync_count() - syncs_before;
    assert!(syncs <= 8, "64 concurrent appends took {syncs} fsyncs");

    // Offsets are dense, two per append, and each append's records are its own.
    let mut firsts: Vec<u64> = results.iter().map(|(_, a)| a.first_offset).collect();
    firsts.sort_unstable();
    assert_eq!(firsts, (0..64).map(|i| i * 2).collect::<Vec<_>>());
    let all = read_all(&p);
    for (i, appended) in results {
        assert_eq!(appended.last_offset, appended.first_offset + 1);
        assert_eq!(all[appended.first_offset as usize].value, value(i, 50));
        assert_eq!(all[appended.last_offset as usize].value, value(i, 51));
    }
}

#[tokio::test]
async fn subscribers_hear_of_new_records() {
    let fs: Arc<dyn Filesystem> = Arc::new(MemoryFilesystem::new());
    let p = Partition::open(fs, Path::new("/d/0"), PartitionConfig::default()).unwrap();
    let mut watch = p.subscribe();
    assert_eq!(*watch.borrow_and_update(), 0);
    let batch = EncodedBatch::encode(&[NewRecord::new(0, "a"), NewRecord::new(0, "b")]).unwrap();
    p.append(batch).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), watch.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*watch.borrow(), 2);
}

#[tokio::test]
async fn queue_limit_refuses_instead_of_growing() {
    let mem = MemoryFilesystem::new();
    let fs: Arc<dyn Filesystem> = Arc::new(mem.clone());
    let config = PartitionConfig {
        max_pending_bytes: 1000,
        ..PartitionConfig::default()
    };
    let p = Arc::new(Partition::open(fs, Path::new("/d/0"), config).unwrap());
    mem.set_sync_delay(Duration::from_millis(50));
    let mut tasks = Vec::new();
    for i in 0..20u64 {
        let p = Arc::clone(&p);
        tasks.push(tokio::spawn(async move {
            let batch = EncodedBatch::encode(&[NewRecord::new(0, value(i, 200))]).unwrap();
            p.append(batch).await
        }));
    }
    let mut full = 0;
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => {
                assert!(e.is_retryable(), "{e}");
                assert!(matches!(e, intake_log::Error::QueueFull { .. }), "{e}");
                full += 1;
            }
        }
    }
    assert!(full > 0, "the limit never refused anything");
    assert_eq!(p.next_offset(), ok);
}

#[tokio::test]
async fn close_persists_and_refuses_later_appends() {
    let mem = MemoryFilesystem::new();
    let fs: Arc<dyn Filesystem> = Arc::new(mem.clone());
    let config = PartitionConfig {
        fsync: intake_log::FsyncPolicy::Never,
        ..PartitionConfig::default()
    };
    let p = Partition::open(Arc::clone(&fs), Path::new("/d/0"), config.clone()).unwrap();
    p.append(EncodedBatch::encode(&[NewRecord::new(0, "kept")]).unwrap())
        .await
        .unwrap();
    p.close().await.unwrap();
    let err = p
        .append(EncodedBatch::encode(&[NewRecord::new(0, "late")]).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, intake_log::Error::Closed { .. }), "{err}");
    // Even with fsync = never, close synced: a power loss keeps the record.
    let after = mem.crash();
    let p = Partition::open(Arc::new(after), Path::new("/d/0"), config).unwrap();
    assert_eq!(p.next_offset(), 1);
}

#[tokio::test]
async fn light_load_never_waits_for_company() {
    // A huge group-commit delay must not slow sequential appends: a lone
    // append is never held back hoping for others.
    let fs: Arc<dyn Filesystem> = Arc::new(MemoryFilesystem::new());
    let config = LogConfig {
        group_commit_delay: Duration::from_secs(1),
        ..LogConfig::default()
    };
    let log = Log::open(fs, Path::new("/d"), config).unwrap();
    let p = log
        .open_partition(Path::new("/d/0"), PartitionConfig::default())
        .unwrap();
    log.replay().unwrap();
    let started = std::time::Instant::now();
    for i in 0..20u64 {
        p.append(EncodedBatch::encode(&[NewRecord::new(0, value(i, 10))]).unwrap())
            .await
            .unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a sequential append waited: {:?}",
        started.elapsed()
    );
}
