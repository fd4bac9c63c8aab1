//! `split_json`: any body splits or is refused; every record it yields is
//! valid JSON text (a number past f64's range, such as 1e4444444, is valid
//! JSON and kept as sent), and the depth check never panics.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = intake_format::depth_exceeded_at(data, 64);
    let body = Bytes::copy_from_slice(data);
    if let Ok(records) = intake_format::split_json(&body) {
        for record in records {
            assert!(
                serde_json::from_slice::<&serde_json::value::RawValue>(&record).is_ok(),
                "split_json yielded a record that is not JSON"
            );
        }
    }
});
