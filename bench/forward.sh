#!/usr/bin/env bash
# forward.sh nats|kafka [RECORDS] [RECORD_BYTES]  (RUNS=N, default 3) —
# intake's forwarding throughput to a broker against that broker's own
# producer sending the same records, as a ratio measured in one run.
#
# intake: RECORDS JSON records of about RECORD_BYTES are pushed into a
# one-partition stream whose sink is paused; the sink is resumed and timed
# until its lag is 0 (polled every 20 ms). The baseline: producer_loop
# (crates/intake-forward/examples), the broker's client library with the
# same settings (async-nats with 1000 acks outstanding and a Nats-Msg-Id per
# message; rdkafka idempotent, acks=all, linger.ms=5 as librdkafka's default,
# intake's sink uses 1), sending the same
# records. Runs alternate; the median ratio is reported.
#
# NATS: the server at $NATS_URL (default nats://127.0.0.1:4222). Kafka: a
# tansu broker with in-memory storage started here (cargo install tansu
# --version 0.6.0 --features dynostore), or $KAFKA_BROKERS when set.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
kind=${1:?usage: forward.sh nats|kafka [RECORDS] [RECORD_BYTES]}
records=${2:-200000}
size=${3:-200}
runs=${RUNS:-3}
port=${PORT:-46822}
cargo build -q --release --manifest-path "$root/Cargo.toml" -p intake
cargo build -q --release --manifest-path "$root/Cargo.toml" -p intake-forward --example producer_loop
target=${CARGO_TARGET_DIR:-$root/target}
loop_bin=$target/release/examples/producer_loop
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT

case $kind in
  nats) server=${NATS_URL:-nats://127.0.0.1:4222} ;;
  kafka)
    if [ -n "${KAFKA_BROKERS:-}" ]; then
      server=$KAFKA_BROKERS
    else
      kport=$((port + 1))
      tansu=$(command -v tansu || echo "$HOME/.cargo/bin/tansu")
      "$tansu" broker --listener-url "tcp://127.0.0.1:$kport" --advertised-listener-url "tcp://127.0.0.1:$kport" \
        --storage-engine memory://tansu/ >"$work/tansu.log" 2>&1 &
      pids+=($!)
      until (exec 3<>"/dev/tcp/127.0.0.1/$kport") 2>/dev/null; do sleep 0.1; done
      server=127.0.0.1:$kport
    fi ;;
  *) echo "unknown broker kind $kind" >&2; exit 2 ;;
esac

"$target/release/intake" serve --listen "127.0.0.1:$port" --data-dir "$work/data" >"$work/stdout" 2>"$work/stderr" &
pids+=($!)
until grep -q "listening on" "$work/stdout" 2>/dev/null; do sleep 0.1; done
url=http://127.0.0.1:$port

# The records, as NDJSON for `intake push` (the same shape producer_loop sends).
awk -v n="$records" -v size="$size" 'BEGIN {
  for (i = 0; i < n; i++) { head = "{\"n\":" i ",\"pad\":\""; pad = size - length(head) - 2;
    s = head; for (j = 0; j < pad; j++) s = s "x"; print s "\"}" } }' >"$work/records.ndjson"

lag() { curl -sf "$url/v1/streams/$1/sinks" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["lag_records"])'; }

intake_run() { # prints records/s
  local name="fwd$1" dest="intake.bench.$$.$1"
  if [ "$kind" = nats ]; then
    sink="{\"name\":\"s\",\"kind\":\"nats\",\"url\":\"$server\",\"subject\":\"$dest\"}"
  else
    "$loop_bin" kafka-topic "$server" "$dest" 1
    sink="{\"name\":\"s\",\"kind\":\"kafka\",\"brokers\":\"$server\",\"topic\":\"$dest\"}"
  fi
  curl -sf -XPOST "$url/v1/streams" -H 'content-type: application/json' \
    -d "{\"name\":\"$name\",\"partitions\":1,\"fsync\":\"never\",\"sinks\":[$sink]}" >/dev/null
  curl -sf -XPOST "$url/v1/streams/$name/sinks/s/pause" >/dev/null
  "$target/release/intake" push "$name" "$work/records.ndjson" --url "$url" >/dev/null
  [ "$(lag "$name")" = "$records" ] || { echo "sink lag is not $records" >&2; exit 1; }
  local start end
  start=$(date +%s.%N)
  curl -sf -XPOST "$url/v1/streams/$name/sinks/s/resume" >/dev/null
  while [ "$(lag "$name")" != 0 ]; do sleep 0.02; done
  end=$(date +%s.%N)
  awk -v n="$records" -v a="$start" -v b="$end" 'BEGIN {printf "%.0f\n", n / (b - a)}'
}

loop_run() { # prints records/s
  local dest="loop.bench.$$.$1"
  if [ "$kind" = kafka ]; then "$loop_bin" kafka-topic "$server" "$dest" 1; fi
  "$loop_bin" "$kind" "$server" "$dest" "$records" "$size" | awk '{print $(NF-1)}'
}

mkdir -p "$root/bench/results"
out="$root/bench/results/forward-$kind-$(date +%Y%m%d-%H%M%S).txt"
{
  echo "== forwarding $records records of ~$size bytes to $kind ($server), $runs runs"
  for run in $(seq "$runs"); do
    a=$(intake_run "$run")
    b=$(loop_run "$run")
    awk -v a="$a" -v b="$b" -v r="$run" 'BEGIN {printf "run %d: intake %d records/s, %s producer %d records/s, ratio %.3f\n", r, a, "'"$kind"'", b, a / b}'
  done | tee "$work/runs"
  awk '{print $NF}' "$work/runs" | sort -n | awk '{a[NR]=$1} END {print "median ratio " a[int((NR+1)/2)]}'
} | tee "$out"
