# Sourced by forward.sh and ack-sink.sh, with $root, $kind and $port set:
# builds intake and producer_loop, starts the broker (NATS: $NATS_URL or
# nats://127.0.0.1:4222; Kafka: $KAFKA_BROKERS, or a tansu broker with
# in-memory storage on $port + 1) and an intake node on $port, and sets
# $target, $loop_bin, $work, $server and $url. Everything started is
# stopped, and $work removed, on exit.
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
