//! The log's recovery and reader on a damaged active segment: a valid
//! segment of several batches, cut and with bytes changed as the input
//! says, either opens (recovering to a prefix of its records, which read
//! back in order) or is refused with an error; never a panic.
//!
//! Input: two bytes of cut position (big-endian, modulo the length + 1),
//! then (position: u16, xor: u8) triples. An input starting with `R` is
//! instead the whole segment file, as it is.
#![no_main]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use intake_log::{
    EncodedBatch, Filesystem, MemoryFilesystem, NewRecord, Partition, PartitionConfig,
};
use libfuzzer_sys::fuzz_target;

const DIR: &str = "/p";
const SEGMENT: &str = "/p/00000000000000000000.log";

/// A closed partition of four batches, and the values of its records.
fn built() -> &'static (MemoryFilesystem, Vec<Vec<u8>>) {
    static BUILT: OnceLock<(MemoryFilesystem, Vec<Vec<u8>>)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let fs = MemoryFilesystem::new();
        let shared: Arc<dyn Filesystem> = Arc::new(fs.clone());
        let partition = Partition::open(shared, DIR, PartitionConfig::default()).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut values = Vec::new();
        for batch in 0..4u8 {
            let records: Vec<NewRecord> = (0..=batch)
                .map(|i| {
                    let value = vec![b'a' + batch; 10 + usize::from(i) * 7];
                    values.push(value.clone());
                    NewRecord::new(1_700_000_000_000, value)
                })
                .collect();
            let encoded = EncodedBatch::encode(&records).unwrap();
            runtime.block_on(partition.append(encoded)).unwrap();
        }
        runtime.block_on(partition.close()).unwrap();
        (fs, values)
    })
}

fuzz_target!(|data: &[u8]| {
    let (fs, values) = built();
    let fs = fs.crash();
    let mut segment = fs.contents(Path::new(SEGMENT)).unwrap();
    let raw = data.first() == Some(&b'R');
    if let Some(raw) = data.strip_prefix(b"R") {
        segment = raw.to_vec();
    } else if let [hi, lo, patches @ ..] = data {
        let cut = usize::from(u16::from_be_bytes([*hi, *lo])) % (segment.len() + 1);
        segment.truncate(cut);
        for patch in patches.chunks_exact(3) {
            let at = usize::from(u16::from_be_bytes([patch[0], patch[1]]));
            if let Some(byte) = segment.get_mut(at) {
                *byte ^= patch[2];
            }
        }
    }
    fs.set_contents(Path::new(SEGMENT), segment);
    let shared: Arc<dyn Filesystem> = Arc::new(fs);
    let Ok(partition) = Partition::open(shared, DIR, PartitionConfig::default()) else {
        return;
    };
    // Whatever survived is a prefix of what was written, read in order.
    let mut offset = partition.start_offset();
    let mut read = Vec::new();
    while offset < partition.next_offset() {
        let Ok(batch) = partition.read(offset, 7, 1 << 16) else {
            break;
        };
        if batch.records.is_empty() {
            break;
        }
        for record in &batch.records {
            assert_eq!(record.offset, partition.start_offset() + read.len() as u64);
            read.push(record.value.to_vec());
        }
        offset = batch.next_offset;
    }
    if !raw {
        assert!(read.len() <= values.len());
        assert_eq!(
            read[..],
            values[..read.len()],
            "recovered records are a prefix"
        );
    }
});
