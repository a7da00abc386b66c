// The page's elements: finding them, making them, and showing one view at a time.

import { hooks, state } from "./state.js";

export function $(id) {
  return document.getElementById(id);
}

// el("li", { className: "x", onclick: f }, child, "text", ...)
export function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k in e) e[k] = v;
    else e.setAttribute(k, v);
  }
  e.append(...children.filter((c) => c !== null && c !== undefined));
  return e;
}

export function show(id) {
  $("app-error").hidden = true;
  for (const v of ["login-view", "library-view", "player-view", "rooms-view", "admin-view", "account-view", "invite-view"]) $(v).hidden = v !== id;
  $("nav").hidden = !state.me;
  if (!state.me) $("admin-actions-notice").hidden = true;
  // Each view lets go of what it holds when another one is shown (a recovery code, the player).
  for (const leave of hooks.onShow) leave(id);
}

// Whether a form's two new-password fields match; says so in the form's error line if not.
export function samePasswords(first, second, error) {
  if ($(first).value === $(second).value) return true;
  $(error).textContent = "The two passwords differ.";
  return false;
}
