//! InLong DataProxy's form parameters: any body and query (split at the
//! first `?`) parse, print back to a form that parses the same, and split
//! into records without newlines; only safe JSONP callback names pass.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    intake_server::fuzzing::inlong_form(data);
});
