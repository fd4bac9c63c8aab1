//! CKafka DataHub `SendMessage`: any body parses or is refused with an
//! API 3.0 error; an accepted one has 1 to 500 messages and prints back
//! the same. The same bytes as a TC3 `Authorization` header never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    intake_server::fuzzing::ckafka_request(data);
});
