// lessonlens web app: plain ES module, no framework. Views are switched by the URL hash:
// #/ (my lessons), #/shared (shared with me), #/recording/<id> (player, comments, sharing) and
// #/admin (people, retention, holds, receipts, audit log), #/account (two-step sign-in, recovery
// code, device code, what admins changed) and #/invite/<token>.
// Every request goes to the same origin; every text from the server is set with textContent.

const $ = (id) => document.getElementById(id);
let hls = null;
let me = null;
let current = null; // the recording on the player page
let routeSeq = 0; // bumped on every navigation, so a slow earlier view does not cover a newer one

async function api(path, options = {}) {
  let res;
  try {
    res = await fetch(path, {
      credentials: "same-origin",
      headers: { "content-type": "application/json" },
      ...options,
    });
  } catch {
    throw new Error("The lessonlens server cannot be reached. Check the network connection, then try again.");
  }
  if (res.status === 401) {
    // A session that ended under us (it expired, or an admin signed this person out): say so,
    // and come back to the same page after signing in again.
    if (me && path !== "/api/login") {
      $("login-notice").textContent = "Your session has ended, so you were signed out. Sign in again to carry on where you were.";
    }
    me = null;
    show("login-view");
    throw new Error("signed out");
  }
  if (!res.ok) {
    const body = await res.json().catch(() => ({ error: res.statusText }));
    const err = new Error(body.error || res.statusText);
    err.status = res.status;
    throw err;
  }
  return res.json();
}

// el("li", { className: "x", onclick: f }, child, "text", ...)
function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k in e) e[k] = v;
    else e.setAttribute(k, v);
  }
  e.append(...children.filter((c) => c !== null && c !== undefined));
  return e;
}

function show(id) {
  $("app-error").hidden = true;
  for (const v of ["login-view", "library-view", "player-view", "admin-view", "account-view", "invite-view"]) $(v).hidden = v !== id;
  $("nav").hidden = !me;
  if (!me) $("admin-actions-notice").hidden = true;
  // A recovery code is shown once, and not left on screen for whoever uses this computer next.
  if (id !== "account-view") forgetRecoveryCode();
  if (id !== "player-view" && hls) {
    hls.destroy();
    hls = null;
  }
}

function when(ts) {
  return new Date(ts * 1000).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, "0")}`;
}

function statusText(r) {
  if (r.status === "incomplete") return `incomplete (${r.missing.length} segment(s) missing)`;
  return r.status;
}

function retentionText(r) {
  if (r.held) return "Kept: on hold by the school";
  return r.delete_after ? `Deleted on ${new Date(r.delete_after * 1000).toLocaleDateString(undefined, { dateStyle: "medium" })}` : "";
}

async function showLibrary(shared) {
  const seq = routeSeq;
  const list = await api(shared ? "/api/shared" : "/api/recordings");
  if (seq !== routeSeq) return;
  $("library-title").textContent = shared ? "Shared with me" : "My lessons";
  $("library-empty").textContent = shared
    ? "Nothing has been shared with you yet."
    : "No recorded lessons yet. Start one on the classroom device.";
  $("library-empty").hidden = list.length > 0;
  $("library").replaceChildren(
    ...list.map((r) =>
      el(
        "li",
        { className: "card" },
        el(
          "a",
          { href: `#/recording/${r.id}`, className: "lesson-link" },
          // The first frame, taken and sealed by the device; decorative next to the link text.
          r.poster ? el("img", { className: "poster", src: `/api/recordings/${r.id}/poster.jpg`, alt: "", loading: "lazy", width: 160, height: 90 }) : null,
          `${when(r.created_at)} — ${r.device}`,
        ),
        el(
          "span",
          { className: `status ${r.status}` },
          `${clock(r.duration_seconds)} · ${statusText(r)}`,
        ),
        el(
          "span",
          { className: "meta" },
          shared
            ? `${r.owner}'s lesson`
            : r.shared_with.length
              ? `Shared with ${r.shared_with.join(", ")}`
              : "Not shared",
        ),
        el("span", { className: "meta" }, retentionText(r)),
      ),
    ),
  );
  await showOffline(shared);
  if (seq !== routeSeq) return;
  show("library-view");
  $("main").focus();
}

