#!/usr/bin/env bash
# Web app benchmarks (issue 5): time to first frame after pressing play (p50 over 20 page loads,
# loopback, Debian's Chromium) and the recording page's weight. Prints a table.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release --locked --workspace --bins
cargo bench --locked -p lessonlens-e2e --bench web 2>/dev/null
