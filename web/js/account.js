// The account page (password, recovery code, device code, two-step sign-in) and the notice
// of what admins changed on this account.

import { $, el, samePasswords, show } from "./dom.js";
import { api } from "./api.js";
import { when } from "./format.js";
import { hooks, state } from "./state.js";

function adminActionText(a) {
  return `${when(a.at)}: ${a.by} ${a.what}`;
}

// The admin actions on this person's account they have not yet said they saw (the list is newest
// first), in a notice on whatever page they are on.
export function showUnseenAdminActions() {
  $("admin-actions-unseen").replaceChildren(
    ...state.me.admin_actions.slice(0, state.me.unseen_admin_actions).map((a) => el("li", {}, adminActionText(a))),
  );
  $("admin-actions-notice").hidden = state.me.unseen_admin_actions === 0;
}

$("admin-actions-seen").addEventListener("click", async () => {
  try {
    const upTo = Math.max(0, ...state.me.admin_actions.slice(0, state.me.unseen_admin_actions).map((a) => a.id));
    await api("/api/me/admin-actions/seen", { method: "POST", body: JSON.stringify({ up_to: upTo }) });
    state.me.unseen_admin_actions = 0;
    showUnseenAdminActions();
  } catch (e) {
    $("app-error").textContent = e.message;
    $("app-error").hidden = false;
  }
});

export function showAccount() {
  $("account-required").hidden = !state.me.setup_only;
  $("second-factor-status").textContent = state.me.second_factor
    ? "On: signing in asks for a code from your authenticator app. If you lose your phone, ask an admin to reset it."
    : "Off: signing in needs only your password.";
  $("second-factor-start").hidden = state.me.second_factor || !$("second-factor-form").hidden;
  $("recovery-status").textContent = state.me.has_recovery_code
    ? "You have a recovery code. Making a new one replaces it: the old one stops working."
    : "You have no recovery code yet: make one now.";
  $("recovery-submit").textContent = state.me.has_recovery_code ? "Make a new recovery code" : "Make a recovery code";
  $("device-code-section").hidden = !state.me.roles.includes("teacher");
  $("device-code-status").textContent = state.me.has_device_code
    ? "You have a device code. Setting a new one replaces it."
    : "You have no device code yet: set one to start recordings on a classroom device.";
  $("admin-actions").replaceChildren(
    ...state.me.admin_actions.map((a) => el("tr", {}, el("td", {}, when(a.at)), el("td", {}, a.by), el("td", {}, a.what))),
  );
  if (!state.me.admin_actions.length) {
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
    await hooks.route();
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
    await hooks.route();
  } catch (e) {
    $("account-error").textContent = e.message;
  }
});

// A recovery code is shown once, and not left on screen for whoever uses this computer next.
hooks.onShow.push((id) => {
  if (id !== "account-view") forgetRecoveryCode();
});
