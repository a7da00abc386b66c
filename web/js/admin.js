// The admin page: people, devices, groups, retention, holds, receipts and the audit log.

import { $, el, samePasswords, show } from "./dom.js";
import { api } from "./api.js";
import { day, when } from "./format.js";
import { state } from "./state.js";

function groupCard(g, coaches) {
  const members = new Set(g.members.map((m) => m.username));
  const select = el(
    "select",
    { id: `group-add-${g.id}` },
    ...coaches.filter((c) => !members.has(c.username)).map((c) => el("option", { value: c.username }, c.display_name)),
  );
  const path = `/api/admin/groups/${g.id}`;
  return el(
    "li",
    { className: "card stack" },
    el("h3", {}, g.name),
    el(
      "ul",
      { className: "plain" },
      ...g.members.map((m) =>
        el(
          "li",
          {},
          `${m.display_name} `,
          el(
            "button",
            {
              type: "button",
              className: "link",
              "aria-label": `Remove ${m.display_name} from ${g.name}`,
              onclick: () => adminAction(`${path}/members/${encodeURIComponent(m.username)}`, "DELETE"),
            },
            "Remove",
          ),
        ),
      ),
      g.members.length ? null : el("li", { className: "meta" }, "Nobody in this group yet."),
    ),
    select.options.length
      ? el(
          "form",
          {
            className: "row",
            onsubmit: (ev) => {
              ev.preventDefault();
              adminAction(`${path}/members/${encodeURIComponent(select.value)}`, "PUT");
            },
          },
          el("label", { htmlFor: select.id }, `Coach to add to ${g.name}`),
          select,
          el("button", { type: "submit" }, "Add"),
        )
      : null,
    el(
      "button",
      {
        type: "button",
        className: "danger",
        onclick: () =>
          confirm(`Remove the group ${g.name}? Lessons shared with it are no longer shared with its members.`) &&
          adminAction(path, "DELETE"),
      },
      `Remove the group ${g.name}`,
    ),
  );
}

async function adminAction(path, method = "POST", body = {}) {
  $("admin-error").textContent = "";
  try {
    await api(path, { method, body: JSON.stringify(body) });
  } catch (e) {
    $("admin-error").textContent = e.message;
  }
  await showAdmin();
}

function userRow(u) {
  const name = encodeURIComponent(u.username);
  const status = u.delete_after
    ? `Leaving: deleted on ${day(u.delete_after)}`
    : u.disabled
      ? "Disabled"
      : u.own_password
        ? "Active"
        : "Has not chosen a password yet";
  const button = (label, action, ask) =>
    el(
      "button",
      {
        type: "button",
        className: "link",
        "aria-label": `${label} ${u.display_name}`,
        onclick: () => (!ask || confirm(ask)) && adminAction(`/api/admin/users/${name}/${action}`),
      },
      label,
    );
  const actions = el("div", { className: "row" });
  // An invitation lets whoever has it choose the password, so there is none once they chose it.
  if (!u.disabled && !u.own_password) {
    actions.append(
      el(
        "button",
        {
          type: "button",
          className: "link",
          "aria-label": `Invite ${u.display_name}`,
          onclick: async () => {
            $("admin-error").textContent = "";
            try {
              showInvite(u.display_name, await api(`/api/admin/users/${name}/invite`, { method: "POST", body: "{}" }));
            } catch (e) {
              $("admin-error").textContent = e.message;
            }
          },
        },
        "Invite",
      ),
    );
  }
  if (u.delete_after) actions.append(button("Cancel offboarding", "cancel-offboard"));
  else {
    actions.append(
      u.disabled ? button("Enable", "enable") : button("Disable", "disable"),
      button(
        "Offboard",
        "offboard",
        `${u.display_name} will be disabled now, and everything of theirs deleted after the grace period. Continue?`,
      ),
    );
  }
  return el("tr", {}, el("td", {}, u.display_name), el("td", {}, u.username), el("td", {}, u.roles.join(", ")), el("td", {}, status), el("td", {}, actions));
}

function recordingRow(r) {
  let hold;
  if (r.hold_reason) {
    hold = el(
      "div",
      { className: "row" },
      el("span", {}, `Held: ${r.hold_reason}`),
      el("button", { type: "button", className: "link", onclick: () => adminAction(`/api/admin/recordings/${r.id}/hold`, "DELETE") }, "Release"),
    );
  } else {
    const input = el("input", { "aria-label": `Reason to hold the recording of ${when(r.created_at)}`, placeholder: "Reason", maxLength: 500 });
    hold = el(
      "form",
      {
        className: "row",
        onsubmit: (ev) => {
          ev.preventDefault();
          adminAction(`/api/admin/recordings/${r.id}/hold`, "PUT", { reason: input.value });
        },
      },
      input,
      el("button", { type: "submit" }, "Hold"),
    );
  }
  return el("tr", {}, el("td", {}, when(r.created_at)), el("td", {}, r.owner), el("td", {}, r.device), el("td", {}, r.hold_reason ? "on hold" : day(r.delete_after)), el("td", {}, hold));
}

