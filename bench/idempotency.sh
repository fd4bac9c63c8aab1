#!/usr/bin/env bash
# idempotency.sh [SECONDS]  (SECS=N the same, default 8; ROUNDS=N, default 3;
# KEYS=N replayed keys, default 1000; CONNS=N, default 64; NODE_BIN=PATH runs
# that intake binary instead of building one) — the cost of exactly-once
# keys on the native push path, on one node, fsync = always (the default).
# Each round runs three wrk -t1 -c64 loads of one ~200-byte JSON record per
# request (idempotency.lua), each on its own one-partition stream so that
# one load's keys do not weigh on another's:
#   1. plain  (bench_plain):  no key, the baseline;
#   2. keyed  (bench_keyed):  a fresh Idempotency-Key per request;
#   3. replay (bench_replay): KEYS keys pushed once (8 curl clients) just
#      before the load, then only those keys with the same body, so every
#      request is answered from the table and writes nothing.
# Prints requests/s of each load, keyed/plain and replay/keyed per round and
# their medians; checks that every answer was 2xx, that the replay load
# wrote no record and that the keyed load wrote one per request; ends with
# each stream's `dedup` object and the node's RSS.
# Needs wrk (apt-get install wrk). Figures go to stdout and bench/results/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
secs=${1:-${SECS:-8}}
rounds=${ROUNDS:-3}
keys=${KEYS:-1000}
port=${PORT:-46802}
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
for s in bench_plain bench_keyed bench_replay; do
  curl -sf -o /dev/null -XPOST "$url/v1/streams" -H 'content-type: application/json' -d "{\"name\":\"$s\"}"
done
# The body idempotency.lua sends, byte for byte (a replay must match it).
body='{"device":"d-17","temp":21.5,"ts":1700000000000,"note":"'$(printf 'x%.0s' $(seq 140))'"}'
mkdir -p "$root/bench/results"
out="$root/bench/results/idempotency-$(date +%Y%m%d-%H%M%S).txt"
records() { # STREAM -> records stored
  curl -sf "$url/v1/streams/$1" | python3 -c 'import json,sys; print(sum(p["next_offset"] for p in json.load(sys.stdin)["status"]))'
}
dedup() { curl -sf "$url/v1/streams/$1" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["dedup"]))'; }
load() { # MODE STREAM PREFIX -> "req/s requests non2xx socket-errors", wrk's output in $data/wrk-MODE
  MODE=$1 STREAM=$2 PREFIX=$3 KEYS=$keys wrk -t1 -c"$conns" -d"${secs}s" -s "$here/idempotency.lua" "$url" >"$data/wrk-$1"
  awk '/Requests\/sec/ {rps=$2} / requests in / {n=$1} /Non-2xx/ {bad=$NF}
       /Socket errors/ {gsub(",", ""); err=$4+$6+$8+$10}
       END {printf "%s %d %d %d\n", rps, n, bad, err}' "$data/wrk-$1"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
{
  echo "== one ~200-byte JSON record per request, fsync always, wrk -t1 -c$conns -d${secs}s, $rounds rounds, $keys replayed keys"
  : >"$data/keyed-ratios"
  : >"$data/replay-ratios"
  for round in $(seq "$rounds"); do
    read -r plain plain_n plain_bad plain_err < <(load plain bench_plain "")
    before=$(records bench_keyed)
    read -r keyed keyed_n keyed_bad keyed_err < <(load keyed bench_keyed "r$round-")
    keyed_written=$(( $(records bench_keyed) - before ))
    # KEYS first-time requests, then the replay load on exactly those keys.
    prefix="replay-r$round-"
    pushed=$(seq 0 $((keys - 1)) | xargs -P 8 -I{} curl -s -o /dev/null -w '%{http_code}\n' -XPOST \
      "$url/v1/streams/bench_replay/records" -H 'content-type: application/json' \
      -H "idempotency-key: $prefix{}" -d "$body" | grep -c '^200$' || true)
    again=$(curl -s -o /dev/null -D - -XPOST "$url/v1/streams/bench_replay/records" -H 'content-type: application/json' \
      -H "idempotency-key: ${prefix}0" -d "$body" | tr -d '\r' | awk -F': ' 'tolower($1)=="idempotent-replayed" {print $2}')
    before=$(records bench_replay)
    read -r replay replay_n replay_bad replay_err < <(load replay bench_replay "$prefix")
    replay_written=$(( $(records bench_replay) - before ))
    k=$(awk -v a="$keyed" -v b="$plain" 'BEGIN{printf "%.3f", a/b}')
    r=$(awk -v a="$replay" -v b="$keyed" 'BEGIN{printf "%.3f", a/b}')
    echo "$k" >>"$data/keyed-ratios"
    echo "$r" >>"$data/replay-ratios"
    echo "round $round: plain $plain req/s, keyed $keyed req/s, replay $replay req/s; keyed/plain $k, replay/keyed $r"
    echo "  plain:  $plain_n requests, $plain_bad non-2xx, $plain_err socket errors"
    echo "  keyed:  $keyed_n requests, $keyed_bad non-2xx, $keyed_err socket errors, $keyed_written records written"
    echo "  replay: $pushed/$keys keys pushed first (200), a second push of one answered Idempotent-Replayed: ${again:-absent};" \
      "$replay_n requests, $replay_bad non-2xx, $replay_err socket errors, $replay_written records written"
  done
  echo "median keyed/plain $(median <"$data/keyed-ratios"), median replay/keyed $(median <"$data/replay-ratios")"
  for s in bench_plain bench_keyed bench_replay; do
    echo "$s: $(records "$s") records, dedup $(dedup "$s")"
  done
  echo "node at the end: RSS $(awk '/VmRSS/ {print int($2/1024)}' /proc/$pid/status) MiB"
} | tee "$out"
