#!/usr/bin/env bash
# hostile.sh — the hostile-request suite (crates/intake/tests/hostile_requests.rs)
# on a release build: a good client pushes one JSON record per request,
# alone for a quiet phase, then while every kind of hostile request is sent
# again and again. Prints what each hostile request got, the good client's
# p99 latency in both phases and their ratio.
# Target: hostile-phase p99 <= 2x quiet p99.
# The test itself asserts only correctness (no timing); this script reports
# the speed. Figures go to stdout and bench/results/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$root/bench/results"
out="$root/bench/results/hostile-$(date +%Y%m%d-%H%M%S).txt"
cargo test --release --manifest-path "$root/Cargo.toml" -p intake --test hostile_requests -- --nocapture 2>&1 | tee "$out"
line=$(grep '^p99 quiet_us=' "$out" | tail -n 1)
quiet=$(sed -E 's/.*quiet_us=([0-9]+).*/\1/' <<<"$line")
hostile=$(sed -E 's/.*hostile_us=([0-9]+).*/\1/' <<<"$line")
awk -v q="$quiet" -v h="$hostile" 'BEGIN {
    r = h / (q > 0 ? q : 1)
    printf "good client p99: quiet %.2f ms, hostile %.2f ms; ratio hostile/quiet %.2f (target <= 2.00): %s\n",
        q / 1000, h / 1000, r, (r <= 2 ? "met" : "NOT met")
}' | tee -a "$out"