function deviceRow(d) {
  const status = d.revoked
    ? "Revoked"
    : d.identity_conflict_at
      ? `Two machines have used this device's identity (last ${when(d.identity_conflict_at)}): revoke it and enrol the real device again under a new name`
      : d.certificate_expires && d.certificate_expires * 1000 < Date.now()
        ? "Certificate expired: enrol again"
        : Math.abs(d.report?.clock_offset_seconds ?? 0) > 60
          ? `Its clock is ${Math.abs(d.report.clock_offset_seconds)} s off the server's: booked lessons cannot start there until it is set right`
          : "Enrolled";
  const actions = el("div", { className: "row" });
  if (!d.revoked) {
    actions.append(
      el(
        "button",
        {
          type: "button",
          className: "link",
          "aria-label": `Revoke ${d.name}`,
          onclick: () =>
            confirm(`${d.name} will be refused from now on, and its name cannot be enrolled again. Continue?`) &&
            adminAction(`/api/admin/devices/${encodeURIComponent(d.name)}/revoke`),
        },
        "Revoke",
      ),
    );
  }
  const r = d.report;
  const mb = (b) => (b < 1e6 ? `${Math.round(b / 1e3)} kB` : `${(b / 1e6).toFixed(1)} MB`);
  return el(
    "tr",
    {},
    el("td", {}, d.name),
    el(
      "td",
      { title: r?.last_error ?? "" },
      r ? r.state + (r.last_error ? " (last recording ended with an error)" : "") : "not reported",
      ...(r?.warnings ?? []).map((w) => el("p", { class: "warning" }, w)),
    ),
    el("td", {}, r ? mb(r.bytes_waiting) : ""),
    el("td", {}, r?.last_upload_at ? when(r.last_upload_at) : ""),
    el("td", {}, r?.video_encoder ?? ""),
    el("td", {}, d.last_seen ? when(d.last_seen) : "never"),
    el("td", {}, day(d.certificate_expires)),
    el("td", {}, status),
    el("td", {}, actions),
  );
}

// The admin area's sub-pages, each with its own address (#/admin/<page>) and only its own data.
const PAGES = ["people", "devices", "groups", "retention", "receipts", "audit"];
let page = "people";
let people = [];
let audit = { page: 0, q: "" };

function renderPeople() {
  const q = $("people-search").value.trim().toLowerCase();
  const shown = people.filter((u) => !q || `${u.display_name} ${u.username} ${u.roles.join(" ")}`.toLowerCase().includes(q));
  $("admin-users").replaceChildren(...shown.map(userRow));
  if (!shown.length) $("admin-users").append(el("tr", {}, el("td", { colSpan: 5 }, q ? "Nobody matches." : "Nobody yet.")));
}

// One page of the audit log (50 entries, newest first), filtered on the server.
async function loadAudit() {
  const r = await api(`/api/admin/audit?page=${audit.page}&q=${encodeURIComponent(audit.q)}`);
  $("admin-audit").replaceChildren(
    ...r.rows.map((a) => el("tr", {}, el("td", {}, when(a.at)), el("td", {}, a.actor), el("td", {}, a.action), el("td", { className: "target" }, a.target))),
  );
  if (!r.rows.length) $("admin-audit").append(el("tr", {}, el("td", { colSpan: 4 }, audit.q ? "No entry matches." : "No entries.")));
  $("audit-page").textContent = `Page ${r.page + 1}${audit.q ? `, entries with “${audit.q}”` : ""}`;
  $("audit-newer").disabled = r.page === 0;
  $("audit-older").disabled = !r.more;
}