async function showOffline(shared) {
  const list = shared || !me.roles.includes("teacher") ? [] : await api("/api/unassigned");
  $("offline").hidden = list.length === 0;
  $("offline-list").replaceChildren(
    ...list.map((r) => {
      const code = el("input", {
        inputMode: "numeric",
        autocomplete: "off",
        maxLength: 8,
        required: true,
        "aria-label": `Your device code for the lesson of ${when(r.created_at)} in ${r.device}`,
      });
      return el(
        "li",
        { className: "card" },
        el("span", {}, `${when(r.created_at)} — ${r.device} · ${clock(r.duration_seconds)}`),
        el(
          "form",
          {
            className: "row",
            onsubmit: async (ev) => {
              ev.preventDefault();
              $("offline-error").textContent = "";
              try {
                await api(`/api/unassigned/${r.id}/claim`, { method: "POST", body: JSON.stringify({ code: code.value }) });
                await route();
              } catch (e) {
                $("offline-error").textContent = e.message;
              }
            },
          },
          code,
          el("button", { type: "submit" }, "This is mine"),
        ),
      );
    }),
  );
}

function attachPlayer(id) {
  const video = $("video");
  const src = `/api/recordings/${id}/playlist.m3u8`;
  if (window.Hls && window.Hls.isSupported()) {
    // No worker: the CSP allows no blob: workers, which is what hls.js would create.
    hls = new window.Hls({ enableWorker: false });
    hls.on(window.Hls.Events.ERROR, (_e, data) => {
      if (!data.fatal) return;
      const status = data.response && data.response.code;
      $("player-error").textContent =
        status === 404 || status === 401
          ? "This recording is no longer available to you."
          : `Playback failed: ${data.details}`;
    });
    hls.loadSource(src);
    hls.attachMedia(video);
  } else {
    video.src = src;
  }
  video.playbackRate = Number($("speed").value);
}

function seek(t) {
  const video = $("video");
  video.currentTime = t;
  video.focus();
}

function gapText(g) {
  return g.kind === "pause"
    ? `Privacy pause at ${clock(g.at_seconds)}`
    : `${g.segments} segment(s) lost at ${clock(g.at_seconds)} (the device stopped before uploading them)`;
}

function renderTimeline(comments) {
  const d = current.duration_seconds || 1;
  const gaps = current.gaps.map((g) => {
    const m = el("span", { className: `gap ${g.kind}`, title: gapText(g), role: "img", "aria-label": gapText(g) });
    m.style.left = `${Math.min(100, (100 * g.at_seconds) / d)}%`;
    return m;
  });
  $("gaps").textContent = current.gaps.map(gapText).join(" · ");
  $("timeline").replaceChildren(
    ...gaps,
    ...comments
      .filter((c) => c.parent_id === null)
      .map((c) => {
        const m = el("button", {
          type: "button",
          className: `marker${c.private ? " private" : ""}`,
          title: `${clock(c.at_seconds)} ${c.author}: ${c.body}`,
          "aria-label": `Comment at ${clock(c.at_seconds)} by ${c.author}`,
          onclick: () => seek(c.at_seconds),
        });
        // CSSOM, not a style attribute: the CSP allows no inline styles.
        m.style.left = `${Math.min(100, (100 * c.at_seconds) / d)}%`;
        return m;
      }),
  );
}

function commentItem(c, replies) {
  const head = el(
    "div",
    { className: "comment-head" },
    el("button", { type: "button", className: "time", onclick: () => seek(c.at_seconds) }, clock(c.at_seconds)),
    el("strong", {}, c.author),
    c.tag ? el("span", { className: "tag" }, c.tag) : null,
    c.private ? el("span", { className: "tag private" }, "private reflection") : null,
  );
  const actions = el("div", { className: "comment-actions" });
  if (c.mine) {
    actions.append(
      el("button", { type: "button", className: "link", onclick: () => removeComment(c.id) }, "Delete"),
    );
  }
  const item = el("li", { className: "comment", id: `comment-${c.id}` }, head, el("p", {}, c.body), actions);
  if (c.parent_id === null && !c.private) {
    const input = el("input", { "aria-label": `Reply to ${c.author}`, placeholder: "Reply", required: true, maxLength: 4000 });
    const form = el(
      "form",
      {
        className: "row reply",
        onsubmit: async (ev) => {
          ev.preventDefault();
          await postComment({ at_seconds: c.at_seconds, body: input.value, parent_id: c.id });
        },
      },
      input,
      el("button", { type: "submit" }, "Reply"),
    );
    item.append(el("ol", { className: "replies" }, ...replies.map((r) => commentItem(r, []))), form);
  }
  return item;
}

