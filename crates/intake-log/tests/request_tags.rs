//! Tagged batches are found again, by offset, after a reopen; untagged
//! ones are not listed, and their records read the same either way.
#![allow(clippy::unwrap_used, reason = "a panic in a test is a failed test")]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use intake_log::{EncodedBatch, MemoryFilesystem, NewRecord, Partition, PartitionConfig};

#[tokio::test]
async fn tagged_batches_are_listed_after_a_reopen() {
    let fs = Arc::new(MemoryFilesystem::new());
    let config = PartitionConfig {
        segment_bytes: 4096,
        ..PartitionConfig::default()
    };
    let partition = Partition::open(fs.clone(), "/p", config.clone()).unwrap();
    let mut expected = Vec::new();
    for i in 0..60u32 {
        let records: Vec<NewRecord> = (0..=i % 3)
            .map(|j| NewRecord::new(i64::from(i), format!("record {i}.{j} {}", "x".repeat(50))))
            .collect();
        let tag = format!("request {i}");
        let batch = if i % 2 == 0 {
            EncodedBatch::encode_tagged(&records, Some(tag.as_bytes())).unwrap()
        } else {
            EncodedBatch::encode(&records).unwrap()
        };
        let appended = partition.append(batch).await.unwrap();
        if i % 2 == 0 {
            expected.push((appended.first_offset, records.len() as u32, tag));
        }
    }
    let listed = |p: &Partition, since: SystemTime| {
        p.request_tags(since)
            .unwrap()
            .into_iter()
            .map(|t| {
                (
                    t.base_offset,
                    t.count,
                    String::from_utf8(t.tag.to_vec()).unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(listed(&partition, SystemTime::UNIX_EPOCH), expected);
    partition.close().await.unwrap();

    let partition = Partition::open(fs, "/p", config).unwrap();
    assert!(partition.segment_count() > 2, "the batches span segments");
    assert_eq!(listed(&partition, SystemTime::UNIX_EPOCH), expected);
    // Segments last written before `since` are skipped; the active one
    // never is.
    let later = listed(&partition, SystemTime::now() + Duration::from_secs(3600));
    assert!(later.len() < expected.len(), "{later:?}");
    assert!(expected.ends_with(&later));
    // Records read the same, tag or no tag.
    let read = partition.read(0, 1000, usize::MAX).unwrap();
    assert_eq!(read.records.len(), 120);
    assert!(read.records[0].value.starts_with(b"record 0.0"));
    assert!(read.records[119].value.starts_with(b"record 59.2"));
}
