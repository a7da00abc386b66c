#!/usr/bin/env bash
# Ingest benchmark (issue 4): 10, 50 and 100 simulated devices uploading 4 Mbit/s of 2 s segments
# over mutual TLS to one release-built server on loopback. Prints a table (see
# tests/benches/ingest.rs); LESSONLENS_BENCH_DEVICES and LESSONLENS_BENCH_SECONDS change the runs.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release --locked --workspace --bins
RUST_LOG=warn cargo bench --locked -p lessonlens-e2e --bench ingest 2>/dev/null
