// The device screen: what a teacher sees on the classroom recorder. It follows the capture
// service's state through one event stream (/v1/events) and never claims "Recording" on its own:
// the service says "recording" only once the first segment is sealed into the spool.

const $ = (id) => document.getElementById(id);

// How long the keypad keeps typed digits without a touch, and the meter's floor.
const PIN_IDLE_MS = 30_000;
const METER_FLOOR_DB = -60;

let status = null;
// What the screen shows on top of the service's state: the keypad, or "Starting…" while the
// start request is on its way.
let local = null;
let code = "";
let pinTimer = null;
let previewTimer = null;
let previewUrl = null;
let dismissed = null;

function clock() {
  const now = new Date();
  $("clock").textContent = now.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });
  $("clock").dateTime = now.toISOString();
}

const gb = (bytes) =>
  bytes >= 1e9 ? `${(bytes / 1e9).toFixed(1)} GB` : `${Math.max(1, Math.round(bytes / 1e6))} MB`;

function duration(seconds) {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = String(seconds % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

// Which view is on screen.
function view() {
  if (local === "pin") return "pin";
  const state = status?.state ?? "idle";
  if (local === "starting" || state !== "idle") return "lesson";
  const last = status?.last_recording;
  if (last && last.recording !== dismissed) return "after";
  return "idle";
}

function show(name) {
  for (const v of ["idle", "pin", "lesson", "after"]) $(v).hidden = v !== name;
  const state = local === "starting" && status?.state === "idle" ? "starting" : status?.state ?? "idle";
  document.body.dataset.state = name === "lesson" ? state : name;
}

// Problems as short paragraphs: what happened in bold, then the detail and what to do.
function problems(target, list) {
  target.replaceChildren(
    ...list.map(([head, detail]) => {
      const p = document.createElement("p");
      const b = document.createElement("strong");
      b.textContent = head;
      p.append(b, detail ? ` ${detail}` : "");
      return p;
    }),
  );
}

const stoppedByItself = (s) => (s.last_error ? [["The last recording stopped by itself.", s.last_error]] : []);

function renderIdle(s) {
  // A booked lesson's slot has begun: a tap on Record (or the button) starts it, no code needed.
  $("booked").hidden = !s.booked;
  $("booked").textContent = s.booked
    ? `${s.booked.teacher_name}'s lesson is booked: tap Record or press the button to start.`
    : "";
  // Someone else teaching in the booked slot (cover) records their own lesson with their code.
  $("not-booked").hidden = !s.booked;
  $("not-booked").textContent = s.booked ? `Not ${s.booked.teacher_name}? Type your code` : "";
  const n = s.recordings_waiting;
  $("backlog").textContent = n
    ? `${n} ${n === 1 ? "lesson" : "lessons"} waiting to upload, ${gb(s.bytes_waiting)}`
    : "All lessons are uploaded.";
  const list = stoppedByItself(s);
  if (s.device_refused) list.unshift(["This device cannot upload.", s.device_refused]);
  for (const c of s.checks.filter((c) => !c.ok)) list.push([`Problem: ${c.name}.`, c.detail]);
  if (s.notice) list.unshift([s.notice, ""]);
  problems($("problems"), list);
}

function renderLesson(s) {
  const state = local === "starting" && s.state === "idle" ? "starting" : s.state;
  const words = {
    starting: "Starting…",
    recording: "Recording",
    paused: "Paused: nothing is being recorded",
    stopping: "Saving…",
  };
  $("lesson-state").textContent = words[state] ?? "Starting…";
  $("elapsed").textContent = duration(s.elapsed_seconds ?? 0);
  $("teacher").textContent = s.teacher_name ? s.teacher_name : "";
  // Started from the web app: the room knows, and says by whom.
  $("started-by").hidden = !s.started_by;
  $("started-by").textContent = s.started_by ? `Started from the web by ${s.started_by}` : "";
  $("offline").hidden = !s.offline;
  $("starting-note").hidden = state !== "starting";
  $("pause").hidden = state !== "recording";
  $("resume").hidden = state !== "paused";
  $("stop").hidden = !(state === "recording" || state === "paused");
  $("warnings").replaceChildren(
    ...s.warnings.map((w) => {
      const p = document.createElement("p");
      p.textContent = w.message;
      return p;
    }),
  );
  renderLevels(s.levels);
  preview(state === "recording" || state === "starting");
}

function renderLevels(levels) {
  const meters = $("meters");
  for (const l of levels) {
    let m = meters.querySelector(`[data-source="${CSS.escape(l.source)}"]`);
    if (!m) {
      m = document.createElement("div");
      m.className = "meter";
      m.dataset.source = l.source;
      m.setAttribute("role", "meter");
      m.setAttribute("aria-label", `Sound level: ${l.source}`);
      m.setAttribute("aria-valuemin", String(METER_FLOOR_DB));
      m.setAttribute("aria-valuemax", "0");
      const bar = document.createElement("div");
      bar.className = "bar";
      const label = document.createElement("span");
      label.className = "meter-label";
      label.textContent = l.source === "microphone" ? "Microphone" : l.source;
      m.append(bar, label);
      meters.append(m);
    }
    const db = Math.max(METER_FLOOR_DB, Math.min(0, l.peak_db));
    m.setAttribute("aria-valuenow", db.toFixed(0));
    m.querySelector(".bar").style.width = `${((db - METER_FLOOR_DB) / -METER_FLOOR_DB) * 100}%`;
  }
  if (!levels.length) meters.replaceChildren();
}

// A few frames a second from the running recording, fetched only while shown.
function preview(on) {
  if (on && !previewTimer) {
    previewTimer = setInterval(async () => {
      const res = await fetch("/v1/preview.jpg").catch(() => null);
      if (!res || res.status !== 200) return;
      const url = URL.createObjectURL(await res.blob());
      $("preview").src = url;
      $("preview").hidden = false;
      $("preview-note").hidden = true;
      if (previewUrl) URL.revokeObjectURL(previewUrl);
      previewUrl = url;
    }, 500);
  }
  if (!on && previewTimer) {
    clearInterval(previewTimer);
    previewTimer = null;
    // Nothing of the lesson stays on screen.
    $("preview").hidden = true;
    $("preview").removeAttribute("src");
    $("preview-note").hidden = false;
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = null;
  }
}

function renderAfter(s) {
  const last = s.last_recording;
  const sent = last.segments === null ? null : Math.max(0, last.segments - last.segments_waiting);
  $("after-title").textContent = last.uploaded ? "Uploaded" : "Saved";
  const claim = last.offline ? " It is sealed for the school: claim it in lessonlens with your code." : "";
  $("upload").textContent = last.uploaded
    ? last.offline
      ? "The lesson is on the school server. Claim it in lessonlens with your code to watch it."
      : "The lesson is on the school server. You can watch it in lessonlens."
    : !s.server_reachable
      ? `Saved on this device. It uploads by itself when the school server can be reached.${claim}`
      : sent === null
        ? `Uploading: ${last.segments_waiting} ${last.segments_waiting === 1 ? "part" : "parts"} still to send.${claim}`
        : `Uploading: ${sent} of ${last.segments} parts sent.${claim}`;
  $("upload-bar").value = last.uploaded ? 1 : sent === null ? 0 : sent / Math.max(last.segments, 1);
  problems($("after-problem"), stoppedByItself(s));
}

function render() {
  const s = status;
  if (!s) return;
  $("room").textContent = s.room || "Classroom recorder";
  $("server").textContent = s.server_reachable ? "School server connected" : "School server not reachable";
  $("server").dataset.ok = String(s.server_reachable);
  if (s.state !== "idle" && local === "starting") local = null;
  const v = view();
  show(v);
  if (v === "idle") renderIdle(s);
  if (v === "lesson") renderLesson(s);
  else preview(false);
  if (v === "after") renderAfter(s);
}

// The keypad.
function pinReset() {
  code = "";
  $("code").textContent = "";
  $("pin-start").disabled = true;
}

function pinTouched() {
  clearTimeout(pinTimer);
  // Digits left on the pad are cleared after a while, and the screen goes back to idle.
  pinTimer = setTimeout(() => {
    pinReset();
    $("pin-message").textContent = "";
    local = null;
    render();
  }, PIN_IDLE_MS);
}

function typed(next) {
  code = next.slice(0, 8);
  $("code").textContent = "•".repeat(code.length);
  $("pin-start").disabled = code.length < 4;
  pinTouched();
}

// Asks the service to start (with a code, or the booked lesson): whether it did, and its answer.
async function askStart(what) {
  const res = await fetch("/v1/record/start", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(what),
  }).catch(() => null);
  if (res?.ok) return [true, {}];
  return [false, res ? await res.json().catch(() => ({})) : {}];
}

async function start() {
  const sent = code;
  pinReset();
  clearTimeout(pinTimer);
  $("pin-message").textContent = "";
  local = "starting";
  render();
  const [ok, body] = await askStart({ code: sent });
  if (ok) return;
  local = "pin";
  const why = body.error ?? "the recorder did not answer. Try again, and if it happens again, switch the device off and on.";
  $("pin-message").textContent = why.charAt(0).toUpperCase() + why.slice(1);
  pinTouched();
  render();
}

// Starts the booked lesson whose slot is running: the booking says who it is.
async function startBooked() {
  local = "starting";
  render();
  const [ok, body] = await askStart({ booked: true });
  if (ok) return;
  local = null;
  render();
  problems($("problems"), [[body.error ?? "the recorder did not answer. Try again.", ""]]);
}

async function command(path) {
  const res = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
  }).catch(() => null);
  if (!res?.ok) {
    const body = res ? await res.json().catch(() => ({})) : {};
    const p = document.createElement("p");
    p.textContent = body.error ?? "The recorder did not answer.";
    $("warnings").append(p);
  }
}

