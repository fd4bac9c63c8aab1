#!/usr/bin/env bash
# bench-vs-wrk.sh [SECONDS]  (RUNS=N rounds, default 3; CONNS=N connections,
# default 64) — `intake bench` and wrk against the same endpoint in one run,
# alternating: one ~200-byte JSON record per request to the native face of
# a stream with fsync "always", wrk -t1 with ../shared/bench/native-post.lua
# and `intake bench --threads 1` with the same connection count. Prints both
# rates per round and the ratio intake-bench/wrk of the best of each; they
# should agree within 10%. Needs wrk. Figures go to stdout and bench/results/.
#
# With two or more CPUs the node runs on CPU 0 and the generators on CPU 1
# (taskset), as they would on separate machines: unpinned on a 2-core
# machine, a generator's own CPU time is taken from the node, so the rate
# measures the generator's cost as much as the node's (intake bench spends
# about 7 us of CPU per request, wrk about 4.5). PIN=0 runs unpinned.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
shared=${SHARED:-$root/../shared}
secs=${1:-8}
conns=${CONNS:-64}
port=${PORT:-46802}
target=${CARGO_TARGET_DIR:-$root/target}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build -q --release --manifest-path "$root/Cargo.toml" -p intake
bin=$target/release/intake
node_cpu= load_cpu=
if [ "${PIN:-1}" != 0 ] && [ "$(nproc)" -ge 2 ]; then
  node_cpu="taskset -c 0" load_cpu="taskset -c 1"
fi
data=$(mktemp -d)
$node_cpu "$bin" serve --listen "127.0.0.1:$port" --data-dir "$data" >"$data/stdout" 2>"$data/stderr" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true; rm -rf "$data"' EXIT
until grep -q "listening on" "$data/stdout" 2>/dev/null; do sleep 0.1; done
url=http://127.0.0.1:$port
curl -sf -XPOST "$url/v1/streams" -H 'content-type: application/json' -d '{"name":"bench"}' >/dev/null
mkdir -p "$root/bench/results"
out="$root/bench/results/bench-vs-wrk-$(date +%Y%m%d-%H%M%S).txt"
{
  echo "== native, one ~200-byte JSON record per request, fsync always, $conns connections, ${secs}s per run, ${node_cpu:-unpinned}"
  best_wrk=0; best_bench=0
  for round in $(seq "${RUNS:-3}"); do
    w=$($load_cpu wrk -t1 -c"$conns" -d"${secs}s" -s "$shared/bench/native-post.lua" "$url/v1/streams/bench/records" | awk '/Requests\/sec/ {print $2}')
    b=$($load_cpu "$bin" bench --url "$url" --stream bench --face native --concurrency "$conns" \
          --records-per-request 1 --record-size 200 --duration "${secs}s" --json 2>/dev/null \
        | sed -n 's/.*"requests_per_s":\([0-9.]*\).*/\1/p')
    echo "round $round: wrk $w req/s, intake bench $b req/s"
    best_wrk=$(awk -v a="$best_wrk" -v b="$w" 'BEGIN{print (b>a)?b:a}')
    best_bench=$(awk -v a="$best_bench" -v b="$b" 'BEGIN{print (b>a)?b:a}')
  done
  echo "best: wrk $best_wrk req/s, intake bench $best_bench req/s"
  awk -v a="$best_bench" -v b="$best_wrk" 'BEGIN{r=a/b; printf "ratio intake-bench/wrk %.3f (%s)\n", r, (r>=0.9 && r<=1.1) ? "within 10%" : "NOT within 10%"}'
} | tee "$out"
