#!/usr/bin/env bash
# crash-soak.sh [ITERATIONS] — the crash-safety test with many SIGKILL
# points (default 300), on a release build, pushes spread over
# CRASH_STREAMS streams (default 50) sharing the node's journal. Prints the
# seed; replay a run with CRASH_SEED=<seed>.
set -euo pipefail
cd "$(dirname "$0")/.."
CRASH_STREAMS=${CRASH_STREAMS:-50} CRASH_ITERATIONS=${1:-300} cargo test --release -p intake --test crash_safety -- --nocapture
