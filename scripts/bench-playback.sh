#!/usr/bin/env bash
# Playback benchmark (issue 4): segments served by lessonlens-server (session check, decryption in
# memory) against nginx serving the same plaintext files over TLS, both measured with wrk on
# loopback. Prints a table (see tests/benches/playback.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if ! command -v wrk >/dev/null || [ ! -x /usr/sbin/nginx ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nginx-light wrk >/dev/null
  # Debian starts the packaged nginx service; the benchmark runs its own.
  $SUDO systemctl disable --now nginx >/dev/null 2>&1 || $SUDO service nginx stop >/dev/null 2>&1 || true
fi
cargo build --release --locked --workspace --bins
cargo bench --locked -p lessonlens-e2e --bench playback 2>/dev/null
