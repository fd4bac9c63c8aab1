# Sourced by ./test.sh: installs and starts what the tests need, so that a
# fresh machine of this kind (Debian, a Rust toolchain, root or sudo) passes
# `./test.sh` with no other step. Idempotent and quiet: what is present is
# used as it is, and each thing installed or started prints one line.
#
# - tansu, the Kafka-protocol broker of the forwarding tests: `cargo install
#   tansu --version 0.6.0 --features dynostore --locked`, built in the
#   background (about 20 minutes on 2 cores) while the workspace compiles;
#   reused when on PATH or in ~/.cargo/bin. `wait_for_tansu` joins it.
# - Debian packages when their command is missing: chromium (the dashboard
#   test), nodejs and npm, nats-server, postgresql, curl and openssl (the
#   docs' examples), python3 with pip.
# - the PyPI package of the CKafka test (the Tencent Cloud SDK), and the npm
#   packages of tests/dashboard.
# - services: NATS with JetStream on 127.0.0.1:4222 and PostgreSQL on
#   127.0.0.1:5432 (user postgres, trust, database test). When something
#   answers there it is used; otherwise one is started for the run from
#   the Debian packages, in a temporary directory, and stopped at exit.

setup_dir=${CARGO_TARGET_DIR:-$PWD/target}/test-setup
mkdir -p "$setup_dir"
setup_started=()  # cleanup commands of what this run started

say() { printf 'test.sh: %s\n' "$*" >&2; }

cleanup_setup() {
  local i
  for ((i = ${#setup_started[@]} - 1; i >= 0; i--)); do
    eval "${setup_started[$i]}" >/dev/null 2>&1 || true
  done
}
trap cleanup_setup EXIT

# Runs a command as root: directly, or through sudo.
as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    say "need root (or sudo) to run: $*"
    return 1
  fi
}

apt_updated=
apt_install() {
  say "installing Debian packages: $*"
  if [ -z "$apt_updated" ]; then
    as_root apt-get update -qq >"$setup_dir/apt.log" 2>&1 || { cat "$setup_dir/apt.log" >&2; return 1; }
    apt_updated=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
    >>"$setup_dir/apt.log" 2>&1 || { tail -n 30 "$setup_dir/apt.log" >&2; return 1; }
}

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_answers() {
  local port=$1 what=$2 i
  for i in $(seq 200); do
    answers "$port" && return 0
    sleep 0.1
  done
  say "$what did not start on 127.0.0.1:$port"
  return 1
}

# --- Debian packages -------------------------------------------------------
missing=()
command -v curl >/dev/null || missing+=(curl)
command -v openssl >/dev/null || missing+=(openssl)
command -v python3 >/dev/null || missing+=(python3)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
[ -n "${CHROMIUM:-}" ] || command -v chromium >/dev/null || missing+=(chromium)
# Only when npm is absent: Debian's nodejs conflicts with a Node.js the
# machine already has.
command -v npm >/dev/null || missing+=(nodejs npm)
[ -x /usr/sbin/nats-server ] || missing+=(nats-server)
if ! answers 5432 && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  missing+=(postgresql)
fi
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"

# --- tansu -----------------------------------------------------------------
cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
case ":$PATH:" in *":$cargo_bin:"*) ;; *) export PATH="$PATH:$cargo_bin" ;; esac
tansu_job=
if ! command -v tansu >/dev/null; then
  say "installing tansu 0.6.0 with cargo install, in the background (about 20 minutes on 2 cores; log: $setup_dir/tansu.log)"
  # Its own target directory, so a run cut short resumes the build.
  cargo install tansu --version 0.6.0 --features dynostore --locked \
    --target-dir "$setup_dir/tansu-build" >"$setup_dir/tansu.log" 2>&1 &
  tansu_job=$!
  setup_started+=("kill $tansu_job")
fi

# Waits for the background tansu build, if one runs; fails when it failed.
wait_for_tansu() {
  [ -n "$tansu_job" ] || return 0
  say "waiting for the tansu build"
  if ! wait "$tansu_job"; then
    tail -n 30 "$setup_dir/tansu.log" >&2
    say "cargo install tansu failed (above)"
    return 1
  fi
  tansu_job=
  rm -rf "$setup_dir/tansu-build"
  say "tansu installed: $(command -v tansu)"
}

# --- PyPI and npm packages -------------------------------------------------
if ! python3 -c 'import tencentcloud.common' 2>/dev/null; then
  say "installing the PyPI package tencentcloud-sdk-python-common"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore tencentcloud-sdk-python-common
fi
dashboard=tests/dashboard
if [ ! -f "$dashboard/node_modules/.package-lock.json" ] ||
  [ "$dashboard/package-lock.json" -nt "$dashboard/node_modules/.package-lock.json" ]; then
  say "installing the npm packages of $dashboard"
  (cd "$dashboard" && npm ci --no-audit --no-fund --silent)
fi

# --- services --------------------------------------------------------------
if ! answers 4222; then
  say "starting nats-server with JetStream on 127.0.0.1:4222 for this run"
  mkdir -p "$setup_dir/nats"
  /usr/sbin/nats-server -a 127.0.0.1 -p 4222 -js -sd "$setup_dir/nats" \
    >"$setup_dir/nats.log" 2>&1 &
  setup_started+=("kill $!; wait $!; rm -rf '$setup_dir/nats'")
  wait_answers 4222 nats-server
fi

if ! answers 5432; then
  say "starting a throwaway PostgreSQL on 127.0.0.1:5432 (user postgres, trust, database test) for this run"
  pg_bin=$(dirname "$(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -n 1)")
  pg_dir=$(mktemp -d)
  pg_as=()
  if [ "$(id -u)" = 0 ]; then
    # initdb refuses to run as root: the cluster belongs to the postgres
    # user the Debian package made.
    chown postgres: "$pg_dir"
    pg_as=(runuser -u postgres --)
  fi
  "${pg_as[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U postgres --auth=trust -E UTF8 \
    >"$setup_dir/postgres.log" 2>&1 || { cat "$setup_dir/postgres.log" >&2; false; }
  "${pg_as[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w \
    -o "-p 5432 -c listen_addresses=127.0.0.1 -k $pg_dir" start >>"$setup_dir/postgres.log" 2>&1 ||
    { cat "$setup_dir/postgres.log" "$pg_dir/server.log" >&2; false; }
  setup_started+=("${pg_as[*]} $pg_bin/pg_ctl -D $pg_dir/data -m fast -w stop; rm -rf $pg_dir")
  "${pg_as[@]}" "$pg_bin/createdb" -h 127.0.0.1 -p 5432 -U postgres test
fi
