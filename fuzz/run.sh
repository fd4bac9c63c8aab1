#!/usr/bin/env bash
# fuzz/run.sh [SECONDS] [TARGET...] — runs each cargo-fuzz target (all by
# default) for SECONDS (default 60) with AddressSanitizer, starting from
# the committed seeds in fuzz/seeds/TARGET and keeping what it finds in
# fuzz/corpus/TARGET (not committed). Prints execs and crashes per target;
# a crash stops the script with the reproducer under fuzz/artifacts/.
# `SECONDS=0` replays the seeds only (what CI does, for the targets that do
# not need the server; the face targets' seeds are replayed by
# crates/intake-server/tests/fuzz_seeds.rs). The face targets (inlong_form,
# ckafka_request, rest_produce) build with the `server` feature.
# Needs cargo-fuzz (cargo install cargo-fuzz); RUSTC_BOOTSTRAP=1 lets the
# stable toolchain take the sanitizer flags.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
export RUSTC_BOOTSTRAP=1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
server_targets=" inlong_form ckafka_request rest_produce "
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "seeds/$t"
  features=()
  [[ $server_targets == *" $t "* ]] && features=(--features server)
  # log_recover opens a partition per input, whose writer thread is
  # detached and may still be exiting when the input ends: LeakSanitizer
  # would count that thread's few bytes as a leak of the input.
  leaks=()
  [ "$t" = log_recover ] && leaks=(-detect_leaks=0)
  if [ "$secs" = 0 ]; then
    args=("seeds/$t" -- -runs=0 "${leaks[@]}")
  else
    args=("corpus/$t" "seeds/$t" -- -max_total_time="$secs" "${leaks[@]}")
  fi
  if ! cargo fuzz run "${features[@]}" "$t" "${args[@]}" >"$log" 2>&1; then
    grep -E "ERROR|panicked|SUMMARY|Test unit written" "$log" || tail -n 30 "$log"
    echo "== $t FAILED"
    exit 1
  fi
  grep -E "Done [0-9]+ runs" "$log" || true
  grep -E "DONE" "$log" | tail -n 1 || true
  echo "== $t ok"
done
