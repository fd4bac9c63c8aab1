#!/usr/bin/env bash
# many-streams.sh [SECONDS]  (RUNS=N rounds, default 3; STREAMS=N, default 500;
# KINDS="singles arrays" by default, either alone to run only that load)
# Durable pushes (fsync = always) spread at random over STREAMS one-partition
# streams against the same load on one stream, in the same run on the same
# node: one ~200-byte JSON record per request, then 100-record arrays. Each
# round loads the spread case and the one-stream case alternately with wrk
# -t1 -c64 (CONNS) and prints both rates and their ratio; the medians close
# the run. Also the node's RSS and OS threads after the streams are made.
# Needs wrk (apt-get install wrk). Figures go to stdout and bench/results/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
secs=${1:-8}
port=${PORT:-46802}
streams=${STREAMS:-500}
conns=${CONNS:-64}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
[ -n "${NODE_BIN:-}" ] || cargo build -q --release --manifest-path "$root/Cargo.toml" -p intake
bin=${NODE_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/intake}
data=$(mktemp -d)
"$bin" serve --listen "127.0.0.1:$port" --data-dir "$data" >"$data/stdout" 2>"$data/stderr" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true; rm -rf "$data"' EXIT
until grep -q "listening on" "$data/stdout" 2>/dev/null; do
  kill -0 $pid 2>/dev/null || { echo "the node stopped:" >&2; cat "$data/stderr" >&2; exit 1; }
  sleep 0.1
done
url=http://127.0.0.1:$port
started=$(date +%s.%N)
for i in $(seq 0 $((streams - 1))); do
  printf '{"name":"s%d"}\n' "$i"
done | xargs -d '\n' -P 8 -I{} curl -sf -o /dev/null -XPOST "$url/v1/streams" -H 'content-type: application/json' -d {}
made=$(date +%s.%N)
mkdir -p "$root/bench/results"
out="$root/bench/results/many-streams-$(date +%Y%m%d-%H%M%S).txt"
rate() { # STREAMS BATCH -> requests/s
  STREAMS=$1 BATCH=$2 wrk -t1 -c"$conns" -d"${secs}s" -s "$here/many-streams.lua" "$url" |
    awk '/Requests\/sec/ {print $2}'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
{
  awk -v a="$started" -v b="$made" -v n="$streams" 'BEGIN{printf "created %d streams in %.1f s\n", n, b-a}'
  echo "node after creating them: RSS $(awk '/VmRSS/ {print int($2/1024)}' /proc/$pid/status) MiB, threads $(ls /proc/$pid/task | wc -l)"
  for kind in ${KINDS:-singles arrays}; do
    case $kind in
      singles) batch=0; echo "== one record per request" ;;
      arrays) batch=1; echo "== 100-record arrays" ;;
      *) echo "unknown kind $kind (singles or arrays)" >&2; exit 2 ;;
    esac
    : >"$data/ratios"
    for round in $(seq "${RUNS:-3}"); do
      spread=$(rate "$streams" "$batch")
      one=$(rate 1 "$batch")
      ratio=$(awk -v a="$spread" -v b="$one" 'BEGIN{printf "%.3f", a/b}')
      echo "round $round: $streams streams $spread req/s, one stream $one req/s, ratio $ratio"
      echo "$ratio" >>"$data/ratios"
    done
    echo "median ratio $(median <"$data/ratios")"
  done
  echo "node at the end: RSS $(awk '/VmRSS/ {print int($2/1024)}' /proc/$pid/status) MiB, threads $(ls /proc/$pid/task | wc -l)"
} | tee "$out"
