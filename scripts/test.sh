#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, ESLint, unit and integration tests, and the end-to-end
# tests that drive the real server and capture binaries. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# ESLint over the browser code: the web app, its browser checks and the device's screen.
web/node_modules/.bin/eslint --config web/eslint.config.mjs web capture/screen
# The end-to-end tests run the real binaries, so build them first.
cargo build --workspace --bins --locked
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# One test at a time: the end-to-end tests run real pipelines and time crashes, which two
# cores shared between several of them would distort.
cargo test --workspace --locked -- --test-threads=1 2>&1 | tee "$log"
# One closing line over every test binary (cargo prints one "test result" line per binary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
