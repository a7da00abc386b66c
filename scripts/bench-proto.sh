#!/usr/bin/env bash
# Envelope seal/open throughput (criterion, one thread) next to OpenSSL's AES-256-GCM on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p lessonlens-proto --bench envelope -- --warm-up-time 1 --measurement-time 3 2>/dev/null \
  | awk '/^envelope\//{name=$1} /thrpt:/ && name {sub(/.*thrpt: */, ""); printf "%-22s %s\n", name, $0; name=""}'
echo
echo "openssl speed -evp aes-256-gcm (16 KiB blocks, one core):"
openssl speed -evp aes-256-gcm -seconds 2 2>/dev/null | tail -1
