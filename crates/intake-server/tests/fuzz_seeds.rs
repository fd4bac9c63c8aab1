//! The committed seeds of the face fuzz targets (`fuzz/seeds/inlong_form`,
//! `ckafka_request`, `rest_produce`), replayed through the same entry
//! points in the test build: CI checks them without building the server
//! with sanitizers (`fuzz/run.sh` fuzzes them for real).
#![allow(clippy::unwrap_used, reason = "a panic in a test is a failed test")]

use std::path::Path;

use intake_server::fuzzing;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target);
    let mut seeds = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        run(&std::fs::read(&path).unwrap());
        seeds += 1;
    }
    assert!(seeds > 0, "no seeds in {}", dir.display());
}

#[test]
fn inlong_form_seeds() {
    replay("inlong_form", fuzzing::inlong_form);
}

#[test]
fn ckafka_request_seeds() {
    replay("ckafka_request", fuzzing::ckafka_request);
}

#[test]
fn rest_produce_seeds() {
    replay("rest_produce", fuzzing::rest_produce);
}
