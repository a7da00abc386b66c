#!/usr/bin/env bash
# The main job: a school server on the embedded default (SQLite + a local folder) with a demo
# school (an admin, a teacher, a coach), a classroom device recording a 30-second lesson from test
# sources, uploaded sealed; then the classroom device's service with its screen, so that you can
# press Record, type the demo teacher's code and watch the new lesson appear in the web app. Prints
# the addresses, the demo logins and the code. Ctrl-C stops both.
#
#   DEMO_DIR   where the demo keeps its files (default ./demo-data; delete it to start afresh)
#   DEMO_PORT  HTTPS port of the web app (default 8443)
#   DEMO_DEVICE_PORT  the device API's port, mutual TLS (default 8444)
#   DEMO_SECONDS  length of the demo lesson (default 30)
#   DEMO_SCREEN_PORT  the device screen's loopback port (default 8765)
#   DEMO_CODE  the demo teacher's device code (default 2468)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

DIR="${DEMO_DIR:-$PWD/demo-data}"
PORT="${DEMO_PORT:-8443}"
DEVICE_PORT="${DEMO_DEVICE_PORT:-8444}"
SECONDS_TO_RECORD="${DEMO_SECONDS:-30}"
SCREEN_PORT="${DEMO_SCREEN_PORT:-8765}"
DEMO_CODE="${DEMO_CODE:-2468}"
mkdir -p "$DIR/secrets"
chmod 700 "$DIR/secrets"

cargo build --workspace --bins --locked
SERVER=target/debug/lessonlens-server
CAPTURE=target/debug/lessonlens-capture

cat > "$DIR/server.toml" <<TOML
listen = "127.0.0.1:$PORT"
device_listen = "127.0.0.1:$DEVICE_PORT"
data_dir = "$DIR/data"
master_key_file = "$DIR/secrets/master.key"
web_dir = "$PWD/web"
TOML

if [ ! -f "$DIR/data/lessonlens.db" ]; then
  echo "demo-admin-pw"   | $SERVER --config "$DIR/server.toml" user add admin   --display-name "Ada Admin"     --role admin
  echo "demo-teacher-pw" | $SERVER --config "$DIR/server.toml" user add teacher --display-name "Tom Teacher"   --role teacher
  echo "demo-coach-pw"   | $SERVER --config "$DIR/server.toml" user add coach   --display-name "Cleo Coach"    --role coach
fi

$SERVER --config "$DIR/server.toml" serve > "$DIR/server.out" 2> "$DIR/server.log" &
SERVER_PID=$!
trap 'kill $SERVER_PID 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q "listening on" "$DIR/server.out" 2>/dev/null && break; sleep 0.2; done
grep -q "listening on" "$DIR/server.out" || { echo "server did not start; see $DIR/server.log" >&2; exit 1; }

# demo_mode lets `record once --teacher` below start without the teacher's code; a school's
# devices leave it off, so that nobody can record in a teacher's name without their code.
cat > "$DIR/capture.toml" <<TOML
server_url = "https://127.0.0.1:$DEVICE_PORT"
identity_dir = "$DIR/device-identity"
spool_dir = "$DIR/spool"
control_addr = "127.0.0.1:$SCREEN_PORT"
demo_mode = true
TOML

# The classroom device enrols once, as an admin would set it up: a one-time code from the
# server, then the device makes its own key and gets its certificate (pinning the school CA).
if [ ! -f "$DIR/device-identity/identity.pem" ]; then
  ENROLL=$($SERVER --config "$DIR/server.toml" device enroll room-12)
  CODE=$(sed -n 's/^enrollment code for room-12: //p' <<<"$ENROLL")
  FINGERPRINT=$(sed -n 's/^school CA fingerprint (SHA-256) //p' <<<"$ENROLL")
  echo "$CODE" | $CAPTURE --config "$DIR/capture.toml" enroll --url "https://127.0.0.1:$PORT" --ca-sha256 "$FINGERPRINT"
fi

echo "Recording a ${SECONDS_TO_RECORD}-second lesson from test sources for teacher 'teacher'..."
$CAPTURE --config "$DIR/capture.toml" record once --teacher teacher --seconds "$SECONDS_TO_RECORD" 2> "$DIR/capture.log"

# The demo teacher chooses their device code, as a teacher does on their account page.
COOKIES=$(mktemp)
trap 'kill $SERVER_PID 2>/dev/null || true; rm -f "$COOKIES"' EXIT
curl -sSf --cacert "$DIR/data/tls/ca.pem" -c "$COOKIES" -H 'content-type: application/json' \
  -d '{"username":"teacher","password":"demo-teacher-pw"}' "https://localhost:$PORT/api/login" > /dev/null
curl -sSf --cacert "$DIR/data/tls/ca.pem" -b "$COOKIES" -X PUT -H 'content-type: application/json' \
  -d "{\"code\":\"$DEMO_CODE\",\"password\":\"demo-teacher-pw\"}" "https://localhost:$PORT/api/me/device-code" > /dev/null
rm -f "$COOKIES"

# The classroom device's service, with its screen on the loopback address.
$CAPTURE --config "$DIR/capture.toml" run > "$DIR/capture-service.out" 2> "$DIR/capture-service.log" &
CAPTURE_PID=$!
trap 'kill $CAPTURE_PID $SERVER_PID 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q "control API on" "$DIR/capture-service.out" 2>/dev/null && break; sleep 0.2; done
grep -q "control API on" "$DIR/capture-service.out" || {
  echo "the capture service did not start (is port $SCREEN_PORT in use? DEMO_SCREEN_PORT changes it); see $DIR/capture-service.log" >&2
  exit 1
}

cat <<MSG

lessonlens is running: https://localhost:$PORT/
  $(grep "fingerprint" "$DIR/server.out")
  The certificate is signed by the demo school's own CA ($DIR/data/tls/ca.pem): your browser will
  warn until you trust that CA; check the fingerprint above before you do.

Demo logins
  teacher / demo-teacher-pw   (owns the recorded lesson: open it and press play)
  coach   / demo-coach-pw
  admin   / demo-admin-pw     (cannot watch unshared lessons)

The classroom device's screen: http://127.0.0.1:$SCREEN_PORT/
  Press Record and type the demo teacher's code, $DEMO_CODE. Stop the lesson, and it appears in
  the teacher's library a few seconds later.

Logs: $DIR/server.log, $DIR/capture.log, $DIR/capture-service.log. Press Ctrl-C to stop.
MSG
wait $SERVER_PID
