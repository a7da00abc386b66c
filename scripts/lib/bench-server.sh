# Sourced by the capture benchmarks: builds release binaries, starts a server with teacher `t` in
# a temp folder $W, and enrols device `bench` the way a real one enrols (a one-time code, then its
# own key and certificate). Sets BIN, W, PORT, DEVICE_PORT; `start_server` starts it again (new
# ports) after `stop_server`; `capture_config EXTRA` writes $W/capture.toml.
cargo build --release --locked -p lessonlens-server -p lessonlens-capture 2>/dev/null
BIN=target/release
W=$(mktemp -d)
SERVER_PID=
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

start_server() {
  $BIN/lessonlens-server --config "$W/server.toml" serve > "$W/server.out" 2>/dev/null &
  SERVER_PID=$!
  for _ in $(seq 50); do grep -q "device API" "$W/server.out" && break; sleep 0.2; done
  PORT=$(sed -n 's/^listening on https:\/\/127.0.0.1://p' "$W/server.out")
  DEVICE_PORT=$(sed -n 's/^device API (mutual TLS) on https:\/\/127.0.0.1://p' "$W/server.out")
}

stop_server() {
  kill -9 "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
}

# demo_mode: the benchmarks record by username (`record once --teacher`).
capture_config() {
  printf 'server_url = "https://127.0.0.1:%s"\nidentity_dir = "%s"\nspool_dir = "%s"\ndemo_mode = true\n%b\n' \
    "$DEVICE_PORT" "$W/identity" "$W/spool" "${1:-}" > "$W/capture.toml"
}

start_server
ENROLL=$($BIN/lessonlens-server --config "$W/server.toml" device enroll bench)
CODE=$(sed -n 's/^enrollment code for bench: //p' <<<"$ENROLL")
FINGERPRINT=$(sed -n 's/^school CA fingerprint (SHA-256) //p' <<<"$ENROLL")
capture_config
echo "$CODE" | $BIN/lessonlens-capture --config "$W/capture.toml" enroll --url "https://127.0.0.1:$PORT" --ca-sha256 "$FINGERPRINT" >/dev/null 2>&1
