#!/usr/bin/env bash
# Retention and leaving at scale (issue 6): offboarding a teacher with 100 hours of video (time to
# the key shred, to the full purge, peak RSS) and a retention sweep over 1,000,000 segment rows.
# Prints a table. Needs no GStreamer or browser.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --locked -p lessonlens-server --bench offboarding 2>/dev/null
