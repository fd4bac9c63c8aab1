#!/usr/bin/env bash
# sdk.sh [SECONDS] — the Rust SDK's batching against single-record HTTP
# requests into the same node (release build, fsync = always), as a ratio
# measured in one run: records/s with the SDK's batcher (default batch
# config: 500 records / 1 MiB / 5 ms linger) over records/s with one record
# per request, both from 64 concurrent senders.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-10}
port=${PORT:-46812}
cargo build -q --release --manifest-path "$root/Cargo.toml" -p intake -p intake-client --examples
target=${CARGO_TARGET_DIR:-$root/target}
data=$(mktemp -d)
"$target/release/intake" serve --listen "127.0.0.1:$port" --data-dir "$data" >"$data/stdout" 2>"$data/stderr" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true; rm -rf "$data"' EXIT
until grep -q "listening on" "$data/stdout" 2>/dev/null; do sleep 0.1; done
curl -sf -XPOST "127.0.0.1:$port/v1/streams" -H 'content-type: application/json' -d '{"name":"sdk"}' >/dev/null
single=$("$target/release/examples/throughput" "127.0.0.1:$port" sdk single "$secs" | awk '{print $3}')
batched=$("$target/release/examples/throughput" "127.0.0.1:$port" sdk sdk "$secs" | awk '{print $3}')
echo "single-record requests: $single records/s"
echo "SDK batcher:            $batched records/s"
awk -v b="$batched" -v s="$single" 'BEGIN {printf "ratio (SDK batched / single) %.1f\n", b / s}'
