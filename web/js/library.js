// The library: my lessons or those shared with me, and lessons recorded offline to claim.

import { $, el, show } from "./dom.js";
import { api } from "./api.js";
import { clock, retentionText, statusText, when } from "./format.js";
import { hooks, state } from "./state.js";

export async function showLibrary(shared) {
  const seq = state.routeSeq;
  const list = await api(shared ? "/api/shared" : "/api/recordings");
  if (seq !== state.routeSeq) return;
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
  if (seq !== state.routeSeq) return;
  show("library-view");
  $("main").focus();
}

// Which page of the offline list is shown (20 a page, newest first).
let offlinePage = 0;

async function showOffline(shared) {
  const none = { rows: [], page: 0, more: false };
  let page = shared || !state.me.roles.includes("teacher") ? none : await api(`/api/unassigned?page=${offlinePage}`);
  if (!page.rows.length && offlinePage > 0) {
    // The last lesson on a later page was claimed: back to the newest.
    offlinePage = 0;
    page = await api("/api/unassigned?page=0");
  }
  $("offline").hidden = page.rows.length === 0;
  $("offline-pages").hidden = page.page === 0 && !page.more;
  $("offline-newer").disabled = page.page === 0;
  $("offline-older").disabled = !page.more;
  $("offline-list").replaceChildren(
    ...page.rows.map((r) => {
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
                await hooks.route();
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

for (const [id, step] of [["offline-newer", -1], ["offline-older", 1]]) {
  $(id).addEventListener("click", () => {
    offlinePage = Math.max(0, offlinePage + step);
    hooks.route();
  });
}
