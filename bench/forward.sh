#!/usr/bin/env bash
# forward.sh nats|kafka [RECORDS] [RECORD_BYTES]  (RUNS=N, default 3;
# PARTITIONS=N, default 1; SUSTAINED=SECONDS, default 0: off) —
# intake's forwarding throughput to a broker against that broker's own
# producer sending the same records, as a ratio measured in one run.
#
# intake: RECORDS JSON records of about RECORD_BYTES are pushed into a
# stream of PARTITIONS partitions whose sink is paused; the sink is resumed
# and timed until its lag is 0 (polled every 20 ms). Kafka topics have
# PARTITIONS partitions (the sink mirrors stream partitions). The baseline:
# producer_loop (crates/intake-forward/examples), the broker's client
# library with the same settings (async-nats with 1000 acks outstanding and
# a Nats-Msg-Id per message; rdkafka idempotent, acks=all, linger.ms=5 as
# librdkafka's default, intake's sink uses 1, an id header per message as
# intake sends), sending the same records. Runs alternate; the median ratio
# is reported.
#
# SUSTAINED=60: afterwards, 60 s of pushes (`intake bench`, 100-record
# requests) at half the median intake rate measured above, with the sink
# forwarding all along. Reports the sink's largest lag (polled every
# 100 ms), how long it took to reach 0 after the pushes stopped, and
# whether every stored record is downstream exactly once (producer_loop's
# -count mode: messages = distinct ids = records stored).
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
partitions=${PARTITIONS:-1}
sustained=${SUSTAINED:-0}
port=${PORT:-46822}
# shellcheck source=broker-setup.sh
. "$here/broker-setup.sh"

# The records, as NDJSON for `intake push` (the same shape producer_loop sends).
awk -v n="$records" -v size="$size" 'BEGIN {
  for (i = 0; i < n; i++) { head = "{\"n\":" i ",\"pad\":\""; pad = size - length(head) - 2;
    s = head; for (j = 0; j < pad; j++) s = s "x"; print s "\"}" } }' >"$work/records.ndjson"

# The first sink's lag (its total comes before its partitions' in the
# answer); grep, not a Python start per poll, to leave the CPU to the run.
lag() { curl -sf "$url/v1/streams/$1/sinks" | grep -o '"lag_records":[0-9]*' | head -1 | cut -d: -f2; }

# create_forwarding NAME DEST: a stream of $partitions partitions whose sink
# "s" sends to DEST (a subject, or a topic made here).
create_forwarding() {
  local name=$1 dest=$2 sink
  if [ "$kind" = nats ]; then
    sink="{\"name\":\"s\",\"kind\":\"nats\",\"url\":\"$server\",\"subject\":\"$dest\"}"
  else
    "$loop_bin" kafka-topic "$server" "$dest" "$partitions"
    sink="{\"name\":\"s\",\"kind\":\"kafka\",\"brokers\":\"$server\",\"topic\":\"$dest\",\"partitioning\":\"mirror\"}"
  fi
  curl -sf -XPOST "$url/v1/streams" -H 'content-type: application/json' \
    -d "{\"name\":\"$name\",\"partitions\":$partitions,\"fsync\":\"never\",\"sinks\":[$sink]}" >/dev/null
}

intake_run() { # prints records/s
  local name="fwd$1" dest="intake.bench.$$.$1"
  create_forwarding "$name" "$dest"
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
  if [ "$kind" = kafka ]; then "$loop_bin" kafka-topic "$server" "$dest" "$partitions"; fi
  "$loop_bin" "$kind" "$server" "$dest" "$records" "$size" | awk '{print $(NF-1)}'
}

sustained_run() { # MAX_RATE: pushes at half of it for $sustained s, forwarding all along
  local name=fwdsustained dest="intake.bench.$$.sustained" rate peak=0 l start drained
  create_forwarding "$name" "$dest"
  rate=$(awk -v m="$1" 'BEGIN {printf "%.1f", m / 2 / 100}')
  echo "sustained: ${sustained} s of 100-record pushes at $rate requests/s (half of $1 records/s)"
  "$target/release/intake" bench --url "$url" --stream "$name" --records-per-request 100 \
    --record-size "$size" --rate "$rate" --concurrency 8 --duration "${sustained}s" >"$work/bench.out" &
  local bench=$!
  while kill -0 "$bench" 2>/dev/null; do
    l=$(lag "$name"); [ "$l" -gt "$peak" ] && peak=$l
    sleep 0.1
  done
  wait "$bench"
  grep -E "records/s|requests" "$work/bench.out" | head -3
  start=$(date +%s.%N)
  until [ "$(lag "$name")" = 0 ]; do sleep 0.05; done
  drained=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}')
  local stored
  stored=$(curl -sf "$url/v1/streams/$name" | python3 -c 'import json,sys; print(sum(p["next_offset"] for p in json.load(sys.stdin)["status"]))')
  echo "sustained: largest lag $peak records; lag 0 ${drained} s after the pushes stopped; $stored records stored"
  echo "downstream: $("$loop_bin" "$kind-count" "$server" "$dest") (exactly once: both equal $stored)"
}

mkdir -p "$root/bench/results"
out="$root/bench/results/forward-$kind-$(date +%Y%m%d-%H%M%S).txt"
{
  echo "== forwarding $records records of ~$size bytes to $kind ($server), $partitions partition(s), $runs runs"
  for run in $(seq "$runs"); do
    a=$(intake_run "$run")
    b=$(loop_run "$run")
    awk -v a="$a" -v b="$b" -v r="$run" 'BEGIN {printf "run %d: intake %d records/s, %s producer %d records/s, ratio %.3f\n", r, a, "'"$kind"'", b, a / b}'
  done | tee "$work/runs"
  awk '{print $NF}' "$work/runs" | sort -n | awk '{a[NR]=$1} END {print "median ratio " a[int((NR+1)/2)]}'
  if [ "$sustained" -gt 0 ]; then
    max=$(awk '{print $4}' "$work/runs" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    sustained_run "$max"
  fi
} | tee "$out"
