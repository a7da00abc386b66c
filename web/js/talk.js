// Talk time under the player's timeline: who talked in each second of the lesson, as the
// classroom device worked it out from its microphones, with the totals a coach looks at.

import { $, el } from "./dom.js";
import { api } from "./api.js";

const NAMES = { t: "Teacher", p: "Pupils", b: "Both at once", v: "Talking" };

function duration(seconds) {
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
}

function percent(part, all) {
  return `${Math.round((100 * part) / Math.max(1, all))} %`;
}

// Runs of the same class, as [letter, from, length].
function runs(seconds) {
  const out = [];
  for (let i = 0; i < seconds.length; i++) {
    const last = out[out.length - 1];
    if (last && last[0] === seconds[i]) last[2]++;
    else out.push([seconds[i], i, 1]);
  }
  return out;
}

function total(letter, count) {
  return el("span", {}, el("span", { className: `chip talk-${letter}`, "aria-hidden": "true" }), `${NAMES[letter]} ${count}`);
}

// Shows the lesson's talk time, if the device sent one; `seek` moves the player.
export async function showTalk(detail, seek) {
  $("talk").hidden = true;
  if (!detail.talk) return;
  let talk;
  try {
    talk = await api(`/api/recordings/${detail.id}/talk`);
  } catch (e) {
    $("talk").hidden = false;
    $("talk-band").replaceChildren();
    $("talk-totals").replaceChildren();
    $("talk-note").textContent = `Talk time cannot be shown: ${e.message}`;
    return;
  }
  const s = talk.summary;
  const length = Math.max(talk.seconds.length, detail.duration_seconds || 0, 1);
  const band = $("talk-band");
  band.replaceChildren(
    ...runs(talk.seconds)
      .filter(([letter]) => letter !== "-")
      .map(([letter, from, n]) => {
        const span = el("span", { className: `talk-${letter}` });
        // CSSOM, not a style attribute: the CSP allows no inline styles.
        span.style.left = `${(100 * from) / length}%`;
        span.style.width = `${(100 * n) / length}%`;
        return span;
      }),
  );
  band.onclick = (ev) => {
    const box = band.getBoundingClientRect();
    seek(((ev.clientX - box.left) / box.width) * length);
  };
  const all = s.seconds;
  const totals =
    talk.microphones === 2
      ? [
          total("t", percent(s.teacher, all)),
          total("p", percent(s.pupils, all)),
          ...(s.both ? [total("b", percent(s.both, all))] : []),
          el("span", {}, `Silence ${percent(s.silence, all)}`),
          el("span", {}, `Longest teacher talk ${duration(s.longest_teacher)}`),
          el(
            "span",
            {},
            s.waits
              ? `Wait before pupils answer ${duration(s.mean_wait)} on average (${s.waits} ${s.waits === 1 ? "time" : "times"})`
              : "Pupils never answered after a pause",
          ),
        ]
      : [total("v", percent(s.talk, all)), el("span", {}, `Silence ${percent(s.silence, all)}`)];
  $("talk-totals").replaceChildren(...totals);
  band.setAttribute("aria-label", `Talk time band: ${totals.map((t) => t.textContent).join(", ")}`);
  $("talk-note").textContent =
    talk.microphones === 2
      ? "Worked out in the classroom from the teacher's microphone and the room's, second by second; a guide, not a measurement."
      : "This room's device has one microphone, so it can tell talk from silence but not who was talking. With a second microphone worn by the teacher it tells the teacher from the pupils.";
  $("talk").hidden = false;
}
