#!/usr/bin/env bash
# Talk time's cost on the device (issue 17): the capture service's CPU and peak RSS recording
# 720p30 with two microphones, talk time on against off, in alternating rounds. Prints a table.
# BENCH_SECONDS (default 60) and BENCH_ROUNDS (default 3) set the length and number of rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release --locked --workspace --bins
cargo bench --locked -p lessonlens-e2e --bench talk 2>/dev/null
