#!/usr/bin/env bash
# schemathesis (PyPI) against a live node: it reads the spec the node serves
# at /openapi.json, generates valid and invalid requests for every
# operation, and runs every check of its (status codes, content types,
# response schemas, valid data accepted, invalid data refused, no 5xx,
# auth enforced). The node runs with auth = "tokens"; schemathesis gets an
# admin token. The exceptions, with their reasons, are in
# schemathesis.toml beside this script.
#
#   tests/schemathesis/run.sh [MAX_EXAMPLES]     (default 50 per operation)
#
# NODE_BIN picks the binary (default: a debug build of this checkout).
# Exits non-zero on any failure, or if the node logged a panic.
set -euo pipefail
cd "$(dirname "$0")/../.."
examples=${1:-50}
port=${SCHEMATHESIS_PORT:-47911}
here=tests/schemathesis

python3 -c "import schemathesis" 2>/dev/null ||
  python3 -m pip install --quiet --disable-pip-version-check "schemathesis==4.32.5"
if [ -z "${NODE_BIN:-}" ]; then
  cargo build --quiet --locked -p intake
  NODE_BIN=${CARGO_TARGET_DIR:-target}/debug/intake
fi

work=$(mktemp -d)
admin="schemathesis-admin-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
INTAKE_AUTH=tokens INTAKE_ADMIN_TOKEN=$admin \
  "$NODE_BIN" serve --listen "127.0.0.1:$port" --data-dir "$work/data" >"$work/node.log" 2>&1 &
node=$!
trap 'kill $node 2>/dev/null; wait $node 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.1
done

status=0
python3 -m schemathesis.cli --config-file "$here/schemathesis.toml" run --no-color \
  --max-examples "$examples" \
  -H "Authorization: Bearer $admin" \
  "http://127.0.0.1:$port/openapi.json" || status=$?
if grep -n "panicked" "$work/node.log"; then
  echo "the node panicked (above)" >&2
  status=1
fi
kill -0 $node 2>/dev/null || { echo "the node died:" >&2; tail -20 "$work/node.log" >&2; status=1; }
exit $status
