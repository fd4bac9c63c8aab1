#!/usr/bin/env bash
# decode.sh [SECONDS_PER_ROUND] [ROUNDS] — records/s of intake's json and
# delimited decoders with a four-field schema (strict for json) against plain
# serde_json parsing of the same records (release build, one process,
# rounds alternating); prints each round and the median ratios.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build -q --release --manifest-path "$root/Cargo.toml" -p intake-format --example decode_throughput
"${CARGO_TARGET_DIR:-$root/target}/release/examples/decode_throughput" "${1:-2}" "${2:-5}"