const loaders = {
  people: async () => {
    people = await api("/api/admin/users");
    renderPeople();
  },
  devices: async () => {
    const devices = await api("/api/admin/devices");
    $("admin-devices").replaceChildren(...devices.map(deviceRow));
    if (!devices.length) $("admin-devices").append(el("tr", {}, el("td", { colSpan: 9 }, "No devices yet.")));
  },
  groups: async () => {
    const [users, groups] = await Promise.all([api("/api/admin/users"), api("/api/groups")]);
    const coaches = users.filter((u) => u.roles.includes("coach") && !u.disabled);
    $("admin-groups").replaceChildren(...groups.map((g) => groupCard(g, coaches)));
    if (!groups.length) $("admin-groups").append(el("li", { className: "meta" }, "No groups yet."));
  },
  retention: async () => {
    const [policy, recordings] = await Promise.all([api("/api/admin/retention"), api("/api/admin/recordings")]);
    $("keep-days").value = policy.keep_days;
    $("unshared-days").value = policy.unshared_days ?? "";
    $("grace-days").value = policy.grace_days;
    $("admin-recordings").replaceChildren(...recordings.map(recordingRow));
    if (!recordings.length) $("admin-recordings").append(el("tr", {}, el("td", { colSpan: 5 }, "No recordings.")));
  },
  receipts: async () => {
    const receipts = await api("/api/admin/receipts");
    $("admin-receipts").replaceChildren(
      ...receipts.map(({ receipt: r }) =>
        el(
          "li",
          { className: "card" },
          `${day(r.finished_at)}: ${r.subject} — ${r.recordings} recording(s), ${r.segments} segment(s), ${r.bytes} bytes deleted; key ${r.key_fingerprint ?? "(none)"} shredded. Receipt ${r.receipt_id}.`,
        ),
      ),
    );
    if (!receipts.length) $("admin-receipts").append(el("li", { className: "meta" }, "No deletions yet."));
  },
  audit: loadAudit,
};

