#!/usr/bin/env bash
# tests/docs/run.sh [FILE.md ...]: run every ```sh block of the docs against
# a real node, so the docs cannot drift from the code. Default: README.md and
# every docs/*.md.
#
# First, fast: every relative link and #anchor of those files must point at
# an existing file and heading (tests/docs/mdcheck.py links).
#
# Then, per file, in a fresh temporary working directory (so ./intake-data is
# new each time): the file's ```sh blocks, in order, in ONE bash process with
# `set -euo pipefail`, so variables, exported tokens and background nodes
# carry from block to block. In that shell:
#   - `intake` is the debug binary: INTAKE_BIN, default target/debug/intake
#     of this checkout (built with `cargo build -p intake --locked --quiet`
#     when missing);
#   - `cargo run --release -- ARGS` is a shell function that runs
#     `intake ARGS`, so the quick start needs no release build; any other
#     `cargo` call goes to the real cargo;
#   - `curl` is a function adding --fail-with-body, so a wrong path, field or
#     status fails the run. It leaves curl alone when the example asks for
#     -f itself or prints the status with -w/--write-out (an example showing
#     an error on purpose); otherwise such an example says `|| ...` with a
#     comment saying why;
#   - no INTAKE_* variable of the caller's environment is set;
#   - a node (`intake serve`, `intake manager`) that stops with an error
#     fails the file at once, rather than leaving a wait loop to time out.
# Before each file, 46802 and the ports its commands name (host:PORT) must
# be free, except NATS (4222) and PostgreSQL (5432), which must answer; a
# file that starts tansu needs it installed. After each file, and on any
# failure, every process it started is stopped (its process group: SIGTERM,
# then SIGKILL after 10 s) and the directory removed. A file still running
# after DOCS_FILE_TIMEOUT seconds (default 90) fails. The ports are in the
# kernel's ephemeral range, so another program may take one for a moment: a
# file that failed with "Address already in use" is run once more.
#
# A block preceded by the line `<!-- not run by tests/docs/run.sh: REASON -->`
# is skipped (README's first block: the foreground node and ./test.sh, which
# runs this script).
#
# On a failure: the file, the block's first line, the block and its output;
# exit status 1. On success: one line per file with the blocks run.
# DOCS_KEEP_OUTPUT=DIR keeps every block's output in DIR/FILE/out.N, to
# compare with the outputs the docs show in comments.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here="$root/tests/docs"
files=()
for f in "$@"; do
  [ -f "$f" ] || { echo "tests/docs/run.sh: no file $f" >&2; exit 1; }
  f=$(cd "$(dirname "$f")" && pwd)/$(basename "$f")
  files+=("${f#"$root"/}")
done
cd "$root"
[ ${#files[@]} -gt 0 ] || files=(README.md docs/*.md)
# A file per bash process may take this long before it counts as hung.
file_timeout=${DOCS_FILE_TIMEOUT:-90}
services=(4222 5432) # must answer, not be free

python3 "$here/mdcheck.py" links "${files[@]}" || {
  echo "tests/docs/run.sh: broken links above" >&2
  exit 1
}

if [ -n "${INTAKE_BIN-}" ]; then
  intake_bin=$INTAKE_BIN
  [ -x "$intake_bin" ] || {
    echo "tests/docs/run.sh: INTAKE_BIN=$intake_bin is not an executable" >&2
    exit 1
  }
else
  intake_bin=${CARGO_TARGET_DIR:-$root/target}/debug/intake
  if [ ! -x "$intake_bin" ]; then
    echo "building $intake_bin (cargo build -p intake --locked --quiet)" >&2
    cargo build -p intake --locked --quiet
  fi
fi
intake_bin=$(cd "$(dirname "$intake_bin")" && pwd)/$(basename "$intake_bin")

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

work=$(mktemp -d "${TMPDIR:-/tmp}/intake-docs.XXXXXX")
pgid=
stop_group() {
  [ -n "$pgid" ] || return 0
  kill -TERM -- "-$pgid" 2>/dev/null || true
  local i
  for i in $(seq 100); do
    kill -0 -- "-$pgid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$pgid" 2>/dev/null || true
  while kill -0 -- "-$pgid" 2>/dev/null; do sleep 0.1; done
  pgid=
}
trap 'stop_group; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

mkdir -p "$work/bin"
# `intake` for the examples: the binary; a node (serve, manager) that stops
# with an error leaves a note in $__out/node-failed, so the run fails at
# once instead of waiting on the node. Signals go on to the node, so `kill
# $!` and `wait $!` behave as with the binary itself.
cat >"$work/bin/intake" <<WRAPPER
#!/usr/bin/env bash
case \${1-} in
  serve | manager) ;;
  *) exec "$intake_bin" "\$@" ;;
esac
"$intake_bin" "\$@" &
child=\$!
trap 'kill -TERM \$child 2>/dev/null' TERM
trap 'kill -INT \$child 2>/dev/null' INT
while :; do
  wait \$child && status=0 || status=\$?
  kill -0 \$child 2>/dev/null || break
done
if [ \$status != 0 ]; then
  echo "intake \$* exited with status \$status" >>"\$__out/node-failed"
