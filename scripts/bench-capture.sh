#!/usr/bin/env bash
# Capture cost per recorded minute: lessonlens-capture (encode + seal + spool + upload to a local
# server) against a bare gst-launch-1.0 pipeline with the same encoder settings writing to a file.
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
  desc=$($BIN/lessonlens-capture --config "$W/capture.toml" pipeline 2>/dev/null \
    | sed "s|isofmp4mux name=mux fragment-duration=2000000000 ! appsink name=sink sync=false buffer-list=true|mp4mux name=mux fragment-duration=2000 ! filesink location=$W/bare.mp4|")
  # The poster branch is lessonlens' own work (one JPEG per recording): the bare run leaves it out.
  desc=${desc/frames. ! queue name=posterq*async=false /}
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
