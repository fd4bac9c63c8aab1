//! Partitions on one log share its journal: one fsync covers concurrent
//! appends to many partitions, a power loss before any segment was synced
//! loses nothing acknowledged (the journal is replayed), full journal files
//! are checkpointed away, a torn journal tail is cut at every byte, damage
//! before the tail is refused, and a forgotten partition's records never
//! reach a partition made later at its path.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod fixture;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fixture::{append, read_all, runtime, value};
use intake_log::{
    Error, Filesystem, FsyncPolicy, Log, LogConfig, MemoryFilesystem, Partition, PartitionConfig,
};

fn dir(p: usize) -> PathBuf {
    Path::new("/data/streams").join(format!("s{p}")).join("0")
}

fn open(mem: &MemoryFilesystem, partitions: usize, config: LogConfig) -> (Log, Vec<Partition>) {
    let fs: Arc<dyn Filesystem> = Arc::new(mem.clone());
    let log = Log::open(fs, "/data", config).unwrap();
    let parts = (0..partitions)
        .map(|p| {
            log.open_partition(dir(p), PartitionConfig::default())
                .unwrap()
        })
        .collect();
    log.replay().unwrap();
    (log, parts)
}

fn values(p: &Partition) -> Vec<Vec<u8>> {
    read_all(p).iter().map(|r| r.value.to_vec()).collect()
}