async function loadComments() {
  const comments = await api(`/api/recordings/${current.id}/comments`);
  const top = comments.filter((c) => c.parent_id === null);
  $("comments").replaceChildren(
    ...top.map((c) => commentItem(c, comments.filter((r) => r.parent_id === c.id))),
  );
  if (!top.length) $("comments").append(el("li", { className: "meta" }, "No comments yet."));
  renderTimeline(comments);
}

async function postComment(body) {
  $("comment-error").textContent = "";
  try {
    await api(`/api/recordings/${current.id}/comments`, { method: "POST", body: JSON.stringify(body) });
    await loadComments();
    return true;
  } catch (e) {
    $("comment-error").textContent = e.message;
    return false;
  }
}

async function removeComment(id) {
  if (!confirm("Delete this comment?")) return;
  await api(`/api/recordings/${current.id}/comments/${id}`, { method: "DELETE" }).catch((e) => {
    $("comment-error").textContent = e.message;
  });
  await loadComments();
}

// Shares the current recording (with a coach, or with a group: again to let in who joined since),
// then shows the page again.
async function share(path, body) {
  $("share-error").textContent = "";
  try {
    await api(`/api/recordings/${current.id}/${path}`, { method: "POST", body: JSON.stringify(body) });
    await showRecording(current.id);
  } catch (e) {
    $("share-error").textContent = e.message;
  }
}

function stopSharing(label, path) {
  return el(
    "button",
    {
      type: "button",
      className: "link",
      "aria-label": `Stop sharing with ${label}`,
      onclick: async () => {
        await api(path, { method: "DELETE" }).catch((e) => ($("share-error").textContent = e.message));
        await showRecording(current.id);
      },
    },
    "Stop sharing",
  );
}

// A group this lesson is shared with, and who is in it: those who joined after it was shared cannot
// watch until the teacher shares again.
function groupShareItem(g, base) {
  const late = g.members.filter((m) => !m.can_watch);
  return el(
    "li",
    { className: "stack" },
    el("span", {}, `${g.name} (group) `, stopSharing(`the group ${g.name}`, `${base}/group-shares/${g.id}`)),
    el(
      "ul",
      { className: "members" },
      ...g.members.map((m) =>
        el("li", {}, m.can_watch ? m.display_name : `${m.display_name} — joined after you shared: cannot watch`),
      ),
      g.members.length ? null : el("li", { className: "meta" }, "Nobody is in this group now."),
    ),
    late.length
      ? el(
          "button",
          {
            type: "button",
            "aria-label": `Let everyone now in the group watch: ${g.name}`,
            onclick: () => share("group-shares", { group: g.id }),
          },
          "Let everyone now in the group watch",
        )
      : null,
  );
}

let shareGroups = []; // the groups the group share form offers, with their members

// Who is in the group chosen in the share form, before the teacher shares with it.
function showShareGroupMembers() {
  const g = shareGroups.find((x) => String(x.id) === $("share-group").value);
  $("share-group-members").textContent = !g
    ? ""
    : g.members.length
      ? `In ${g.name}: ${g.members.map((m) => m.display_name).join(", ")}. Sharing lets each of them watch this lesson and comment; coaches who join the group later cannot watch until you share with it again.`
      : `Nobody is in ${g.name} yet: sharing with it lets nobody watch until you share again after coaches join.`;
}

