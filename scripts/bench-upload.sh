#!/usr/bin/env bash
# Uploads on loopback (issue 3): the latency from a segment's media being complete to the server's
# receipt (p50/p95 over a recording of BENCH_SECONDS, 720p at 4 Mbit/s), and the drain rate of a
# spool filled during an outage, with lessonlens-capture (1 and 2 uploads at a time) next to
# curl PUT of the same kind of files over one kept-alive connection. Prints two tables.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${BENCH_SECONDS:-60}"
source scripts/lib/bench-server.sh
VIDEO='[video]\nwidth = 1280\nheight = 720\nbitrate_kbps = 4000'

# 1. Receipt latency while recording with the server up.
capture_config "$VIDEO"
RUST_LOG=lessonlens_capture::upload=debug $BIN/lessonlens-capture --config "$W/capture.toml" \
  record once --teacher t --seconds "$SECS" > /dev/null 2> "$W/latency.log"
sed -n 's/.*segment acknowledged.*latency_ms=\([0-9.]*\).*/\1/p' "$W/latency.log" \
  | sort -n > "$W/latency.txt"
printf "%-34s %8s %10s %10s %10s\n" "receipt latency (loopback)" segments "p50 ms" "p95 ms" "max ms"
awk -v secs="$SECS" '{ v[NR] = $1 } END {
  p50 = v[int((NR - 1) * 0.50) + 1]; p95 = v[int((NR - 1) * 0.95) + 1];
  printf "%-34s %8d %10.1f %10.1f %10.1f\n", "720p30, 4 Mbit/s, " secs " s", NR, p50, p95, v[NR] }' "$W/latency.txt"

# 2. Fill the spool during an outage: the recording starts (the teacher's key is fetched), then
# the server is killed; everything stays spooled. Restarted afterwards (on new ports). Sets REC.
record_offline() {
  capture_config "$VIDEO"
  $BIN/lessonlens-capture --config "$W/capture.toml" record once --teacher t --seconds "$SECS" \
    --drain-seconds 0 > "$W/offline.json" 2>/dev/null &
  local pid=$!
  for _ in $(seq 100); do compgen -G "$W/spool/*/recording.json" > /dev/null && break; sleep 0.1; done
  stop_server
  wait $pid || true
  start_server
  REC=$(sed -n 's/.*"recording":"\([^"]*\)".*/\1/p' "$W/offline.json")
}
mb() { du -sb --apparent-size "$1" | awk '{ printf "%.1f", $1 / 1e6 }'; }

printf "\n%-34s %8s %10s %10s %10s\n" "drain after an outage" MB seconds "MB/s" "vs curl"
# The set for curl is taken out of the spool, so lessonlens-capture does not upload it.
record_offline; CURL_REC=$REC; mv "$W/spool/$CURL_REC" "$W/curlset"
rows=()
for c in 1 2; do
  record_offline
  size=$(mb "$W/spool/$REC")
  capture_config "upload_concurrency = $c\n$VIDEO"
  start=$(date +%s.%N)
  $BIN/lessonlens-capture --config "$W/capture.toml" drain --drain-seconds 600 2>/dev/null
  end=$(date +%s.%N)
  rows+=("lessonlens-capture, $c at a time|$size|$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')")
done

# curl: the same requests the uploader makes (hash header, client certificate), one connection.
{
  for f in "$W"/curlset/*.seg; do
    idx=$((10#$(basename "$f" .seg)))
    printf 'url = "https://127.0.0.1:%s/api/device/v1/recordings/%s/segments/%s"\nupload-file = "%s"\n' \
      "$DEVICE_PORT" "$CURL_REC" "$idx" "$f"
    printf 'header = "x-lessonlens-sha256: %s"\nheader = "content-type: application/octet-stream"\n' \
      "$(sha256sum "$f" | cut -d' ' -f1)"
    printf 'cert = "%s"\ncacert = "%s"\nsilent\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\nnext\n' \
      "$W/identity/identity.pem" "$W/identity/ca.pem"
  done
  f="$W/curlset/manifest.json"
  printf 'url = "https://127.0.0.1:%s/api/device/v1/recordings/%s/manifest"\nupload-file = "%s"\n' \
    "$DEVICE_PORT" "$CURL_REC" "$f"
  printf 'header = "x-lessonlens-sha256: %s"\nheader = "content-type: application/json"\n' \
    "$(sha256sum "$f" | cut -d' ' -f1)"
  printf 'cert = "%s"\ncacert = "%s"\nsilent\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' \
    "$W/identity/identity.pem" "$W/identity/ca.pem"
} > "$W/curl.conf"
size=$(mb "$W/curlset")
start=$(date +%s.%N)
curl -K "$W/curl.conf" > "$W/curl.codes"
end=$(date +%s.%N)
if grep -qv '^200$' "$W/curl.codes"; then echo "curl uploads failed: $(sort "$W/curl.codes" | uniq -c)" >&2; exit 1; fi
curl_secs=$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')
awk -v s="$size" -v t="$curl_secs" 'BEGIN { printf "%-34s %8s %10.2f %10.1f %10s\n", "curl PUT, 1 connection", s, t, s / t, "1.00" }'
for row in "${rows[@]}"; do
  IFS='|' read -r name size secs <<<"$row"
  awk -v n="$name" -v s="$size" -v t="$secs" -v cs="$size" -v ct="$curl_secs" -v c="$(mb "$W/curlset")" 'BEGIN {
    printf "%-34s %8s %10.2f %10.1f %9.2fx\n", n, s, t, s / t, (s / t) / (c / ct) }'
done
