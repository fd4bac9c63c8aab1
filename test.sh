#!/usr/bin/env bash
# Every test, on a fresh machine too: tests/setup.sh installs and starts
# what the tests need (tansu, Chromium, Node packages, the Tencent SDK,
# NATS and PostgreSQL when none answers), then the Rust workspace, the
# shell examples of README.md and docs/, and the dashboard end to end in
# headless Chromium. Arguments go to cargo (e.g. --locked).
set -euo pipefail
cd "$(dirname "$0")"
source tests/setup.sh

# The workspace builds while tansu may still be building in the background.
cargo test --workspace --no-run "$@"
wait_for_tansu
cargo test --workspace "$@"

# The docs' examples and the dashboard test run the debug binary.
cargo build -p intake "$@"
tests/docs/run.sh
(cd tests/dashboard && npm test)