async function loadOwnerPanel(detail) {
  const base = `/api/recordings/${current.id}`;
  $("shares").replaceChildren(
    ...detail.shares.map((p) =>
      el("li", {}, `${p.display_name} `, stopSharing(p.display_name, `${base}/shares/${encodeURIComponent(p.username)}`)),
    ),
    ...detail.group_shares.map((g) => groupShareItem(g, base)),
  );
  if (!detail.shares.length && !detail.group_shares.length) {
    $("shares").append(el("li", { className: "meta" }, "Only you can see this lesson."));
  }
  const [coaches, groups] = await Promise.all([api("/api/coaches"), api("/api/groups")]);
  const shared = new Set(detail.shares.map((p) => p.username));
  $("share-coach").replaceChildren(
    ...coaches
      .filter((c) => !shared.has(c.username))
      .map((c) => el("option", { value: c.username }, c.display_name)),
  );
  $("share-form").hidden = $("share-coach").options.length === 0;
  const sharedGroups = new Set(detail.group_shares.map((g) => g.id));
  shareGroups = groups.filter((g) => !sharedGroups.has(g.id));
  $("share-group").replaceChildren(
    ...shareGroups.map((g) => el("option", { value: g.id }, `${g.name} (${g.members.length} coach${g.members.length === 1 ? "" : "es"})`)),
  );
  $("group-share-form").hidden = shareGroups.length === 0;
  showShareGroupMembers();
  const views = await api(`/api/recordings/${current.id}/views`);
  $("views").replaceChildren(
    ...views.map((v) => el("li", {}, `${v.display_name}: ${v.views} time(s), last ${when(v.last_viewed)}`)),
  );
  if (!views.length) $("views").append(el("li", { className: "meta" }, "Nobody else has watched it."));
}

async function showRecording(id) {
  show("player-view");
  $("player-error").textContent = "";
  $("share-error").textContent = "";
  let detail;
  try {
    detail = await api(`/api/recordings/${id}`);
  } catch (e) {
    if (e.status === 404) {
      $("player-title").textContent = "Lesson not available";
      $("player-status").textContent = "";
      $("player-error").textContent = "This recording does not exist or is not shared with you.";
      $("owner-panel").hidden = true;
      return;
    }
    throw e;
  }
  const fresh = !current || current.id !== id || !hls;
  current = detail;
  $("player-title").textContent = `${when(detail.created_at)} — ${detail.device}`;
  $("player-status").textContent = `${detail.is_owner ? "Your lesson" : `${detail.owner}'s lesson`} · ${statusText(detail)} · ${retentionText(detail)}`;
  $("player-status").className = `status ${detail.status}`;
  $("back").textContent = detail.is_owner ? "← My lessons" : "← Shared with me";
  $("back").href = detail.is_owner ? "#/" : "#/shared";
  $("private-row").hidden = !detail.is_owner;
  $("owner-panel").hidden = !detail.is_owner;
  // One file, or one per part when privacy pauses split the lesson.
  const parts = detail.download_parts;
  $("download").replaceChildren(
    ...(parts <= 1
      ? [el("a", { className: "button", href: `/api/recordings/${id}/download.mp4` }, "Download MP4")]
      : Array.from({ length: parts }, (_, i) =>
          el("a", { className: "button", href: `/api/recordings/${id}/download.mp4?part=${i + 1}` }, `Download part ${i + 1} of ${parts} (MP4)`),
        )),
  );
  if (!parts) $("download").replaceChildren(el("p", { className: "meta" }, "Nothing to download yet."));
  if (fresh) attachPlayer(id);
  const tags = await api("/api/tags");
  $("comment-tag").replaceChildren(el("option", { value: "" }, "(none)"), ...tags.map((t) => el("option", { value: t }, t)));
  await loadComments();
  if (detail.is_owner) await loadOwnerPanel(detail);
}

function day(ts) {
  return ts ? new Date(ts * 1000).toLocaleDateString(undefined, { dateStyle: "medium" }) : "";
}

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

let auditRows = [];
function renderAudit() {
  const f = $("audit-filter").value.toLowerCase();
  $("admin-audit").replaceChildren(
    ...auditRows
      .filter((a) => !f || `${a.actor} ${a.action} ${a.target}`.toLowerCase().includes(f))
      .map((a) => el("tr", {}, el("td", {}, when(a.at)), el("td", {}, a.actor), el("td", {}, a.action), el("td", { className: "target" }, a.target))),
  );
}

