//! `split_ndjson`: any body splits or is refused; every record it yields
//! is valid JSON text.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let body = Bytes::copy_from_slice(data);
    if let Ok(records) = intake_format::split_ndjson(&body) {
        for record in records {
            assert!(
                serde_json::from_slice::<&serde_json::value::RawValue>(&record).is_ok(),
                "split_ndjson yielded a record that is not JSON"
            );
        }
    }
});
