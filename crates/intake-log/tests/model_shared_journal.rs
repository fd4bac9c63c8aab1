//! Partitions sharing one log (one journal, one commit thread) against an
//! in-memory model: random appends to several partitions (concurrent ones
//! in one group), clean restarts, power losses, partitions forgotten and
//! made again at the same path, and checkpoints, on the fault-modelling file
//! system, with journal files and segments small enough to roll often.
//! Under fsync = always nothing acknowledged is lost, whether a group went
//! through the journal or (large enough) straight to its segments; under never each
//! partition keeps a prefix of what it was given; a forgotten partition's
//! records never reach the one made after it.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod fixture;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fixture::{append, read_all, runtime, small_segments, value};
use intake_log::{Filesystem, FsyncPolicy, Log, LogConfig, MemoryFilesystem, Partition};
use proptest::prelude::*;

const PARTITIONS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    /// One batch with records of these sizes to each listed partition,
    /// all at once (one group, if the commit thread takes them together).
    Append(Vec<(usize, Vec<usize>)>),
    /// Clean close of every partition and the log, and reopen.
    Restart,
    /// Power loss: only synced data survives, plus a torn prefix of the rest.
    Crash { keep_unsynced_per_mille: u16 },
    /// The partition is forgotten, its directory emptied, and a new one
    /// opened at its path.
    Recreate(usize),
    /// Every segment synced and the journal emptied.
    Checkpoint,
}

fn op() -> impl Strategy<Value = Op> {
    let batch = (0..PARTITIONS, proptest::collection::vec(1usize..300, 1..6));
    prop_oneof![
        8 => proptest::collection::vec(batch, 1..4).prop_map(Op::Append),
        1 => Just(Op::Restart),
        2 => (0u16..=1000).prop_map(|k| Op::Crash { keep_unsynced_per_mille: k }),
        1 => (0..PARTITIONS).prop_map(Op::Recreate),
        1 => Just(Op::Checkpoint),
    ]
}

fn dir(p: usize) -> PathBuf {
    Path::new("/data/streams/s").join(p.to_string())
}

/// The log and its partitions, opened and replayed.
fn open(mem: &MemoryFilesystem, fsync: FsyncPolicy, direct: usize) -> (Log, Vec<Partition>) {
    let fs: Arc<dyn Filesystem> = Arc::new(mem.clone());
    let config = LogConfig {
        journal_file_bytes: 4096,
        direct_write_bytes: direct,
        ..LogConfig::default()
    };
    let log = Log::open(fs, "/data", config).unwrap();
    let partitions = (0..PARTITIONS)
        .map(|p| {
            let config = intake_log::PartitionConfig {
                fsync,
                ..small_segments(4096)
            };
            log.open_partition(dir(p), config).unwrap()
        })
        .collect();
    log.replay().unwrap();
    (log, partitions)
}

/// A value naming its partition, incarnation and offset.
fn tagged(p: usize, incarnation: u32, offset: u64, len: usize) -> Vec<u8> {
    let mut v = format!("p{p}-i{incarnation}-").into_bytes();
    v.extend(value(offset, len));
    v
}

