#!/usr/bin/env bash
# many-partitions.sh [STREAMS] [PARTITIONS]  (defaults 5000 and 2: 10,000
# partitions) — what a node pays for many streams, on a release build:
#   - the time to create them (8 clients in parallel, POST /v1/streams);
#   - RSS and OS threads idle with all of them open;
#   - RSS and threads after one push to each (8 clients in parallel);
#   - the time from start to a ready /readyz, after a clean stop (SIGTERM)
#     and after a SIGKILL (journal replay).
# Figures go to stdout and bench/results/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
streams=${1:-5000}
partitions=${2:-2}
port=${PORT:-46802}
[ -n "${NODE_BIN:-}" ] || cargo build -q --release --manifest-path "$root/Cargo.toml" -p intake
bin=${NODE_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/intake}
data=$(mktemp -d)
url=http://127.0.0.1:$port
pid=
took=
# Starts the node in the background; $took is the time to a ready /readyz.
start() {
  local began
  began=$(date +%s.%N)
  "$bin" serve --listen "127.0.0.1:$port" --data-dir "$data/node" >"$data/stdout" 2>>"$data/stderr" &
  pid=$!
  until curl -sf -o /dev/null "$url/readyz"; do
    kill -0 $pid 2>/dev/null || { echo "the node stopped:" >&2; tail "$data/stderr" >&2; exit 1; }
    sleep 0.02
  done
  took=$(awk -v a="$began" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}')
}
# wait for the node only: a bare wait would also wait for the tee below.
trap 'if [ -n "$pid" ]; then kill $pid 2>/dev/null; wait $pid 2>/dev/null || true; fi; rm -rf "$data"' EXIT
rss() { awk '/VmRSS/ {printf "%d MiB", $2/1024}' /proc/$pid/status; }
threads() { ls /proc/$pid/task | wc -l; }
mkdir -p "$root/bench/results"
out="$root/bench/results/many-partitions-$(date +%Y%m%d-%H%M%S).txt"
# Not a pipeline into tee: the node's pid must stay in this shell.
exec > >(tee "$out")
start
echo "start (empty): $took s; RSS $(rss), threads $(threads)"
began=$(date +%s.%N)
seq 0 $((streams - 1)) |
  xargs -P 8 -I{} curl -sf -o /dev/null -XPOST "$url/v1/streams" -H 'content-type: application/json' \
    -d "{\"name\":\"s{}\",\"partitions\":$partitions}"
awk -v a="$began" -v b="$(date +%s.%N)" -v n="$streams" -v p="$partitions" \
  'BEGIN{printf "created %d streams x %d partitions in %.1f s\n", n, p, b-a}'
sleep 2
echo "idle with them: RSS $(rss), threads $(threads)"
began=$(date +%s.%N)
seq 0 $((streams - 1)) |
  xargs -P 8 -I{} curl -sf -o /dev/null -XPOST "$url/v1/streams/s{}/records" -H 'content-type: application/json' \
    -d '{"device":"d-17","temp":21.5,"note":"one push to each stream"}'
awk -v a="$began" -v b="$(date +%s.%N)" 'BEGIN{printf "one push to each in %.1f s\n", b-a}'
echo "after one push to each: RSS $(rss), threads $(threads)"
kill -TERM $pid; wait $pid || true
start
echo "restart to ready after a clean stop: $took s; RSS $(rss), threads $(threads)"
seq 0 $((streams - 1)) |
  xargs -P 8 -I{} curl -sf -o /dev/null -XPOST "$url/v1/streams/s{}/records" -H 'content-type: application/json' \
    -d '{"device":"d-17","temp":21.5,"note":"a second push to each stream"}'
kill -KILL $pid; wait $pid 2>/dev/null || true
start
echo "restart to ready after SIGKILL (journal replayed): $took s"
grep -o 'journal replayed.*' "$data/stderr" | head -1 || true
echo "records after it: $(curl -sf "$url/v1/streams" | python3 -c 'import json,sys; print(sum(p["next_offset"] for s in json.load(sys.stdin)["streams"] for p in s["status"]))')"