fi
exit \$status
WRAPPER
chmod +x "$work/bin/intake"
cat >"$work/prelude.sh" <<'PRELUDE'
# Sourced first by every file's script (see tests/docs/run.sh).
cargo() {
  if [ "${1-}" = run ] && [ "${2-}" = --release ] && [ "${3-}" = -- ]; then
    shift 3
    # In a subshell (`cargo run ... &`, a pipeline) exec, so that $! is the
    # node itself, as with the real `cargo run`, which execs the binary (so
    # the docs must not write `( cargo run ...; more )`).
    if ((BASH_SUBSHELL)); then exec intake "$@"; else intake "$@" || return; fi
  else
    command cargo "$@" || return
  fi
}
curl() {
  local a
  for a in "$@"; do
    case $a in
      --fail | --fail-with-body | -w | --write-out | -w?*) command curl "$@" || return; return ;;
      --*) ;;
      -*f*) command curl "$@" || return; return ;;
    esac
  done
  # `|| return`: a failure is reported at the example's line, not in here
  command curl --fail-with-body "$@" || return
}
__block() {
  exec >"$__out/out.$1" 2>&1
  echo "$1 $2" >"$__out/current"
}
trap 'echo "$LINENO" >"$__out/failed"' ERR
PRELUDE

# Runs the blocks of $file (already in $dir/out) and answers 0 when they
# passed; otherwise prints why on stderr. Sets `port_race` when a port was
# taken while the file ran (the ports are in the ephemeral range, so a
# client or a test elsewhere may hold one for a moment).
run_file() {
  local rc= n line started=$SECONDS deadline=$((SECONDS + file_timeout))
  port_race=
  (
    cd "$dir/cwd"
    for v in $(compgen -e | grep '^INTAKE_' || true); do unset "$v"; done
    export PATH="$work/bin:$PATH:$HOME/.cargo/bin"
    export __out="$dir/out"
    exec setsid bash -c 'set -euo pipefail; source "$1"; source "$2"' docs "$work/prelude.sh" "$dir/out/script.sh"
  ) </dev/null >"$dir/out/out.0" 2>&1 &
  pgid=$!
  while kill -0 "$pgid" 2>/dev/null; do
    if [ -s "$dir/out/node-failed" ]; then
      rc=node
      break
    elif [ "$SECONDS" -ge "$deadline" ]; then
      rc=timeout
      break
    fi
    sleep 0.1
  done
  if [ -z "$rc" ]; then
    wait "$pgid" && rc=0 || rc=$?
  fi
  read -r n line <"$dir/out/current" || { n=0; line=0; }
  stop_group
  if [ -n "${DOCS_KEEP_OUTPUT-}" ]; then
    mkdir -p "$DOCS_KEEP_OUTPUT/$name"
    cp "$dir"/out/* "$DOCS_KEEP_OUTPUT/$name/"
  fi
  if [ "$rc" = 0 ] && [ "$n" = done ]; then
    echo "ok $name: $nblocks blocks run$skipped_note ($((SECONDS - started)) s)"
    return 0
  fi
  grep -q 'Address already in use' "$dir"/out/out.* && port_race=1
  {
    echo
    case $rc in
      timeout) echo "FAIL $name:$line: block $n still running after ${file_timeout} s" ;;
      node) echo "FAIL $name:$line: a node stopped with an error while block $n ran: $(cat "$dir/out/node-failed")" ;;
      *) echo "FAIL $name:$line: block $n exited with status $rc" ;;
    esac
    if [ -s "$dir/out/failed" ] && [ "$n" != 0 ] && [ "$n" != done ]; then
      # the script line of the failed command, as a line of the markdown file
      local at marker
      read -r at <"$dir/out/failed"
      marker=$(grep -n "^__block $n " "$dir/out/script.sh" | cut -d: -f1)
      at=$((line + at - marker - 1))
      echo "the command that failed ($name:$at): $(sed -n "${at}p" "$file")"
    fi
    if [ "$n" != 0 ] && [ "$n" != done ]; then
      echo "--- the block ($name, from line $line)"
      cat "$dir/out/block.$n"
      echo "--- its output"
      cat "$dir/out/out.$n"
    else
      cat "$dir/out/out.0"
    fi
    echo
    echo "---"
  } >&2
  return 1
}

status=0
for file in "${files[@]}"; do
  name=${file#"$root"/}
  case $file in /*) ;; *) file="$root/$file" ;; esac
  dir="$work/run"
  for attempt in 1 2; do
    rm -rf "$dir"
    mkdir -p "$dir/cwd" "$dir/out"
    read -r nblocks nskipped ports < <(python3 "$here/mdcheck.py" blocks "$file" "$dir/out")
    skipped_note=
    [ "$nskipped" = 0 ] || skipped_note=", $nskipped skipped"
    if [ "$nblocks" = 0 ]; then
      echo "ok $name: 0 blocks$skipped_note"
      continue 2
    fi
    for port in $(printf '%s\n' 46802 $ports | sort -un); do
      if [[ " ${services[*]} " == *" $port "* ]]; then
        listening "$port" || {
          echo "FAIL $name: its examples need a service on 127.0.0.1:$port (4222 NATS with JetStream, 5432 PostgreSQL); nothing answers there" >&2
          status=1
          continue 3
        }
      elif listening "$port"; then
        echo "FAIL $name: port $port, which its examples use, is taken by another process; stop it first" >&2
        status=1
        continue 3
      fi
    done
    if grep -q '^[^#]*\btansu broker' "$dir/out/script.sh" &&
      ! PATH="$PATH:$HOME/.cargo/bin" command -v tansu >/dev/null; then
      echo "FAIL $name: its examples start tansu, which is not installed (cargo install tansu --version 0.6.0 --features dynostore --locked)" >&2
      status=1
      continue 2
    fi
    run_file && continue 2
    if [ "$attempt" = 1 ] && [ -n "$port_race" ]; then
      echo "$name: a port was taken by another process while it ran (above); running it once more" >&2
      sleep 1
      continue
    fi
    status=1
    break
  done
done
if [ "$status" = 0 ]; then
  echo "docs: ${#files[@]} files passed in $SECONDS s"
fi
exit $status
