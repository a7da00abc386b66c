#!/usr/bin/env bash
# Capture cost per recorded minute: lessonlens-capture (encode + seal + spool + upload to a local
# server) against a bare gst-launch-1.0 pipeline with the same encoder settings writing to a file.
# Prints a table of CPU seconds and peak RSS. Usage: scripts/bench-capture.sh [WIDTHxHEIGHT ...]
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=("${@:-1920x1080}")
SECS="${BENCH_SECONDS:-60}"
cargo build --release --locked -p lessonlens-server -p lessonlens-capture 2>/dev/null
BIN=target/release
W=$(mktemp -d)
trap 'kill $SERVER_PID 2>/dev/null || true; rm -rf "$W"' EXIT
mkdir -m 700 "$W/secrets"
cat > "$W/server.toml" <<TOML
listen = "127.0.0.1:0"
device_listen = "127.0.0.1:0"
data_dir = "$W/data"
master_key_file = "$W/secrets/master.key"
web_dir = "$PWD/web"
TOML
echo "bench-teacher-pw" | $BIN/lessonlens-server --config "$W/server.toml" user add t --display-name T --role teacher >/dev/null 2>&1
$BIN/lessonlens-server --config "$W/server.toml" serve > "$W/server.out" 2>/dev/null &
SERVER_PID=$!
for _ in $(seq 50); do grep -q listening "$W/server.out" && break; sleep 0.2; done
PORT=$(sed -n 's/^listening on https:\/\/127.0.0.1://p' "$W/server.out")
DEVICE_PORT=$(sed -n 's/^device API (mutual TLS) on https:\/\/127.0.0.1://p' "$W/server.out")
# The bench device enrols as a real one does: a one-time code, then its own key and certificate.
ENROLL=$($BIN/lessonlens-server --config "$W/server.toml" device enroll bench)
CODE=$(sed -n 's/^enrollment code for bench: //p' <<<"$ENROLL")
FINGERPRINT=$(sed -n 's/^school CA fingerprint (SHA-256) //p' <<<"$ENROLL")
cat > "$W/capture.toml" <<TOML
server_url = "https://127.0.0.1:$DEVICE_PORT"
identity_dir = "$W/identity"
spool_dir = "$W/spool"
TOML
echo "$CODE" | $BIN/lessonlens-capture --config "$W/capture.toml" enroll --url "https://127.0.0.1:$PORT" --ca-sha256 "$FINGERPRINT" >/dev/null 2>&1

printf "%-10s %-18s %12s %14s %12s\n" size run "cpu s/min" "peak RSS MB" "vs bare"
for size in "${SIZES[@]}"; do
  w=${size%x*}; h=${size#*x}
  cat > "$W/capture.toml" <<TOML
server_url = "https://127.0.0.1:$DEVICE_PORT"
identity_dir = "$W/identity"
spool_dir = "$W/spool"
[video]
width = $w
height = $h
bitrate_kbps = 4000
TOML
  /usr/bin/time -f "%U %S %M" -o "$W/ll.time" $BIN/lessonlens-capture --config "$W/capture.toml" \
    record once --teacher t --seconds "$SECS" >/dev/null 2>&1
  desc=$($BIN/lessonlens-capture --config "$W/capture.toml" pipeline 2>/dev/null \
    | sed "s|isofmp4mux name=mux fragment-duration=2000000000 ! appsink name=sink sync=false buffer-list=true|mp4mux name=mux fragment-duration=2000 ! filesink location=$W/bare.mp4|")
  # -e: Ctrl-C sends EOS, as the capture daemon does on stop.
  eval "/usr/bin/time -f '%U %S %M' -o '$W/bare.time' timeout -s INT $SECS gst-launch-1.0 -q -e $desc" >/dev/null 2>&1 || true
  # GNU time prefixes "Command exited with non-zero status" when timeout stops gst-launch.
  read -r lu ls lm < <(tail -n 1 "$W/ll.time"); read -r bu bs bm < <(tail -n 1 "$W/bare.time")
  awk -v s="$size" -v lu="$lu" -v ls="$ls" -v lm="$lm" -v bu="$bu" -v bs="$bs" -v bm="$bm" -v secs="$SECS" 'BEGIN {
    l=(lu+ls)*60/secs; b=(bu+bs)*60/secs;
    printf "%-10s %-18s %12.2f %14.1f %12s\n", s, "bare gst-launch", b, bm/1024, "1.00";
    printf "%-10s %-18s %12.2f %14.1f %11.2fx\n", s, "lessonlens-capture", l, lm/1024, l/b;
    printf "%-10s %-18s %12s %+14.1f\n", s, "RSS difference", "", (lm-bm)/1024 }'
done
