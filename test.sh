#!/usr/bin/env bash
# Every test: the Rust workspace, then the dashboard end to end in headless
# Chromium (tests/dashboard). Arguments go to cargo test (e.g. --locked).
set -euo pipefail
cd "$(dirname "$0")"
cargo test --workspace "$@"
# The dashboard test runs the debug binary that cargo test built.
cargo build -p intake "$@"
cd tests/dashboard
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund
npm test