fn run(ops: Vec<Op>, fsync: FsyncPolicy, direct: usize) {
    let durable = fsync == FsyncPolicy::Always;
    let rt = runtime();
    let mut mem = MemoryFilesystem::new();
    let (mut log, mut parts) = open(&mem, fsync, direct);
    // The model: every record acknowledged, per partition, by offset; and
    // which incarnation of the partition's path they belong to.
    let mut model: Vec<Vec<Vec<u8>>> = vec![Vec::new(); PARTITIONS];
    let mut incarnation = [0u32; PARTITIONS];
    for op in ops {
        match op {
            Op::Append(batches) => {
                let mut expected = Vec::new();
                let appends: Vec<_> = batches
                    .iter()
                    .map(|(p, sizes)| {
                        // Offsets within one op follow the order of the
                        // batches given to the same partition.
                        let before: usize = expected
                            .iter()
                            .filter(|(q, _, _)| q == p)
                            .map(|(_, _, v): &(usize, u64, Vec<Vec<u8>>)| v.len())
                            .sum();
                        let next = (model[*p].len() + before) as u64;
                        let values: Vec<_> = sizes
                            .iter()
                            .enumerate()
                            .map(|(i, &n)| tagged(*p, incarnation[*p], next + i as u64, n))
                            .collect();
                        expected.push((*p, next, values.clone()));
                        (*p, values)
                    })
                    .collect();
                // Different partitions concurrently; one partition's
                // batches in order.
                let firsts = rt.block_on(async {
                    let mut per_partition: Vec<Vec<Vec<Vec<u8>>>> = vec![Vec::new(); PARTITIONS];
                    for (p, values) in &appends {
                        per_partition[*p].push(values.clone());
                    }
                    let tasks = per_partition.iter().enumerate().map(|(p, batches)| {
                        let partition = &parts[p];
                        async move {
                            let mut firsts = Vec::new();
                            for values in batches {
                                firsts.push(append(partition, values).await.unwrap());
                            }
                            firsts
                        }
                    });
                    futures::future::join_all(tasks).await
                });
                for (p, firsts) in firsts.iter().enumerate() {
                    let mine: Vec<_> = expected.iter().filter(|(q, _, _)| *q == p).collect();
                    assert_eq!(firsts.len(), mine.len());
                    for (first, (_, next, values)) in firsts.iter().zip(mine) {
                        assert_eq!(*first, *next, "partition {p}: offsets are dense");
                        model[p].extend(values.iter().cloned());
                    }
                }
            }
            Op::Restart => {
                for p in &parts {
                    rt.block_on(p.close()).unwrap();
                }
                rt.block_on(log.checkpoint()).unwrap();
                drop(parts);
                drop(log);
                (log, parts) = open(&mem, fsync, direct);
            }
            Op::Crash {
                keep_unsynced_per_mille,
            } => {
                let crashed =
                    mem.crash_with(|_, extra| extra * keep_unsynced_per_mille as usize / 1000);
                drop(parts);
                drop(log);
                mem = crashed;
                (log, parts) = open(&mem, fsync, direct);
                for (p, partition) in parts.iter().enumerate() {
                    let survived = partition.next_offset();
                    if durable {
                        assert_eq!(
                            survived,
                            model[p].len() as u64,
                            "partition {p}: acknowledged records lost"
                        );
                    } else {
                        assert!(survived <= model[p].len() as u64);
                        model[p].truncate(survived as usize);
                    }
                }
            }
            Op::Recreate(p) => {
                rt.block_on(parts[p].forget()).unwrap();
                let fs: Arc<dyn Filesystem> = Arc::new(mem.clone());
                for file in fs.list_dir(&dir(p)).unwrap() {
                    fs.remove_file(&file).unwrap();
                }
                fs.sync_dir(&dir(p)).unwrap();
                incarnation[p] += 1;
                model[p].clear();
                let config = intake_log::PartitionConfig {
                    fsync,
                    ..small_segments(4096)
                };
                parts[p] = log.open_partition(dir(p), config).unwrap();
            }
            Op::Checkpoint => rt.block_on(log.checkpoint()).unwrap(),
        }
        for (p, partition) in parts.iter().enumerate() {
            assert_eq!(
                partition.next_offset(),
                model[p].len() as u64,
                "partition {p}"
            );
        }
    }
    for (p, partition) in parts.iter().enumerate() {
        let all = read_all(partition);
        let values: Vec<_> = all.iter().map(|r| r.value.to_vec()).collect();
        assert_eq!(values, model[p], "partition {p}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn shared_journal_matches_model_with_fsync_always(ops in proptest::collection::vec(op(), 1..50)) {
        run(ops, FsyncPolicy::Always, usize::MAX);
    }

    /// Groups of a partition of `direct` bytes or more skip the journal
    /// (written and synced in the segment), the rest use it: both kinds
    /// mix in one partition and across partitions of a group.
    #[test]
    fn direct_writes_and_journal_match_model_with_fsync_always(
        ops in proptest::collection::vec(op(), 1..50),
        direct in prop_oneof![Just(0usize), 200usize..1500],
    ) {
        run(ops, FsyncPolicy::Always, direct);
    }

    #[test]
    fn shared_journal_keeps_a_prefix_per_partition_with_fsync_never(ops in proptest::collection::vec(op(), 1..50)) {
        run(ops, FsyncPolicy::Never, 0);
    }
}
