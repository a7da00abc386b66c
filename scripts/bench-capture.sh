#!/usr/bin/env bash
# Capture cost per recorded minute: lessonlens-capture (encode + seal + spool + upload to a local
# server) against a bare gst-launch-1.0 pipeline: the same sources and encoder settings without
# lessonlens' own work, writing to a file (`lessonlens-capture pipeline --bare`). Fails if that
# baseline ever runs lessonlens' own work again.
# Prints a table of CPU seconds and peak RSS. Usage: scripts/bench-capture.sh [WIDTHxHEIGHT ...]
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=("${@:-1920x1080}")
SECS="${BENCH_SECONDS:-60}"
source scripts/lib/bench-server.sh

printf "%-10s %-18s %12s %14s %12s\n" size run "cpu s/min" "peak RSS MB" "vs bare"
for size in "${SIZES[@]}"; do
  w=${size%x*}; h=${size#*x}
  capture_config "[video]\nwidth = $w\nheight = $h\nbitrate_kbps = 4000"
  /usr/bin/time -f "%U %S %M" -o "$W/ll.time" $BIN/lessonlens-capture --config "$W/capture.toml" \
    record once --teacher t --seconds "$SECS" >/dev/null 2>&1
  # The baseline is the same capture without lessonlens' own work (poster frame, preview, meter,
  # talk time, sealing), as the capture binary itself describes it; it must stay that.
  full=$($BIN/lessonlens-capture --config "$W/capture.toml" pipeline)
  desc=$($BIN/lessonlens-capture --config "$W/capture.toml" pipeline --bare "$W/bare.mp4")
  for own in jpegenc appsink level valve tee isofmp4mux; do
    if grep -qw -- "$own" <<<"$desc"; then
      echo "bench-capture: the bare pipeline still runs $own, which is lessonlens' own work; the comparison would mean nothing" >&2
      exit 1
    fi
  done
  venc=$(grep -oE '(nvh264enc|vah264enc|vaapih264enc|qsvh264enc|v4l2h264enc|x264enc|openh264enc) [^!]*' <<<"$full" || true)
  if [ -z "$venc" ] || ! grep -qF -- "$venc" <<<"$desc"; then
    echo "bench-capture: the bare pipeline does not encode as the capture does ($venc)" >&2
    exit 1
  fi
  # -e: Ctrl-C sends EOS, as the capture daemon does on stop.
  eval "/usr/bin/time -f '%U %S %M' -o '$W/bare.time' timeout -s INT $SECS gst-launch-1.0 -q -e $desc" >/dev/null 2>&1 || true
  if [ ! -s "$W/bare.mp4" ]; then
    echo "bench-capture: the bare pipeline recorded nothing; run it by hand: gst-launch-1.0 -e $desc" >&2
    exit 1
  fi
  rm -f "$W/bare.mp4"
  # GNU time prefixes "Command exited with non-zero status" when timeout stops gst-launch.
  read -r lu ls lm < <(tail -n 1 "$W/ll.time"); read -r bu bs bm < <(tail -n 1 "$W/bare.time")
  awk -v s="$size" -v lu="$lu" -v ls="$ls" -v lm="$lm" -v bu="$bu" -v bs="$bs" -v bm="$bm" -v secs="$SECS" 'BEGIN {
    l=(lu+ls)*60/secs; b=(bu+bs)*60/secs;
    printf "%-10s %-18s %12.2f %14.1f %12s\n", s, "bare gst-launch", b, bm/1024, "1.00";
    printf "%-10s %-18s %12.2f %14.1f %11.2fx\n", s, "lessonlens-capture", l, lm/1024, l/b;
    printf "%-10s %-18s %12s %+14.1f\n", s, "RSS difference", "", (lm-bm)/1024 }'
done
