#!/usr/bin/env bash
# native.sh [SECONDS]  (RUNS=N repeats the single-record comparison; WORKERS=N sets --worker-threads; NODE_BIN=PATH runs that intake binary instead of building one) — intake's native push against the physical-limit
# server of ../shared/bench, in one run:
#   1. one ~200-byte JSON record per request, fsync = always, against the
#      durable baseline (LIMIT_DURABLE=1): the ratio of issue "Foundation";
#   2. 100-record JSON arrays (records/s = requests/s x 100) and intake's
#      peak RSS under that load.
# Needs wrk (apt-get install wrk). Figures go to stdout and bench/results/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
shared=${SHARED:-$root/../shared}
. "$here/compare-limit.sh"
secs=${1:-8}
port=${PORT:-46802}
[ -n "${NODE_BIN:-}" ] || cargo build -q --release --manifest-path "$root/Cargo.toml" -p intake
bin=${NODE_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/intake}
data=$(mktemp -d)
"$bin" serve ${WORKERS:+--worker-threads $WORKERS} --listen "127.0.0.1:$port" --data-dir "$data" >"$data/stdout" 2>"$data/stderr" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true; rm -rf "$data"' EXIT
until grep -q "listening on" "$data/stdout" 2>/dev/null; do sleep 0.1; done
url=http://127.0.0.1:$port
curl -sf -XPOST "$url/v1/streams" -H 'content-type: application/json' -d '{"name":"bench"}' >/dev/null
mkdir -p "$root/bench/results"
out="$root/bench/results/native-$(date +%Y%m%d-%H%M%S).txt"
{
  echo "== one JSON record per request, fsync always, vs durable baseline (${RUNS:-3} runs)"
  for run in $(seq "${RUNS:-3}"); do
    LIMIT_DURABLE=1 compare "$url/v1/streams/bench/records" "$shared/bench/native-post.lua" "$secs" | tee -a "$data/single"
  done
  echo "ratios: $(awk '/^ratio/ {print $2}' "$data/single" | tr '\n' ' ')"
  awk '/^ratio/ {print $2}' "$data/single" | sort -n | awk '{a[NR]=$1} END {print "median ratio " a[int((NR+1)/2)]}'
  echo "== 100-record JSON arrays, vs durable baseline (records/s = req/s x 100)"
  rss_log=$(mktemp)
  ( peak=0; while kill -0 $pid 2>/dev/null; do
      r=$(awk '/VmRSS/ {print $2}' /proc/$pid/status 2>/dev/null || echo 0)
      [ "${r:-0}" -gt "$peak" ] && peak=$r && echo "$peak" >"$rss_log"; sleep 0.2; done ) &
  sampler=$!
  LIMIT_DURABLE=1 compare "$url/v1/streams/bench/records" "$shared/bench/native-batch.lua" "$secs" | tee "$data/batch"
  kill $sampler 2>/dev/null || true
  best=$(awk '/^best:/ {print $6}' "$data/batch")
  awk -v r="$best" 'BEGIN{printf "records/s: %.0f\n", r*100}'
  echo "peak RSS: $(( $(cat "$rss_log") / 1024 )) MiB"
} | tee "$out"
