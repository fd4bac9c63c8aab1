#!/usr/bin/env bash
# ab-native.sh OLD_BIN NEW_BIN [SECONDS]  (ROUNDS=N, default 3) — native.sh
# for two builds of intake in the same run: each round runs native.sh once
# (one single-record comparison and the arrays) with the old binary, then
# with the new one, so both meet the same machine. Prints each round's
# ratios against the durable baseline and the medians per build. Build the
# old binary from a worktree, e.g.
#   git worktree add /tmp/old <commit> && cargo build --release --manifest-path /tmp/old/Cargo.toml -p intake
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
old=${1:?usage: ab-native.sh OLD_BIN NEW_BIN [SECONDS]}
new=${2:?usage: ab-native.sh OLD_BIN NEW_BIN [SECONDS]}
secs=${3:-8}
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
for round in $(seq "${ROUNDS:-3}"); do
  for side in old new; do
    bin=$old; [ $side = new ] && bin=$new
    echo "== round $round: $side ($bin)"
    NODE_BIN=$bin RUNS=1 "$here/native.sh" "$secs" | tee "$log/$side-$round"
    single=$(awk '/^ratio/ {print $2; exit}' "$log/$side-$round")
    arrays=$(awk '/^ratio/ {r=$2} END {print r}' "$log/$side-$round")
    echo "$single" >>"$log/$side-single"
    echo "$arrays" >>"$log/$side-arrays"
  done
done
median() { sort -n "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for side in old new; do
  echo "$side: single $(tr '\n' ' ' <"$log/$side-single")(median $(median "$log/$side-single")); arrays $(tr '\n' ' ' <"$log/$side-arrays")(median $(median "$log/$side-arrays"))"
done
