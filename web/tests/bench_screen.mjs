// Device screen benchmarks, driven by tests/benches/screen.rs. LL_BENCH picks one:
//   start   LL_RUNS times: tap Record, type the code, tap Start, and time until the screen says
//           "Recording"; then stop and go back to idle. Prints {"times_ms": [...]}.
//   meter   starts a recording, prints "ready", and records when the meter crosses -20 dB going
//           up (wall clock, ms) until a line arrives on stdin; prints {"crossings_ms": [...]}.
//   open    shows the screen while recording (meter and preview running) for LL_SECONDS.
import { launch, env } from "./browser.mjs";
import { createInterface } from "node:readline";

const device = env("LL_DEVICE");
const code = env("LL_CODE");
const browser = await launch();
const page = await (await browser.newContext({ viewport: { width: 800, height: 480 }, hasTouch: true })).newPage();
await page.goto(device);
await page.locator("#room").filter({ hasText: /\S/ }).waitFor();

const state = () => page.evaluate(() => document.body.dataset.state);
async function waitState(want, seconds = 30) {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    if ((await state()) === want) return;
    await page.waitForTimeout(10);
  }
  throw new Error(`no "${want}" within ${seconds} s`);
}
const post = (path, body) =>
  page.evaluate(
    ([p, b]) => fetch(p, { method: "POST", headers: { "content-type": "application/json" }, body: b }).then((r) => r.status),
    [path, JSON.stringify(body)],
  );

const mode = env("LL_BENCH");
if (mode === "start") {
  const times = [];
  for (let i = 0; i < Number(env("LL_RUNS")); i++) {
    await waitState("idle");
    await page.getByRole("button", { name: "Record" }).tap();
    for (const d of code) await page.locator(`[data-digit="${d}"]`).tap();
    const t0 = Date.now();
    await page.getByRole("button", { name: "Start recording" }).tap();
    await waitState("recording");
    times.push(Date.now() - t0);
    await post("/v1/record/stop", {});
    await waitState("after");
    await page.getByRole("button", { name: "Done" }).tap();
  }
  console.log(JSON.stringify({ times_ms: times }));
}

if (mode === "meter") {
  await post("/v1/record/start", { code });
  await waitState("recording");
  // Watch the meter inside the page, so that the time is taken when the page changes it.
  await page.evaluate(() => {
    window.crossings = [];
    let below = true;
    const seen = () => {
      const m = document.querySelector(".meter");
      if (!m) return;
      const db = Number(m.getAttribute("aria-valuenow"));
      if (below && db > -20) window.crossings.push(Date.now());
      below = db <= -20;
    };
    new MutationObserver(seen).observe(document.body, { subtree: true, attributes: true, attributeFilter: ["aria-valuenow"] });
  });
  console.log("ready");
  await new Promise((resolve) => createInterface({ input: process.stdin }).once("line", resolve));
  console.log(JSON.stringify({ crossings_ms: await page.evaluate(() => window.crossings) }));
  await post("/v1/record/stop", {});
}

if (mode === "open") {
  await waitState("recording");
  await page.locator("#preview").waitFor({ state: "visible" });
  console.log("ready");
  await page.waitForTimeout(Number(env("LL_SECONDS")) * 1000);
}

await browser.close();