fn journal_files(mem: &MemoryFilesystem) -> Vec<PathBuf> {
    let mut files = mem.list_dir(Path::new("/data/journal")).unwrap();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_fsync_covers_appends_to_many_partitions() {
    let mem = MemoryFilesystem::new();
    let (_log, parts) = open(&mem, 64, LogConfig::default());
    let parts: Vec<_> = parts.into_iter().map(Arc::new).collect();
    mem.set_sync_delay(Duration::from_millis(20));
    let before = mem.sync_count();
    let tasks: Vec<_> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let p = Arc::clone(p);
            tokio::spawn(async move { append(&p, &[value(i as u64, 100)]).await.unwrap() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 0);
    }
    let syncs = mem.sync_count() - before;
    assert!(
        syncs < 16,
        "64 appends to 64 partitions took {syncs} fsyncs; they should share a few"
    );
}

#[test]
fn acknowledged_records_survive_power_loss_through_the_journal() {
    let rt = runtime();
    let mem = MemoryFilesystem::new();
    let (_log, parts) = open(&mem, 3, LogConfig::default());
    let mut want = vec![Vec::new(); 3];
    for round in 0..20u64 {
        for (p, partition) in parts.iter().enumerate() {
            let v = value(round * 10 + p as u64, 50 + round as usize);
            rt.block_on(append(partition, std::slice::from_ref(&v)))
                .unwrap();
            want[p].push(v);
        }
    }
    // No segment was synced (no roll, no checkpoint): only the journal was.
    let crashed = mem.crash();
    drop(parts);
    let (_log, parts) = open(&crashed, 3, LogConfig::default());
    for (p, partition) in parts.iter().enumerate() {
        assert_eq!(values(partition), want[p], "partition {p}");
    }
    assert_eq!(
        journal_files(&crashed).len(),
        1,
        "the replayed files are gone, a new one started"
    );
    // Appends continue where the replay ended.
    assert_eq!(rt.block_on(append(&parts[1], &[value(99, 5)])).unwrap(), 20);
}

#[test]
fn full_journal_files_are_checkpointed_away() {
    let rt = runtime();
    let mem = MemoryFilesystem::new();
    let config = LogConfig {
        journal_file_bytes: 4096,
        ..LogConfig::default()
    };
    let (_log, parts) = open(&mem, 2, config.clone());
    let mut want = vec![Vec::new(); 2];
    for i in 0..400u64 {
        let p = (i % 2) as usize;
        let v = value(i, 200);
        rt.block_on(append(&parts[p], std::slice::from_ref(&v)))
            .unwrap();
        want[p].push(v);
    }
    // 80 KiB went through 4 KiB files; the checkpoint thread keeps up.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while journal_files(&mem).len() > 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            journal_files(&mem)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let crashed = mem.crash();
    drop(parts);
    let (_log, parts) = open(&crashed, 2, config);
    for (p, partition) in parts.iter().enumerate() {
        assert_eq!(values(partition), want[p], "partition {p}");
    }
}

#[test]
fn a_clean_shutdown_leaves_nothing_to_replay() {
    let rt = runtime();
    let mem = MemoryFilesystem::new();
    let (log, parts) = open(&mem, 2, LogConfig::default());
    for p in &parts {
        rt.block_on(append(p, &[value(1, 10)])).unwrap();
        rt.block_on(p.close()).unwrap();
    }
    rt.block_on(log.checkpoint()).unwrap();
    let files = journal_files(&mem);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(
        mem.contents(&files[0]).unwrap().len(),
        16,
        "the one file left holds its header only"
    );
    let (log, parts) = open(&mem, 2, LogConfig::default());
    assert_eq!(
        log.replay().unwrap().batches,
        0,
        "a second replay finds nothing"
    );
    assert_eq!(parts[0].next_offset(), 1);
}

/// Two partitions with fsync = never, `rounds` appends to each, then a
/// power loss: no segment was synced (the partitions were still open), the
/// journal holds everything. Returns what the disk held, the journal's
/// path and bytes, and where its last entry starts.
fn unsynced_journal(rounds: u64) -> (MemoryFilesystem, PathBuf, Vec<u8>, usize) {
    let rt = runtime();
    let mem = MemoryFilesystem::new();
    let fs: Arc<dyn Filesystem> = Arc::new(mem.clone());
    let log = Log::open(fs, "/data", LogConfig::default()).unwrap();
    let never = PartitionConfig {
        fsync: FsyncPolicy::Never,
        ..PartitionConfig::default()
    };
    let parts: Vec<_> = (0..2)
        .map(|p| log.open_partition(dir(p), never.clone()).unwrap())
        .collect();
    log.replay().unwrap();
    let path = journal_files(&mem).pop().unwrap();
    let mut last_entry = 0;
    for i in 0..rounds {
        for p in &parts {
            last_entry = mem.contents(&path).unwrap().len();
            rt.block_on(append(p, &[value(i, 30)])).unwrap();
        }
    }
    let bytes = mem.contents(&path).unwrap();
    let disk = mem.crash();
    assert_eq!(
        disk.contents(&path).unwrap().len(),
        16,
        "only the header was synced"
    );
    (disk, path, bytes, last_entry)
}

/// Opens two partitions on `disk`'s log; the replay's outcome.
fn replay_on(
    disk: &MemoryFilesystem,
) -> (intake_log::Result<intake_log::ReplayReport>, Vec<Partition>) {
    let fs: Arc<dyn Filesystem> = Arc::new(disk.clone());
    let log = Log::open(fs, "/data", LogConfig::default()).unwrap();
    let parts = (0..2)
        .map(|p| {
            log.open_partition(dir(p), PartitionConfig::default())
                .unwrap()
        })
        .collect();
    (log.replay(), parts)
}

#[test]
fn a_torn_journal_tail_is_cut_at_every_byte() {
    let (disk, path, bytes, last_entry) = unsynced_journal(3);
    for cut in last_entry..bytes.len() {
        // The journal kept `cut` bytes of what was written.
        let crashed = disk.crash();
        crashed.set_contents(&path, bytes[..cut].to_vec());
        let (replayed, parts) = replay_on(&crashed);
        assert_eq!(replayed.unwrap().batches, 5, "cut at {cut}");
        assert_eq!(parts[0].next_offset(), 3, "cut at {cut}");
        assert_eq!(
            parts[1].next_offset(),
            2,
            "cut at {cut}: the torn entry is dropped"
        );
        assert_eq!(values(&parts[1])[1], value(1, 30));
        let rt = runtime();
        assert_eq!(rt.block_on(append(&parts[1], &[value(7, 5)])).unwrap(), 2);
    }
    // Whole, it replays whole.
    let crashed = disk.crash();
    crashed.set_contents(&path, bytes);
    let (replayed, parts) = replay_on(&crashed);
    assert_eq!(replayed.unwrap().batches, 6);
    assert_eq!(parts[1].next_offset(), 3);
}

#[test]
fn damage_before_the_tail_of_the_last_file_is_refused() {
    let (disk, path, mut bytes, last_entry) = unsynced_journal(3);
    // A flipped bit in the fifth of six entries.
    bytes[last_entry - 5] ^= 0x10;
    // In the last file it may be a torn tail: what precedes it replays.
    let crashed = disk.crash();
    crashed.set_contents(&path, bytes.clone());
    let (replayed, parts) = replay_on(&crashed);
    assert_eq!(replayed.unwrap().batches, 4);
    assert_eq!(parts[0].next_offset(), 2);
    // With a newer file after it, it was once synced whole: refused,
    // naming the file and the position.
    let crashed = disk.crash();
    crashed.set_contents(&path, bytes);
    let newer = Path::new("/data/journal/00000000000000000099.journal");
    let file = crashed.create_new(newer).unwrap();
    let mut header = b"INTKJRNL\x01\x00\x00\x00".to_vec();
    header.extend_from_slice(&99u32.to_le_bytes());
    file.write_all_at(&header, 0).unwrap();
    file.sync_data().unwrap();
    crashed.sync_dir(Path::new("/data/journal")).unwrap();
    let (replayed, _) = replay_on(&crashed);
    let err = replayed.unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("checksum"), "{message}");
}

