// Rooms: every classroom device's state, live, and recording from the web. A teacher presses
// Record in a free room (the lesson is sealed to them, as if they had typed their code), and
// pauses, resumes and stops their own lesson; an admin sees whose lesson is running and may stop
// it. Teachers book rooms here too, and see how each booked lesson went. The list is asked for
// again every 3 seconds while this view is shown.

import { $, el, show } from "./dom.js";
import { api } from "./api.js";
import { when } from "./format.js";
import { hooks, state } from "./state.js";

let timer = null;

const STATES = {
  idle: "Free",
  booked: "Booked: waiting for a tap on the room's screen",
  starting: "Starting…",
  recording: "Recording",
  paused: "Paused",
  stopping: "Stopping…",
  busy: "Busy: another teacher's lesson",
};

function stateText(r) {
  if (r.state === "offline") return r.offline_since ? `Offline since ${when(r.offline_since)}` : "Offline";
  const text = STATES[r.state] || r.state;
  if (r.yours) return `${text}: your lesson`;
  return r.teacher ? `${text}: ${r.teacher}'s lesson` : text;
}

const DONE = { start: "recording", pause: "paused", resume: "recording again", stop: "stopped" };

// Sends one command and shows the list again; a refusal is said in the page's alert line.
async function command(room, action, label) {
  $("rooms-error").textContent = "";
  $("rooms-status").textContent = `${label}: asking ${room}…`;
  try {
    await api(`/api/rooms/${encodeURIComponent(room)}/${action}`, { method: "POST" });
    $("rooms-status").textContent = `${room}: ${DONE[action]}.`;
  } catch (e) {
    $("rooms-status").textContent = "";
    $("rooms-error").textContent = `${room}: ${e.message}`;
  }
  await load();
}

function button(room, action, label, confirmText) {
  return el(
    "button",
    {
      type: "button",
      "aria-label": `${label}: ${room}`,
      className: action === "stop" ? "danger" : "",
      onclick: () => {
        if (confirmText && !confirm(confirmText)) return;
        command(room, action, label);
      },
    },
    label,
  );
}

function actions(r) {
  const teacher = state.me.roles.includes("teacher");
  const admin = state.me.roles.includes("admin");
  const out = [];
  if (["idle", "booked"].includes(r.state) && teacher) out.push(button(r.name, "start", "Record"));
  if (r.yours && r.state === "recording") out.push(button(r.name, "pause", "Pause"));
  if (r.yours && r.state === "paused") out.push(button(r.name, "resume", "Resume"));
  if ((r.yours || admin) && ["recording", "paused", "starting"].includes(r.state)) {
    const whose = r.teacher ? `${r.teacher}'s` : "this";
    out.push(button(r.name, "stop", "Stop", r.yours ? null : `Stop ${whose} lesson in ${r.name}? The room's screen will say you stopped it.`));
  }
  return out;
}

// A booking's time as people read it, in the browser's own time zone.
function slot(b) {
  const end = new Date(b.ends_at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return `${when(b.starts_at)} to ${end}`;
}

function outcomeText(b) {
  if (b.outcome) return b.outcome === "recorded" ? "Recorded" : "Not recorded (nobody started it)";
  return b.starts_at * 1000 > Date.now() ? "Coming" : "";
}

async function loadBookings() {
  const list = await api("/api/bookings");
  $("bookings-empty").hidden = list.length > 0;
  $("bookings").replaceChildren(
    ...list.map((b) =>
      el(
        "tr",
        {},
        el("td", {}, slot(b)),
        el("td", {}, b.room),
        el("td", {}, b.teacher),
        el("td", {}, outcomeText(b)),
        el(
          "td",
          {},
          b.ends_at * 1000 > Date.now()
            ? el(
                "button",
                {
                  type: "button",
                  className: "link",
                  "aria-label": `Cancel the booking of ${b.room} on ${slot(b)}`,
                  onclick: async () => {
                    if (!confirm(`Cancel the booking of ${b.room} on ${slot(b)}?`)) return;
                    await api(`/api/bookings/${b.id}`, { method: "DELETE" }).catch((e) => ($("booking-error").textContent = e.message));
                    await loadBookings();
                  },
                },
                "Cancel",
              )
            : null,
        ),
      ),
    ),
  );
}

$("booking-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("booking-error").textContent = "";
  const at = (time) => Math.floor(new Date(`${$("booking-day").value}T${time}`).getTime() / 1000);
  try {
    await api("/api/bookings", {
      method: "POST",
      body: JSON.stringify({
        room: $("booking-room").value,
        starts_at: at($("booking-from").value),
        ends_at: at($("booking-to").value),
        weeks: Number($("booking-weeks").value),
      }),
    });
    $("booking-form").reset();
    $("booking-weeks").value = "1";
    await loadBookings();
  } catch (e) {
    $("booking-error").textContent = e.message;
  }
});

async function load() {
  const seq = state.routeSeq;
  const list = await api("/api/rooms");
  if (seq !== state.routeSeq) return;
  // Teachers book; the room list of the form follows the rooms (keeping the choice).
  const teacher = state.me.roles.includes("teacher");
  $("booking-form").hidden = !teacher;
  const chosen = $("booking-room").value;
  $("booking-room").replaceChildren(...list.map((r) => el("option", { value: r.name }, r.name)));
  if (chosen) $("booking-room").value = chosen;
  $("rooms-empty").hidden = list.length > 0;
  $("rooms").replaceChildren(
    ...list.map((r) =>
      el(
        "tr",
        {},
        el("th", { scope: "row" }, r.name),
        el("td", { className: `room-state ${r.state}` }, stateText(r)),
        el("td", { className: "row" }, ...actions(r)),
      ),
    ),
  );
}

export async function showRooms() {
  clearInterval(timer);
  await load();
  await loadBookings();
  show("rooms-view");
  timer = setInterval(() => load().catch(() => {}), 3000);
}

hooks.onShow.push((id) => {
  if (id !== "rooms-view") clearInterval(timer);
});
