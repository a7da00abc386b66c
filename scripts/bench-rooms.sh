#!/usr/bin/env bash
# Rooms benchmarks (issue 16): click to recording with 100 other devices connected (p95 of 20
# starts), and the server's RSS and CPU with 500 idle device channels. Prints a table. Enrolling
# 500 devices takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release --locked --workspace --bins
cargo bench --locked -p lessonlens-e2e --bench rooms 2>/dev/null