#[test]
fn a_forgotten_partition_never_gives_its_records_to_a_new_one() {
    let rt = runtime();
    let mem = MemoryFilesystem::new();
    let (log, mut parts) = open(&mem, 1, LogConfig::default());
    for i in 0..5 {
        rt.block_on(append(&parts[0], &[value(i, 40)])).unwrap();
    }
    // The stream is deleted and made again under the same name.
    rt.block_on(parts[0].forget()).unwrap();
    for file in mem.list_dir(&dir(0)).unwrap() {
        mem.remove_file(&file).unwrap();
    }
    mem.sync_dir(&dir(0)).unwrap();
    parts[0] = log
        .open_partition(dir(0), PartitionConfig::default())
        .unwrap();
    rt.block_on(append(&parts[0], &[b"new".to_vec()])).unwrap();
    let crashed = mem.crash();
    drop(parts);
    drop(log);
    let (_log, parts) = open(&crashed, 1, LogConfig::default());
    assert_eq!(values(&parts[0]), [b"new".to_vec()]);
}

/// A partition's tail is written to its segment about a second after it
/// began, or at once when it fills up; a tail that filled up does not make
/// the next one due early (that cost many small segment writes under load).
#[test]
fn a_tail_is_written_a_second_after_it_began_not_earlier() {
    let rt = runtime();
    let mem = MemoryFilesystem::new();
    let (_log, parts) = open(&mem, 1, LogConfig::default());
    let segment = dir(0).join(format!("{:020}.log", 0));
    let segment_len = || mem.contents(&segment).map_or(0, |c| c.len());
    let began = std::time::Instant::now();
    rt.block_on(append(&parts[0], &[value(0, 1000)])).unwrap();
    // Below the direct-write size each, together past the flush size.
    for i in 1..=7 {
        rt.block_on(append(&parts[0], &[value(i, 10_000)])).unwrap();
    }
    // The commit thread writes a full tail just after it answers.
    let deadline = began + Duration::from_millis(400);
    while segment_len() <= 64 * 1024 {
        assert!(
            std::time::Instant::now() < deadline,
            "the full tail was never written"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let filled = segment_len();
    std::thread::sleep(Duration::from_millis(500).saturating_sub(began.elapsed()));
    let second = std::time::Instant::now();
    rt.block_on(append(&parts[0], &[value(8, 1000)])).unwrap();
    std::thread::sleep(Duration::from_millis(1250).saturating_sub(began.elapsed()));
    assert!(
        second.elapsed() < Duration::from_millis(950),
        "the test thread slept too long to judge"
    );
    assert_eq!(
        segment_len(),
        filled,
        "the second tail began 0.5 s after the first: not due yet"
    );
    let deadline = second + Duration::from_secs(10);
    while segment_len() == filled {
        assert!(
            std::time::Instant::now() < deadline,
            "the second tail was never written"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(second.elapsed() >= Duration::from_millis(950));
    assert_eq!(values(&parts[0]).len(), 9);
}
