// The player page: the video (hls.js), its timeline and comments, sharing and the owner's panel.

import { $, el, show } from "./dom.js";
import { api } from "./api.js";
import { clock, gapText, retentionText, statusText, when } from "./format.js";
import { hooks, state } from "./state.js";
import { showTalk } from "./talk.js";

function attachPlayer(id) {
  const video = $("video");
  const src = `/api/recordings/${id}/playlist.m3u8`;
  if (window.Hls && window.Hls.isSupported()) {
    // No worker: the CSP allows no blob: workers, which is what state.hls.js would create.
    state.hls = new window.Hls({ enableWorker: false });
    state.hls.on(window.Hls.Events.ERROR, (_e, data) => {
      if (!data.fatal) return;
      const status = data.response && data.response.code;
      $("player-error").textContent =
        status === 404 || status === 401
          ? "This recording is no longer available to you."
          : `Playback failed: ${data.details}`;
    });
    state.hls.loadSource(src);
    state.hls.attachMedia(video);
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

function renderTimeline(comments) {
  const d = state.current.duration_seconds || 1;
  const gaps = state.current.gaps.map((g) => {
    const m = el("span", { className: `gap ${g.kind}`, title: gapText(g), role: "img", "aria-label": gapText(g) });
    m.style.left = `${Math.min(100, (100 * g.at_seconds) / d)}%`;
    return m;
  });
  $("gaps").textContent = state.current.gaps.map(gapText).join(" · ");
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
  const comments = await api(`/api/recordings/${state.current.id}/comments`);
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
    await api(`/api/recordings/${state.current.id}/comments`, { method: "POST", body: JSON.stringify(body) });
    await loadComments();
    return true;
  } catch (e) {
    $("comment-error").textContent = e.message;
    return false;
  }
}

async function removeComment(id) {
  if (!confirm("Delete this comment?")) return;
  await api(`/api/recordings/${state.current.id}/comments/${id}`, { method: "DELETE" }).catch((e) => {
    $("comment-error").textContent = e.message;
  });
  await loadComments();
}

// Shares the state.current recording (with a coach, or with a group: again to let in who joined since),
// then shows the page again.
async function share(path, body) {
  $("share-error").textContent = "";
  try {
    await api(`/api/recordings/${state.current.id}/${path}`, { method: "POST", body: JSON.stringify(body) });
    await showRecording(state.current.id);
  } catch (e) {
    // A group that changed since the page showed it (409): show who is in it now, then say why.
    if (e.status === 409) await showRecording(state.current.id);
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
        await showRecording(state.current.id);
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
            onclick: () => share("group-shares", { group: g.id, members: g.members.map((m) => m.username) }),
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
  const base = `/api/recordings/${state.current.id}`;
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
  const views = await api(`/api/recordings/${state.current.id}/views`);
  $("views").replaceChildren(
    ...views.map((v) => el("li", {}, `${v.display_name}: ${v.views} time(s), last ${when(v.last_viewed)}`)),
  );
  if (!views.length) $("views").append(el("li", { className: "meta" }, "Nobody else has watched it."));
}

export async function showRecording(id) {
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
  const fresh = !state.current || state.current.id !== id || !state.hls;
  state.current = detail;
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
  await showTalk(detail, seek);
  if (detail.is_owner) await loadOwnerPanel(detail);
}

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
  [
    "group-share-form",
    "group-shares",
    () => {
      // The members the teacher was shown: the server shares only if the group is still them.
      const g = shareGroups.find((x) => String(x.id) === $("share-group").value);
      return { group: Number($("share-group").value), members: g ? g.members.map((m) => m.username) : [] };
    },
  ],
]) {
  $(form).addEventListener("submit", (ev) => {
    ev.preventDefault();
    share(path, body());
  });
}

$("share-group").addEventListener("change", showShareGroupMembers);

$("delete").addEventListener("click", async () => {
  if (!confirm("Delete this recording for good? Its video, comments and shares are removed and cannot be brought back.")) return;
  try {
    await api(`/api/recordings/${state.current.id}`, { method: "DELETE" });
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

// The player lets go of its stream when another view is shown.
hooks.onShow.push((id) => {
  if (id !== "player-view" && state.hls) {
    state.hls.destroy();
    state.hls = null;
  }
});