async function showAdmin() {
  const seq = routeSeq;
  const [users, devices, policy, recordings, receipts, audit, groups] = await Promise.all([
    ...["users", "devices", "retention", "recordings", "receipts", "audit"].map((p) => api(`/api/admin/${p}`)),
    api("/api/groups"),
  ]);
  if (seq !== routeSeq) return;
  $("admin-users").replaceChildren(...users.map(userRow));
  const coaches = users.filter((u) => u.roles.includes("coach") && !u.disabled);
  $("admin-groups").replaceChildren(...groups.map((g) => groupCard(g, coaches)));
  if (!groups.length) $("admin-groups").append(el("li", { className: "meta" }, "No groups yet."));
  $("admin-devices").replaceChildren(...devices.map(deviceRow));
  if (!devices.length) $("admin-devices").append(el("tr", {}, el("td", { colSpan: 9 }, "No devices yet.")));
  $("keep-days").value = policy.keep_days;
  $("unshared-days").value = policy.unshared_days ?? "";
  $("grace-days").value = policy.grace_days;
  $("admin-recordings").replaceChildren(...recordings.map(recordingRow));
  if (!recordings.length) $("admin-recordings").append(el("tr", {}, el("td", { colSpan: 5 }, "No recordings.")));
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
  auditRows = audit;
  renderAudit();
  show("admin-view");
}

$("audit-filter").addEventListener("input", renderAudit);

function showInvite(who, r) {
  $("invite-result").replaceChildren(
    el("p", {}, `Invitation for ${who} (works once, until ${when(r.invite_expires_at)}): `),
    el("p", {}, el("code", { className: "invite-link" }, r.invite_url)),
    el("p", { className: "meta" }, "Send it to them yourself; it lets whoever has it choose the password."),
  );
}

// Whether a form's two new-password fields match; says so in the form's error line if not.
function samePasswords(first, second, error) {
  if ($(first).value === $(second).value) return true;
  $(error).textContent = "The two passwords differ.";
  return false;
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

function adminActionText(a) {
  return `${when(a.at)}: ${a.by} ${a.what}`;
}

// The admin actions on this person's account they have not yet said they saw (the list is newest
// first), in a notice on whatever page they are on.
function showUnseenAdminActions() {
  $("admin-actions-unseen").replaceChildren(
    ...me.admin_actions.slice(0, me.unseen_admin_actions).map((a) => el("li", {}, adminActionText(a))),
  );
  $("admin-actions-notice").hidden = me.unseen_admin_actions === 0;
}

$("admin-actions-seen").addEventListener("click", async () => {
  try {
    const upTo = Math.max(0, ...me.admin_actions.slice(0, me.unseen_admin_actions).map((a) => a.id));
    await api("/api/me/admin-actions/seen", { method: "POST", body: JSON.stringify({ up_to: upTo }) });
    me.unseen_admin_actions = 0;
    showUnseenAdminActions();
  } catch (e) {
    $("app-error").textContent = e.message;
    $("app-error").hidden = false;
  }
});

function showAccount() {
  $("account-required").hidden = !me.setup_only;
  $("second-factor-status").textContent = me.second_factor
    ? "On: signing in asks for a code from your authenticator app. If you lose your phone, ask an admin to reset it."
    : "Off: signing in needs only your password.";
  $("second-factor-start").hidden = me.second_factor || !$("second-factor-form").hidden;
  $("recovery-status").textContent = me.has_recovery_code
    ? "You have a recovery code. Making a new one replaces it: the old one stops working."
    : "You have no recovery code yet: make one now.";
  $("recovery-submit").textContent = me.has_recovery_code ? "Make a new recovery code" : "Make a recovery code";
  $("device-code-section").hidden = !me.roles.includes("teacher");
  $("device-code-status").textContent = me.has_device_code
    ? "You have a device code. Setting a new one replaces it."
    : "You have no device code yet: set one to start recordings on a classroom device.";
  $("admin-actions").replaceChildren(
    ...me.admin_actions.map((a) => el("tr", {}, el("td", {}, when(a.at)), el("td", {}, a.by), el("td", {}, a.what))),
  );
  if (!me.admin_actions.length) {
    $("admin-actions").append(el("tr", { className: "meta" }, el("td", { colSpan: 3 }, "No admin has changed your account.")));
  }
  show("account-view");
}

// Sends one change from the Account page, then shows the page again from a fresh /api/me.
// Gives the server's answer, or null after showing why it failed in the form's error line.
async function accountChange(form, error, send) {
  $(error).textContent = "";
  try {
    const r = await send();
    $(form).reset();
    await route();
    return r;
  } catch (e) {
    $(error).textContent = e.message;
    return null;
  }
}

function forgetRecoveryCode() {
  $("recovery-code").textContent = "";
  $("recovery-result").hidden = true;
}

$("recovery-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const r = await accountChange("recovery-form", "recovery-error", () =>
    api("/api/me/recovery-code", { method: "POST", body: JSON.stringify({ password: $("recovery-password").value }) }),
  );
  if (!r) return;
  $("recovery-code").textContent = r.recovery_code;
  $("recovery-result").hidden = false;
  $("recovery-result").focus();
});
$("recovery-done").addEventListener("click", forgetRecoveryCode);

