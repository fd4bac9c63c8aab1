//! Kafka REST Proxy v2 produce bodies, with the JSON and the binary
//! embedding: any body parses or is refused; accepted JSON values are JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    intake_server::fuzzing::rest_produce(data);
});
