// lessonlens web app: plain ES modules, no framework, no build step. This one signs in and out
// and routes; each view is a module in js/ (library, recording, admin, account), beside small
// shared ones (dom, api, format, state). Views are switched by the URL hash:
// #/ (my lessons), #/shared (shared with me), #/recording/<id> (player, comments, sharing),
// #/rooms (every room's state, recording from the web) and
// #/admin/<page> (people, devices, groups, retention and holds, receipts, audit log: each its own
// address), #/account (two-step sign-in, recovery
// code, device code, what admins changed) and #/invite/<token>.
// Every request goes to the same origin; every text from the server is set with textContent.

import { $, samePasswords, show } from "./js/dom.js";
import { api } from "./js/api.js";
import { showLibrary } from "./js/library.js";
import { showRecording } from "./js/recording.js";
import { showRooms } from "./js/rooms.js";
import { forgetAdmin, showAdmin } from "./js/admin.js";
import { showAccount, showUnseenAdminActions } from "./js/account.js";
import { hooks, state } from "./js/state.js";

export async function route() {
  state.routeSeq += 1;
  if (location.hash.startsWith("#/invite/")) {
    show("invite-view");
    return;
  }
  const m = location.hash.match(/^#\/recording\/([0-9a-f-]{36})$/);
  const admin = location.hash.match(/^#\/admin(?:\/([a-z]+))?$/);
  try {
    state.me = await api("/api/me");
    $("who").textContent = `${state.me.display_name} (${state.me.roles.join(", ")})`;
    $("logout").hidden = false;
    $("nav-mine").hidden = state.me.setup_only || !state.me.roles.includes("teacher");
    $("nav-shared").hidden = state.me.setup_only || !state.me.roles.includes("coach");
    $("nav-admin").hidden = state.me.setup_only || !state.me.roles.includes("admin");
    const seesRooms = state.me.roles.includes("teacher") || state.me.roles.includes("admin");
    $("nav-rooms").hidden = state.me.setup_only || !seesRooms;
    showUnseenAdminActions();
    if (state.me.setup_only || location.hash === "#/account") showAccount();
    else if (m) await showRecording(m[1]);
    else if (location.hash === "#/rooms" && seesRooms) await showRooms();
    else if (admin && state.me.roles.includes("admin")) await showAdmin(admin[1]);
    else if (location.hash === "#/shared" || !state.me.roles.includes("teacher")) {
      if (state.me.roles.includes("admin") && !state.me.roles.includes("coach")) await showAdmin("people");
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
export function showRecover(on) {
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
  state.me = null;
  forgetAdmin();
  $("who").textContent = "";
  $("logout").hidden = true;
  // Whoever signs in next starts at their own front page, not at this person's last page.
  history.replaceState(null, "", "#/");
  show("login-view");
});

window.addEventListener("hashchange", route);

hooks.route = route;
route();