$("password-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("password-error").textContent = "";
  $("password-done").textContent = "";
  if (!samePasswords("password-new", "password-repeat", "password-error")) return;
  const r = await accountChange("password-form", "password-error", () =>
    api("/api/me/password", {
      method: "POST",
      body: JSON.stringify({ current: $("password-current").value, new: $("password-new").value }),
    }),
  );
  if (r) $("password-done").textContent = "Your password is changed. You are signed out everywhere else.";
});

$("device-code-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  await accountChange("device-code-form", "device-code-error", () =>
    api("/api/me/device-code", {
      method: "PUT",
      body: JSON.stringify({ code: $("device-code").value, password: $("device-code-password").value }),
    }),
  );
});

// Draws a QR code ({side, modules: "0101..."} from the server) with a 4-module quiet zone.
function drawQr(canvas, qr) {
  const scale = Math.floor(canvas.width / (qr.side + 8));
  canvas.dataset.modulePx = scale;
  const g = canvas.getContext("2d");
  g.fillStyle = "#fff";
  g.fillRect(0, 0, canvas.width, canvas.height);
  g.fillStyle = "#000";
  for (let i = 0; i < qr.modules.length; i++) {
    if (qr.modules[i] === "1") g.fillRect((4 + (i % qr.side)) * scale, (4 + Math.floor(i / qr.side)) * scale, scale, scale);
  }
}

$("second-factor-start").addEventListener("click", async () => {
  $("account-error").textContent = "";
  try {
    const r = await api("/api/me/second-factor", { method: "POST", body: "{}" });
    $("second-factor-secret").textContent = r.secret.replace(/(.{4})/g, "$1 ").trim();
    $("second-factor-link").href = r.otpauth_url;
    drawQr($("second-factor-qr"), r.qr);
    $("second-factor-form").hidden = false;
    $("second-factor-start").hidden = true;
    $("second-factor-code").focus();
  } catch (e) {
    $("account-error").textContent = e.message;
  }
});

$("second-factor-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("account-error").textContent = "";
  try {
    await api("/api/me/second-factor/confirm", {
      method: "POST",
      body: JSON.stringify({ code: $("second-factor-code").value, password: $("second-factor-password").value }),
    });
    $("second-factor-form").reset();
    $("second-factor-form").hidden = true;
    location.hash = "#/account";
    await route();
  } catch (e) {
    $("account-error").textContent = e.message;
  }
});

async function route() {
  routeSeq += 1;
  if (location.hash.startsWith("#/invite/")) {
    show("invite-view");
    return;
  }
  const m = location.hash.match(/^#\/recording\/([0-9a-f-]{36})$/);
  try {
    me = await api("/api/me");
    $("who").textContent = `${me.display_name} (${me.roles.join(", ")})`;
    $("logout").hidden = false;
    $("nav-mine").hidden = me.setup_only || !me.roles.includes("teacher");
    $("nav-shared").hidden = me.setup_only || !me.roles.includes("coach");
    $("nav-admin").hidden = me.setup_only || !me.roles.includes("admin");
    showUnseenAdminActions();
    if (me.setup_only || location.hash === "#/account") showAccount();
    else if (m) await showRecording(m[1]);
    else if (location.hash === "#/admin" && me.roles.includes("admin")) await showAdmin();
    else if (location.hash === "#/shared" || !me.roles.includes("teacher")) {
      if (me.roles.includes("admin") && !me.roles.includes("coach")) await showAdmin();
      else await showLibrary(true);
    }
    else await showLibrary(false);
  } catch (e) {
    if (e.message !== "signed out") {
      $("app-error").textContent = e.message;
      $("app-error").hidden = false;
    }
  }
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  try {
    const body = { username: $("username").value, password: $("password").value };
    if (!$("login-code-row").hidden) body.code = $("login-code").value;
    const r = await api("/api/login", { method: "POST", body: JSON.stringify(body) });
    if (r.second_factor === "code_required") {
      $("login-code-row").hidden = false;
      $("login-code").required = true;
      $("login-code").focus();
      return;
    }
    $("password").value = "";
    $("login-notice").textContent = "";
    $("login-code").value = "";
    $("login-code-row").hidden = true;
    $("login-code").required = false;
    await route();
  } catch (e) {
    $("login-error").textContent = e.message === "signed out" ? "Wrong username or password" : e.message;
  }
});

