// How times, lengths and a lesson's status read on the page.



export function when(ts) {
  return new Date(ts * 1000).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, "0")}`;
}

export function statusText(r) {
  if (r.status === "incomplete") return `incomplete (${r.missing_segments} segment(s) missing)`;
  return r.status;
}

export function retentionText(r) {
  if (r.held) return "Kept: on hold by the school";
  return r.delete_after ? `Deleted on ${new Date(r.delete_after * 1000).toLocaleDateString(undefined, { dateStyle: "medium" })}` : "";
}

export function gapText(g) {
  return g.kind === "pause"
    ? `Privacy pause at ${clock(g.at_seconds)}`
    : `${g.segments} segment(s) lost at ${clock(g.at_seconds)} (the device stopped before uploading them)`;
}

export function day(ts) {
  return ts ? new Date(ts * 1000).toLocaleDateString(undefined, { dateStyle: "medium" }) : "";
}
