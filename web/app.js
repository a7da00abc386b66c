// lessonlens web app: plain ES module, no framework. Views are switched by the URL hash:
// #/ (library) and #/recording/<id> (player). Every request goes to the same origin.

const $ = (id) => document.getElementById(id);
let hls = null;

async function api(path, options = {}) {
  const res = await fetch(path, {
    credentials: "same-origin",
    headers: { "content-type": "application/json" },
    ...options,
  });
  if (res.status === 401) {
    show("login-view");
    throw new Error("signed out");
  }
  if (!res.ok) {
    const body = await res.json().catch(() => ({ error: res.statusText }));
    throw new Error(body.error || res.statusText);
  }
  return res.json();
}

function show(id) {
  for (const v of ["login-view", "library-view", "player-view"]) $(v).hidden = v !== id;
  if (id !== "player-view" && hls) {
    hls.destroy();
    hls = null;
  }
}

function when(ts) {
  return new Date(ts * 1000).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

function minutes(seconds) {
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  return `${m}:${String(s).padStart(2, "0")}`;
}

async function showLibrary() {
  const list = await api("/api/recordings");
  const ul = $("library");
  ul.replaceChildren();
  $("library-empty").hidden = list.length > 0;
  for (const r of list) {
    const li = document.createElement("li");
    li.className = "card";
    const a = document.createElement("a");
    a.href = `#/recording/${r.id}`;
    a.textContent = `${when(r.created_at)} — ${r.device}`;
    const meta = document.createElement("span");
    meta.className = `status ${r.status}`;
    meta.textContent = `${minutes(r.duration_seconds)} · ${r.status}`;
    li.append(a, meta);
    ul.append(li);
  }
  show("library-view");
}

async function showRecording(id) {
  show("player-view");
  $("player-error").textContent = "";
  const list = await api("/api/recordings");
  const r = list.find((x) => x.id === id);
  if (!r) {
    $("player-error").textContent = "This recording does not exist or is not shared with you.";
    return;
  }
  $("player-title").textContent = `${when(r.created_at)} — ${r.device}`;
  $("player-status").textContent =
    r.status === "incomplete" ? `Incomplete: ${r.missing.length} segment(s) missing` : `Status: ${r.status}`;
  const video = $("video");
  const src = `/api/recordings/${id}/playlist.m3u8`;
  if (window.Hls && window.Hls.isSupported()) {
    // No worker: the CSP allows no blob: workers, which is what hls.js would create.
    hls = new window.Hls({ enableWorker: false });
    hls.on(window.Hls.Events.ERROR, (_e, data) => {
      if (data.fatal) $("player-error").textContent = `Playback failed: ${data.details}`;
    });
    hls.loadSource(src);
    hls.attachMedia(video);
  } else {
    video.src = src;
  }
}

async function route() {
  const m = location.hash.match(/^#\/recording\/([0-9a-f-]{36})$/);
  try {
    const me = await api("/api/me");
    $("who").textContent = `${me.display_name} (${me.roles.join(", ")})`;
    $("logout").hidden = false;
    if (m) await showRecording(m[1]);
    else await showLibrary();
  } catch (e) {
    if (e.message !== "signed out") $("player-error").textContent = e.message;
  }
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  try {
    await api("/api/login", {
      method: "POST",
      body: JSON.stringify({ username: $("username").value, password: $("password").value }),
    });
    $("password").value = "";
    await route();
  } catch (e) {
    $("login-error").textContent = e.message === "signed out" ? "Wrong username or password" : e.message;
  }
});

$("logout").addEventListener("click", async () => {
  await api("/api/logout", { method: "POST" }).catch(() => {});
  $("who").textContent = "";
  $("logout").hidden = true;
  show("login-view");
});

window.addEventListener("hashchange", route);
route();
