#!/usr/bin/env bash
# faces.sh [SECONDS]  (RUNS=N repeats each comparison, default 3) — the
# CKafka DataHub and Kafka REST Proxy faces against the durable
# physical-limit server of ../shared/bench, in one run: one ~200-byte
# record per request, fsync "always", vs LIMIT_DURABLE=1.
#   CKafka: SendMessage to a binary stream bound to datahub-bench (ckafka-post.lua)
#   REST:   POST /topics/bench-json, json embedding, a JSON stream (rest-post.lua)
# Needs wrk. Figures go to stdout and bench/results/.
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
"$target/release/intake" serve --listen "127.0.0.1:$port" --data-dir "$data" >"$data/stdout" 2>"$data/stderr" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true; rm -rf "$data"' EXIT
until grep -q "listening on" "$data/stdout" 2>/dev/null; do sleep 0.1; done
url=http://127.0.0.1:$port
curl -sf -XPOST "$url/v1/streams" -H 'content-type: application/json' \
  -d '{"name":"bench-bin","format":"binary","bindings":{"datahub_id":"datahub-bench"}}' >/dev/null
curl -sf -XPOST "$url/v1/streams" -H 'content-type: application/json' -d '{"name":"bench-json"}' >/dev/null
# Each face must answer success before it is measured.
curl -sf "$url/" -H 'X-TC-Action: SendMessage' -H 'content-type: application/json' \
  -d '{"DataHubId":"datahub-bench","Message":[{"Body":"check"}]}' | grep -q MessageId
curl -sf -XPOST "$url/topics/bench-json" -H 'content-type: application/vnd.kafka.json.v2+json' \
  -d '{"records":[{"value":{"check":1}}]}' | grep -q '"offsets"'
mkdir -p "$root/bench/results"
out="$root/bench/results/faces-$(date +%Y%m%d-%H%M%S).txt"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
{
  for face in ckafka rest; do
    case $face in
      ckafka) path=/ lua=$here/ckafka-post.lua ;;
      rest) path=/topics/bench-json lua=$here/rest-post.lua ;;
    esac
    echo "== $face, one ~200-byte record per request, fsync always, vs durable baseline (${RUNS:-3} runs)"
    : >"$data/$face"
    for run in $(seq "${RUNS:-3}"); do
      LIMIT_DURABLE=1 compare "$url$path" "$lua" "$secs" | tee -a "$data/$face"
    done
    echo "$face ratios: $(awk '/^ratio/ {print $2}' "$data/$face" | tr '\n' ' ')"
    echo "$face median ratio $(awk '/^ratio/ {print $2}' "$data/$face" | median)"
  done
  echo "records stored: bench-bin $(curl -sf "$url/v1/streams/bench-bin" | sed -n 's/.*"next_offset":\([0-9]*\).*/\1/p'), bench-json $(curl -sf "$url/v1/streams/bench-json" | sed -n 's/.*"next_offset":\([0-9]*\).*/\1/p')"
} | tee "$out"
