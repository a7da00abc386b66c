// Following a lesson live, and what a finished lesson's timeline shows (issue 5), in Debian's
// Chromium against the real server while the real capture service records:
//   the coach opens a lesson still being recorded and the player follows it a few seconds behind
//   the live edge; the teacher then pauses for privacy and stops; the finished lesson shows the
//   pause on the timeline, and plays through it. Then the coach's session ends under the page
//   (as when it expires) and the app says so and brings them back after signing in.
// Run by tests/tests/live.rs with LL_URL, LL_SERVER_CERT, LL_SCREENSHOTS, LL_RECORDING,
// LL_COACH ("username:password") and LL_SIGNALS, a folder where this script and the test leave
// each other files: "following" (written here), "expire" (here), "expired" (by the test).
import { checkA11y, env, launch, newPage, noConsoleErrors, screenshot, signIn, url } from "./browser.mjs";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const rec = env("LL_RECORDING");
const [coach, coachPw] = env("LL_COACH").split(":");
const signals = env("LL_SIGNALS");
const report = {};

function check(cond, what) {
  if (!cond) throw new Error(what);
}

async function waitSignal(name) {
  for (let i = 0; i < 600 && !existsSync(join(signals, name)); i++) await new Promise((r) => setTimeout(r, 100));
  check(existsSync(join(signals, name)), `the test never signalled ${name}`);
}

const position = (page) =>
  page.evaluate(() => {
    const v = document.querySelector("video");
    return { t: v.currentTime, end: v.seekable.length ? v.seekable.end(v.seekable.length - 1) : 0, error: v.error && v.error.code };
  });

const browser = await launch();
try {
  const c = await newPage(browser);
  await signIn(c, coach, coachPw);
  await c.goto(`${url}#/recording/${rec}`);
  await c.locator("#player-status", { hasText: "recording" }).waitFor();
  await c.waitForFunction(() => document.querySelector("video").readyState >= 2, null, { timeout: 30000 });
  await c.evaluate(() => {
    const v = document.querySelector("video");
    v.muted = true;
    return v.play();
  });

  // Live: the playlist grows while the lesson records, and the player keeps up with it.
  const a = await position(c);
  await c.waitForTimeout(8000);
  const b = await position(c);
  report.live = { a, b };
  check(b.end >= a.end + 4, `the live edge did not move: ${JSON.stringify(report.live)}`);
  check(b.t >= a.t + 4, `the player did not follow: ${JSON.stringify(report.live)}`);
  check(b.end - b.t < 12, `the player is far behind the lesson: ${JSON.stringify(report.live)}`);
  check(!b.error, `media error ${b.error}`);
  await screenshot(c, "live");
  writeFileSync(join(signals, "following"), "");

  // The teacher pauses, resumes and stops (the test does that): wait for the finished lesson.
  const fetchDetail = () => c.evaluate(async (rec) => (await fetch(`/api/recordings/${rec}`)).json(), rec);
  let detail = await fetchDetail();
  for (let i = 0; i < 90 && detail.status === "recording"; i++) {
    await c.waitForTimeout(1000);
    detail = await fetchDetail();
  }
  report.status = detail.status;
  report.gaps = detail.gaps;
  check(detail.status === "complete", `finished lesson is ${detail.status}`);
  check(detail.gaps.length === 1 && detail.gaps[0].kind === "pause", `gaps ${JSON.stringify(detail)}`);
  await c.reload();
  await c.locator("#gaps", { hasText: "Privacy pause at" }).waitFor();
  check((await c.locator("#timeline .gap.pause").count()) === 1, "no pause drawn on the timeline");
  check((await c.locator("#back").textContent()) === "← Shared with me", "the way back is to the coach's library");

  // It plays through the pause: from a second before it to two seconds after.
  const at = detail.gaps[0].at_seconds;
  await c.waitForFunction(() => document.querySelector("video").readyState >= 2, null, { timeout: 30000 });
  await c.evaluate((t) => {
    const v = document.querySelector("video");
    v.muted = true;
    v.currentTime = Math.max(0, t - 1);
    return v.play();
  }, at);
  await c.waitForFunction((t) => document.querySelector("video").currentTime > t + 2, at, { timeout: 20000 });
  const after = await position(c);
  check(!after.error, `media error ${after.error} after the pause`);
  check((await c.locator("#player-error").textContent()) === "", "the player reported an error");
  await screenshot(c, "recording-with-pause");
  report.a11y = await checkA11y(c, "recording-with-pause");

  // The session ends under the page (the test deletes it, as expiry does).
  writeFileSync(join(signals, "expire"), "");
  await waitSignal("expired");
  await c.getByRole("link", { name: "Shared with me", exact: true }).click();
  await c.locator("#login-notice", { hasText: "Your session has ended" }).waitFor();
  check(await c.locator("#login-view").isVisible(), "the sign-in page is not shown");
  await c.getByLabel("Username", { exact: true }).fill(coach);
  await c.getByLabel("Password", { exact: true }).fill(coachPw);
  await c.getByRole("button", { name: "Sign in" }).click();
  await c.getByRole("heading", { name: "Shared with me" }).waitFor();
  check((await c.locator("#login-notice").textContent()) === "", "the notice stays after signing in");
  noConsoleErrors(c);
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