function bind() {
  $("not-booked").addEventListener("click", openPin);
  $("record").addEventListener("click", () => {
    if (status?.booked) {
      startBooked();
      return;
    }
    openPin();
  });
  function openPin() {
    local = "pin";
    pinReset();
    $("pin-message").textContent = "";
    pinTouched();
    render();
  }
  for (const b of document.querySelectorAll("[data-digit]")) {
    b.addEventListener("click", () => typed(code + b.dataset.digit));
  }
  $("pin-back").addEventListener("click", () => typed(code.slice(0, -1)));
  $("pin-clear").addEventListener("click", () => typed(""));
  $("pin-cancel").addEventListener("click", () => {
    pinReset();
    clearTimeout(pinTimer);
    local = null;
    render();
  });
  $("pin-start").addEventListener("click", start);
  $("pause").addEventListener("click", () => command("/v1/record/pause"));
  $("resume").addEventListener("click", () => command("/v1/record/resume"));
  $("stop").addEventListener("click", () => $("confirm-stop").showModal());
  $("keep").addEventListener("click", () => $("confirm-stop").close());
  $("stop-yes").addEventListener("click", () => {
    $("confirm-stop").close();
    command("/v1/record/stop");
  });
  $("done").addEventListener("click", () => {
    dismissed = status?.last_recording?.recording ?? null;
    render();
  });
}

function listen() {
  const events = new EventSource("/v1/events");
  events.addEventListener("status", (e) => {
    status = JSON.parse(e.data);
    $("service").hidden = true;
    render();
  });
  events.addEventListener("levels", (e) => {
    if (view() === "lesson") renderLevels(JSON.parse(e.data).levels);
  });
  events.addEventListener("error", () => {
    $("service").hidden = false;
  });
}

bind();
clock();
setInterval(clock, 1000);
listen();
