#!/usr/bin/env bash
# inlong.sh [SECONDS]  (RUNS=N repeats the comparison, default 3; WORKERS=N
# sets --worker-threads) — the InLong DataProxy face against the durable
# physical-limit server of ../shared/bench, in one run:
#   one InLong form report per request (../shared/bench/inlong-post.lua:
#   groupId g1, streamId s1, cnt 1, a 200-byte body) to a stream bound to
#   g1/s1 with format "binary" (the body is opaque text, not JSON) and
#   fsync "always", vs LIMIT_DURABLE=1.
# Needs wrk (apt-get install wrk). Figures go to stdout and bench/results/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
shared=${SHARED:-$root/../shared}
. "$here/compare-limit.sh"
secs=${1:-8}
port=${PORT:-46802}
target=${CARGO_TARGET_DIR:-$root/target}
cargo build -q --release --manifest-path "$root/Cargo.toml" -p intake
data=$(mktemp -d)
"$target/release/intake" serve ${WORKERS:+--worker-threads $WORKERS} --listen "127.0.0.1:$port" --data-dir "$data" >"$data/stdout" 2>"$data/stderr" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true; rm -rf "$data"' EXIT
until grep -q "listening on" "$data/stdout" 2>/dev/null; do sleep 0.1; done
url=http://127.0.0.1:$port
curl -sf -XPOST "$url/v1/streams" -H 'content-type: application/json' \
  -d '{"name":"bench","format":"binary","bindings":{"inlong":[{"group_id":"g1","stream_id":"s1"}]}}' >/dev/null
# The face must answer success before it is measured.
answer=$(curl -sf -XPOST "$url/dataproxy/message" -d 'groupId=g1&streamId=s1&dt=1700000000000&cnt=1&body=check')
[ "$answer" = '{"code":"0","msg":"Ok"}' ] || { echo "unexpected answer: $answer" >&2; exit 1; }
mkdir -p "$root/bench/results"
out="$root/bench/results/inlong-w${WORKERS:-default}-$(date +%Y%m%d-%H%M%S).txt"
{
  echo "== InLong report, one 200-byte record per request, binary stream, fsync always, vs durable baseline (${RUNS:-3} runs, worker threads: ${WORKERS:-default})"
  for run in $(seq "${RUNS:-3}"); do
    LIMIT_DURABLE=1 compare "$url/dataproxy/message" "$shared/bench/inlong-post.lua" "$secs" | tee -a "$data/runs"
  done
  echo "ratios: $(awk '/^ratio/ {print $2}' "$data/runs" | tr '\n' ' ')"
  awk '/^ratio/ {print $2}' "$data/runs" | sort -n | awk '{a[NR]=$1} END {print "median ratio " a[int((NR+1)/2)]}'
  # Every acknowledged report is a record: the log holds what wrk was told.
  echo "records stored: $(curl -sf "$url/v1/streams/bench" | sed -n 's/.*"next_offset":\([0-9]*\).*/\1/p')"
} | tee "$out"
