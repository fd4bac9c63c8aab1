#!/usr/bin/env bash
# ack-sink.sh nats|kafka [COUNT] [RECORD_BYTES]  (RUNS=N, default 3) —
# the latency of single-record pushes to a stream with `ack = "sink"`
# (the answer waits until the broker acknowledged the record) against the
# broker's own client producing the same records one at a time, each
# acknowledgement awaited (producer_loop's -latency mode, same settings as
# intake's sink). One client, one record in flight; p50 and p99 of each,
# and the ratio of the p99s, per run and as a median.
#
# The stream keeps intake's default fsync (the record is durable locally
# too before the answer); FSYNC=never leaves that out, to show what the
# forwarding path itself adds. NATS: $NATS_URL (default nats://127.0.0.1:4222).
# Kafka: a tansu broker with in-memory storage started here, or
# $KAFKA_BROKERS when set.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
kind=${1:?usage: ack-sink.sh nats|kafka [COUNT] [RECORD_BYTES]}
count=${2:-5000}
size=${3:-200}
runs=${RUNS:-3}
fsync=${FSYNC:+"\"fsync\":\"$FSYNC\","}
port=${PORT:-46832}
# shellcheck source=broker-setup.sh
. "$here/broker-setup.sh"

intake_run() { # prints "p50 p99" in ms
  local name="acks$1" dest="intake.acks.$$.$1" sink
  if [ "$kind" = nats ]; then
    sink="{\"name\":\"s\",\"kind\":\"nats\",\"url\":\"$server\",\"subject\":\"$dest\"}"
  else
    "$loop_bin" kafka-topic "$server" "$dest" 1
    sink="{\"name\":\"s\",\"kind\":\"kafka\",\"brokers\":\"$server\",\"topic\":\"$dest\"}"
  fi
  curl -sf -XPOST "$url/v1/streams" -H 'content-type: application/json' \
    -d "{\"name\":\"$name\",\"partitions\":1,\"ack\":\"sink\",$fsync\"sinks\":[$sink]}" >/dev/null
  "$target/release/intake" bench --url "$url" --stream "$name" --concurrency 1 --records-per-request 1 \
    --record-size "$size" --count "$count" --json |
    python3 -c 'import json,sys; l=json.load(sys.stdin)["latency_ms"]; print(l["p50"], l["p99"])'
}

loop_run() { # prints "p50 p99" in ms
  local dest="loop.acks.$$.$1"
  if [ "$kind" = kafka ]; then "$loop_bin" kafka-topic "$server" "$dest" 1; fi
  "$loop_bin" "$kind-latency" "$server" "$dest" "$count" "$size" | awk '{print $3, $6}'
}

mkdir -p "$root/bench/results"
out="$root/bench/results/ack-sink-$kind-$(date +%Y%m%d-%H%M%S).txt"
{
  echo "== $count single-record pushes with ack = \"sink\" to $kind ($server), one at a time, fsync ${FSYNC:-default}, $runs runs"
  for run in $(seq "$runs"); do
    read -r a50 a99 <<<"$(intake_run "$run")"
    read -r b50 b99 <<<"$(loop_run "$run")"
    awk -v r="$run" -v a50="$a50" -v a99="$a99" -v b50="$b50" -v b99="$b99" -v k="$kind" 'BEGIN {
      printf "run %d: intake p50 %.3f ms p99 %.3f ms; %s producer p50 %.3f ms p99 %.3f ms; p99 ratio %.2f\n",
        r, a50, a99, k, b50, b99, a99 / b99 }'
  done | tee "$work/runs"
  awk '{print $NF}' "$work/runs" | sort -n | awk '{a[NR]=$1} END {print "median p99 ratio " a[int((NR+1)/2)]}'
} | tee "$out"