// The sign-in page shows either the sign-in form or the recovery form.
function showRecover(on) {
  $("login-form").hidden = on;
  $("recover-start-row").hidden = on;
  $("recover-form").hidden = !on;
  $("recover-error").textContent = "";
  (on ? $($("recover-username").value ? "recover-code" : "recover-username") : $("password")).focus();
}

$("recover-start").addEventListener("click", () => {
  $("recover-username").value = $("username").value;
  showRecover(true);
});
$("recover-cancel").addEventListener("click", () => showRecover(false));

$("recover-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("recover-error").textContent = "";
  if (!samePasswords("recover-password", "recover-repeat", "recover-error")) return;
  const username = $("recover-username").value;
  try {
    await api("/api/recover", {
      method: "POST",
      body: JSON.stringify({ username, recovery_code: $("recover-code").value.trim(), password: $("recover-password").value }),
    });
    $("recover-form").reset();
    $("username").value = username;
    $("login-notice").textContent =
      "Your password is changed, and that recovery code is used up. Sign in with the new password, then make a new recovery code on your Account page.";
    showRecover(false);
  } catch (e) {
    $("recover-error").textContent = e.message === "signed out" ? "Wrong username or recovery code" : e.message;
  }
});

$("logout").addEventListener("click", async () => {
  await api("/api/logout", { method: "POST" }).catch(() => {});
  me = null;
  $("who").textContent = "";
  $("logout").hidden = true;
  // Whoever signs in next starts at their own front page, not at this person's last page.
  history.replaceState(null, "", "#/");
  show("login-view");
});

$("comment-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const ok = await postComment({
    at_seconds: $("video").currentTime,
    body: $("comment-body").value,
    tag: $("comment-tag").value || null,
    private: $("comment-private").checked,
  });
  if (ok) {
    $("comment-body").value = "";
    $("comment-tag").value = "";
    $("comment-private").checked = false;
  }
});

for (const [form, path, body] of [
  ["share-form", "shares", () => ({ username: $("share-coach").value })],
  ["group-share-form", "group-shares", () => ({ group: Number($("share-group").value) })],
]) {
  $(form).addEventListener("submit", (ev) => {
    ev.preventDefault();
    share(path, body());
  });
}
$("share-group").addEventListener("change", showShareGroupMembers);

$("group-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  await adminAction("/api/admin/groups", "POST", { name: $("group-name").value });
  if (!$("admin-error").textContent) $("group-name").value = "";
});

$("delete").addEventListener("click", async () => {
  if (!confirm("Delete this recording for good? Its video, comments and shares are removed and cannot be brought back.")) return;
  try {
    await api(`/api/recordings/${current.id}`, { method: "DELETE" });
    location.hash = "#/";
  } catch (e) {
    $("share-error").textContent = e.message;
  }
});

$("speed").addEventListener("change", () => ($("video").playbackRate = Number($("speed").value)));
$("video").addEventListener("timeupdate", () => ($("comment-at").textContent = clock($("video").currentTime)));

// Keyboard shortcuts on the player page, except while typing.
document.addEventListener("keydown", (ev) => {
  if ($("player-view").hidden || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (ev.target.closest("input, textarea, select")) return;
  const video = $("video");
  if (ev.key === "k") video.paused ? video.play() : video.pause();
  else if (ev.key === "j") video.currentTime = Math.max(0, video.currentTime - 10);
  else if (ev.key === "l") video.currentTime += 10;
  else if (ev.key === "c") $("comment-body").focus();
  else return;
  ev.preventDefault();
});

window.addEventListener("hashchange", route);
route();
