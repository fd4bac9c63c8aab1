#!/usr/bin/env bash
# crash-soak.sh [ITERATIONS] — the crash tests with many SIGKILL points
# (default 300), on a release build, pushes spread over CRASH_STREAMS
# streams (default 50) sharing the node's journal. Prints the seed; replay a
# run with CRASH_SEED=<seed>. CRASH_TEST picks the test: crash_safety
# (default: every acknowledged record is stored once) or crash_exactly_once
# (clients retry every request with its key until answered: every record
# is stored once, none lost, none twice).
set -euo pipefail
cd "$(dirname "$0")/.."
CRASH_STREAMS=${CRASH_STREAMS:-50} CRASH_ITERATIONS=${1:-300} \
  cargo test --release -p intake --test "${CRASH_TEST:-crash_safety}" -- --nocapture
