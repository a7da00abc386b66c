#!/usr/bin/env bash
# Device screen benchmarks (issue 15): Start to "Recording" (p95 over 10 starts), the level meter's
# latency (tone to screen), and the capture service's CPU and peak RSS while recording with the
# screen open against without it. Prints a table. BENCH_SECONDS (default 45) and BENCH_ROUNDS
# (default 2) set the length and number of the cost runs.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release --locked --workspace --bins
cargo bench --locked -p lessonlens-e2e --bench screen 2>/dev/null