// Shows the admin sub-page `which` (people by default) with fresh data. Moving to another
// sub-page leaves nothing of the last one's messages (an error, a one-time code, a link).
export async function showAdmin(which = page) {
  const seq = state.routeSeq;
  const next = PAGES.includes(which) ? which : "people";
  if (next !== page) {
    for (const id of ["admin-error", "invite-result", "enroll-result", "roster-result", "timetable-result", "policy-saved"]) $(id).replaceChildren();
  }
  page = next;
  // The address names the sub-page shown, so a reload or a bookmark comes back to it.
  if (location.hash !== `#/admin/${page}`) history.replaceState(null, "", `#/admin/${page}`);
  await loaders[page]();
  if (seq !== state.routeSeq) return;
  for (const p of PAGES) $(`admin-page-${p}`).hidden = p !== page;
  for (const a of document.querySelectorAll(".subnav a")) {
    if (a.getAttribute("href") === `#/admin/${page}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  show("admin-view");
}

$("people-search").addEventListener("input", renderPeople);
$("audit-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  audit = { page: 0, q: $("audit-filter").value.trim() };
  await adminRefresh(loadAudit);
});
$("audit-newer").addEventListener("click", () => {
  audit.page = Math.max(0, audit.page - 1);
  adminRefresh(loadAudit);
});
$("audit-older").addEventListener("click", () => {
  audit.page += 1;
  adminRefresh(loadAudit);
});

// Forgets the sub-page and the audit filter, for whoever signs in next.
export function forgetAdmin() {
  page = "people";
  audit = { page: 0, q: "" };
  people = [];
  $("audit-filter").value = "";
  $("people-search").value = "";
}

// Runs a loader, showing its failure in the admin page's error line.
async function adminRefresh(load) {
  $("admin-error").textContent = "";
  try {
    await load();
  } catch (e) {
    $("admin-error").textContent = e.message;
  }
}

function showInvite(who, r) {
  $("invite-result").replaceChildren(
    el("p", {}, `Invitation for ${who} (works once, until ${when(r.invite_expires_at)}): `),
    el("p", {}, el("code", { className: "invite-link" }, r.invite_url)),
    el("p", { className: "meta" }, "Send it to them yourself; it lets whoever has it choose the password."),
  );
}

$("invite-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("invite-error").textContent = "";
  if (!samePasswords("invite-password", "invite-repeat", "invite-error")) return;
  const token = location.hash.slice("#/invite/".length);
  try {
    const r = await api("/api/invite", {
      method: "POST",
      body: JSON.stringify({ token, password: $("invite-password").value }),
    });
    $("invite-form").reset();
    history.replaceState(null, "", "#/");
    $("username").value = r.username;
    show("login-view");
    $("login-error").textContent = "";
    $("password").focus();
  } catch (e) {
    $("invite-error").textContent = e.message;
  }
});

$("add-user-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const roles = [...document.querySelectorAll('input[name="role"]:checked')].map((i) => i.value);
  $("admin-error").textContent = "";
  try {
    const r = await api("/api/admin/users", {
      method: "POST",
      body: JSON.stringify({
        username: $("new-username").value,
        display_name: $("new-display").value,
        roles,
      }),
    });
    showInvite($("new-display").value, r);
    $("add-user-form").reset();
  } catch (e) {
    $("admin-error").textContent = e.message;
  }
  await showAdmin();
});

async function roster(apply) {
  $("admin-error").textContent = "";
  const file = $("roster-file").files[0];
  if (!file) return;
  try {
    const r = await api("/api/admin/roster", {
      method: "POST",
      body: JSON.stringify({ csv: await file.text(), apply, skip_bad_lines: $("roster-skip").checked }),
    });
    const p = r.plan;
    const list = (title, items) =>
      items.length ? [el("h4", {}, `${title} (${items.length})`), el("ul", {}, ...items.map((i) => el("li", {}, i)))] : [];
    $("roster-result").replaceChildren(
      el("p", {}, r.applied ? "Applied." : "Preview: nothing has changed yet."),
      ...list("Bad lines", r.errors.map((e) => `line ${e.line}: ${e.message}`)),
      ...list("New accounts", p.add.map((a) => `${a.name} (${a.email}; ${a.roles.join(", ")})`)),
      ...list("Name changes", p.rename.map(([u, from, to]) => `${u}: ${from} → ${to}`)),
      ...list("Linked to their staff id", p.link.map(([u, id]) => `${u}: ${id}`)),
      ...list("Not on the roster any more: leaving?", p.leaving),
    );
    $("roster-apply").hidden = r.applied || !(p.add.length || p.rename.length || p.link.length);
    if (r.applied) await showAdmin();
  } catch (e) {
    $("admin-error").textContent = e.message;
  }
}

$("roster-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  roster(false);
});

$("roster-apply").addEventListener("click", () => roster(true));

// The timetable import: preview, then book (bad lines named by number).
async function timetable(apply) {
  $("admin-error").textContent = "";
  const file = $("timetable-file").files[0];
  if (!file) return;
  try {
    const r = await api("/api/admin/timetable", {
      method: "POST",
      body: JSON.stringify({
        csv: await file.text(),
        from: $("timetable-from").value || null,
        weeks: Number($("timetable-weeks").value),
        apply,
        skip_bad_lines: $("timetable-skip").checked,
      }),
    });
    const list = (title, items) =>
      items.length ? [el("h4", {}, `${title} (${items.length})`), el("ul", {}, ...items.map((i) => el("li", {}, i)))] : [];
    $("timetable-result").replaceChildren(
      el("p", {}, r.applied ? "Booked." : "Preview: nothing is booked yet."),
      ...list("Bad lines", r.errors.map((e) => `line ${e.line}: ${e.message}`)),
      ...list("Lessons", r.lessons.map((l) => `${l.day} ${l.start}-${l.end}, ${l.room}, ${l.teacher}: ${l.bookings} week(s)`)),
    );
    $("timetable-apply").hidden = r.applied || !r.lessons.length;
  } catch (e) {
    $("admin-error").textContent = e.message;
  }
}

$("timetable-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  timetable(false);
});

$("timetable-apply").addEventListener("click", () => timetable(true));

$("enroll-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("admin-error").textContent = "";
  try {
    const r = await api("/api/admin/devices", {
      method: "POST",
      body: JSON.stringify({ name: $("enroll-name").value }),
    });
    $("enroll-result").replaceChildren(
      el("p", {}, `Code for ${r.device}: `, el("strong", { className: "enroll-code" }, r.code), ` (works once, until ${when(r.expires_at)})`),
      el("p", { className: "meta" }, `School CA fingerprint (SHA-256): ${r.ca_sha256}`),
      el(
        "p",
        { className: "meta" },
        "On the device run ",
        el("code", {}, `lessonlens-capture enroll --url ${location.origin} --ca-sha256 ${r.ca_sha256}`),
        " and type the code.",
      ),
    );
    $("enroll-form").reset();
  } catch (e) {
    $("admin-error").textContent = e.message;
  }
});

$("policy-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const unshared = $("unshared-days").value;
  $("policy-saved").textContent = "";
  await adminAction("/api/admin/retention", "PUT", {
    keep_days: Number($("keep-days").value),
    unshared_days: unshared ? Number(unshared) : null,
    grace_days: Number($("grace-days").value),
  });
  if (!$("admin-error").textContent) $("policy-saved").textContent = "Policy saved.";
});

$("group-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  await adminAction("/api/admin/groups", "POST", { name: $("group-name").value });
  if (!$("admin-error").textContent) $("group-name").value = "";
});
