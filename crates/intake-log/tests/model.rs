//! The log against an in-memory model: random appends, reads, restarts,
//! power losses and retention passes, on the fault-modelling file system.
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
use intake_log::{
    Filesystem, FsyncPolicy, MemoryFilesystem, Partition, PartitionConfig, Retention,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Append one batch with records of these sizes.
    Append(Vec<usize>),
    /// Read from this fraction of the retained range, at most this many.
    Read(f64, usize),
    /// Clean close and reopen.
    Restart,
    /// Power loss: only synced data survives, plus a torn prefix of the rest.
    Crash { keep_unsynced_per_mille: u16 },
    /// Retention down to this many bytes.
    RetainBytes(u64),
    /// Retention by age with a clock this far ahead.
    RetainAge(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec(1usize..300, 1..8).prop_map(Op::Append),
        3 => (0.0..1.0f64, 1usize..50).prop_map(|(f, n)| Op::Read(f, n)),
        1 => Just(Op::Restart),
        1 => (0u16..=1000).prop_map(|k| Op::Crash { keep_unsynced_per_mille: k }),
        1 => (0u64..20_000).prop_map(Op::RetainBytes),
        1 => (0u64..2).prop_map(Op::RetainAge),
    ]
}

/// Runs `ops`; `durable` says whether acknowledged records must survive a
/// crash (fsync always) or only a prefix of them (fsync never).
fn run(ops: Vec<Op>, fsync: FsyncPolicy) {
    let durable = fsync == FsyncPolicy::Always;
    let rt = runtime();
    let dir = Path::new("/data/s/0");
    let config = PartitionConfig {
        fsync,
        ..small_segments(4096)
    };
    let mut mem = MemoryFilesystem::new();
    let fs = |m: &MemoryFilesystem| -> Arc<dyn Filesystem> { Arc::new(m.clone()) };
    let mut p = Partition::open(fs(&mem), dir, config.clone()).unwrap();
    // The model: every record ever acknowledged, by offset.
    let mut model: Vec<Vec<u8>> = Vec::new();
    let mut start = 0u64;
    for op in ops {
        match op {
            Op::Append(sizes) => {
                let next = model.len() as u64;
                let values: Vec<_> = sizes
                    .iter()
                    .enumerate()
                    .map(|(i, &n)| value(next + i as u64, n))
                    .collect();
                let first = rt.block_on(append(&p, &values)).unwrap();
                assert_eq!(first, next, "offsets are dense");
                model.extend(values);
            }
            Op::Read(at, max) => {
                let end = model.len() as u64;
                let offset = start + ((end - start) as f64 * at) as u64;
                let got = p.read(offset, max, usize::MAX).unwrap();
                let want = &model[offset as usize..(offset as usize + max).min(model.len())];
                let values: Vec<_> = got.records.iter().map(|r| r.value.to_vec()).collect();
                assert_eq!(values, want);
                for (i, r) in got.records.iter().enumerate() {
                    assert_eq!(r.offset, offset + i as u64);
                }
                assert_eq!(got.next_offset, offset + want.len() as u64);
            }
            Op::Restart => {
                rt.block_on(p.close()).unwrap();
                drop(p);
                p = Partition::open(fs(&mem), dir, config.clone()).unwrap();
            }
            Op::Crash {
                keep_unsynced_per_mille,
            } => {
                // Stop the writer without its final sync: crash the file system
                // under the live partition, then reopen on what survived.
                let crashed =
                    mem.crash_with(|_, extra| extra * keep_unsynced_per_mille as usize / 1000);
                drop(p);
                mem = crashed;
                p = Partition::open(fs(&mem), dir, config.clone()).unwrap();
                let survived = p.next_offset();
                if durable {
                    assert_eq!(survived, model.len() as u64, "acknowledged records lost");
                } else {
                    assert!(survived <= model.len() as u64);
                    model.truncate(survived as usize);
                }
                start = start.min(survived);
            }
            Op::RetainBytes(max) => {
                let retention = Retention {
                    max_bytes: Some(max),
                    max_age: None,
                };
                let report = p
                    .enforce_retention(&retention, None, SystemTime::now())
                    .unwrap();
                assert!(
                    p.size_bytes() <= max || p.segment_count() == 1,
                    "retention stopped early"
                );
                assert!(report.start_offset >= start);
                start = report.start_offset;
            }
            Op::RetainAge(hours) => {
                let retention = Retention {
                    max_bytes: None,
                    max_age: Some(Duration::from_secs(3600)),
                };
                let now = SystemTime::now() + Duration::from_secs(hours * 3600 + 1);
                let report = p.enforce_retention(&retention, None, now).unwrap();
                if hours >= 1 {
                    assert_eq!(p.segment_count(), 1, "every sealed segment is past its age");
                } else {
                    assert_eq!(report.segments, 0);
                }
                start = report.start_offset;
            }
        }
        assert_eq!(p.start_offset(), start);
        assert_eq!(p.next_offset(), model.len() as u64);
    }
    let all = read_all(&p);
    assert_eq!(all.len() as u64, model.len() as u64 - start);
    for r in &all {
        assert_eq!(r.value, model[r.offset as usize]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model_with_fsync_always(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops, FsyncPolicy::Always);
    }

    #[test]
    fn log_keeps_a_prefix_with_fsync_never(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops, FsyncPolicy::Never);
    }
}
