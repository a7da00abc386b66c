// Every request to the server goes through api(): same origin, JSON, and one place that
// turns a 401 into the sign-in page.

import { $, show } from "./dom.js";
import { state } from "./state.js";

export async function api(path, options = {}) {
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
    if (state.me && path !== "/api/login") {
      $("login-notice").textContent = "Your session has ended, so you were signed out. Sign in again to carry on where you were.";
    }
    state.me = null;
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
