// The classroom device's screen, driven by touch in Debian's Chromium against the real capture
// service (test sources) talking to the real server. LL_DEVICE is the screen's address; LL_STEPS
// picks the scenario:
//   lesson   a wrong code, then the right one; the meter moves with the tone's volume; the
//            preview shows the camera; pause, resume, stop with confirmation; "Uploaded"; back
//            to idle with nothing of the teacher left. Prints `recording <id>`.
//   faults   a silent microphone's warning, then the camera taken away (LL_CAMERA_PID is killed)
//            and the error on the screen.
//   offline  the server is down: the lesson records to the school's key and the screen says so.
//   booked   a booked slot begins: the prompt names the teacher; a tap on Record starts it.
// Every state is checked with axe, at LL_WIDTH x LL_HEIGHT (default 800x480), with touch only.
import { launch, checkA11y, screenshot, noConsoleErrors, env } from "./browser.mjs";

const device = env("LL_DEVICE");
const steps = env("LL_STEPS");
const width = Number(process.env.LL_WIDTH || "800");
const height = Number(process.env.LL_HEIGHT || "480");
const GOOD_CODE = process.env.LL_CODE || "2468";

const browser = await launch();
const context = await browser.newContext({ viewport: { width, height }, hasTouch: true, isMobile: false });
const page = await context.newPage();
page.consoleErrors = [];
page.on("console", (m) => {
  // A refused start answers 422, which Chromium logs; that is the point of the wrong code.
  if (m.type() === "error" && !m.text().includes("status of 422")) page.consoleErrors.push(m.text());
});

const state = () => page.evaluate(() => document.body.dataset.state);
async function waitState(want, seconds = 20) {
  const deadline = Date.now() + seconds * 1000;
  let seen;
  while (Date.now() < deadline) {
    seen = await state();
    if (seen === want) return;
    await page.waitForTimeout(50);
  }
  throw new Error(`the screen did not reach "${want}" within ${seconds} s (it shows "${seen}")`);
}

// Every visible control is at least 48 px both ways.
async function checkTargets(name) {
  const small = await page.evaluate(() =>
    [...document.querySelectorAll("button")]
      .filter((b) => b.offsetParent !== null)
      .map((b) => ({ text: b.textContent.trim(), r: b.getBoundingClientRect() }))
      .filter(({ r }) => r.width < 48 || r.height < 48)
      .map(({ text, r }) => `${text} ${Math.round(r.width)}x${Math.round(r.height)}`),
  );
  if (small.length) throw new Error(`touch targets under 48 px on ${name}: ${small.join(", ")}`);
  // Nothing may be cut off: the page does not scroll on the device.
  const over = await page.evaluate(() =>
    [...document.querySelectorAll("button, h1, .meter")]
      .filter((e) => e.offsetParent !== null)
      .filter((e) => e.getBoundingClientRect().bottom > window.innerHeight + 1)
      .map((e) => e.id || e.textContent.trim()),
  );
  if (over.length) throw new Error(`below the bottom of the screen on ${name}: ${over.join(", ")}`);
}

async function look(name) {
  await checkA11y(page, name);
  await checkTargets(name);
  await screenshot(page, `${name}-${width}x${height}`);
}

const tap = (locator) => locator.tap();

async function typeCode(code) {
  for (const d of code) await tap(page.locator(`[data-digit="${d}"]`));
}

async function startWith(code) {
  await tap(page.getByRole("button", { name: "Record" }));
  await waitState("pin");
  await typeCode(code);
  await tap(page.getByRole("button", { name: "Start recording" }));
}

// Samples the microphone meter for `ms`; returns [lowest, highest] dB shown.
async function meterRange(ms) {
  const seen = [];
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await page.locator(".meter").first().getAttribute("aria-valuenow").catch(() => null);
    if (v !== null) seen.push(Number(v));
    await page.waitForTimeout(50);
  }
  if (!seen.length) throw new Error("no level meter on the recording screen");
  return [Math.min(...seen), Math.max(...seen)];
}

const status = () => page.evaluate(() => fetch("/v1/status").then((r) => r.json()));

// A clock the test can move on (it runs on by itself as well), for the keypad's 30 s.
await page.clock.install();
await page.goto(device);
await page.locator("#room").filter({ hasText: /\S/ }).waitFor();
await waitState("idle");

if (steps === "lesson") {
  await page.getByText("All lessons are uploaded.").waitFor();
  await look("idle");

  // Digits left on the keypad are cleared after 30 s untouched, and the screen goes back to idle.
  await tap(page.getByRole("button", { name: "Record" }));
  await waitState("pin");
  await typeCode("12");
  await page.clock.fastForward(29_000);
  if ((await state()) !== "pin") throw new Error("the keypad closed before 30 s");
  await page.clock.fastForward(2_000);
  await waitState("idle", 5);
  await tap(page.getByRole("button", { name: "Record" }));
  if ((await page.locator("#code").textContent()) !== "") throw new Error("typed digits outlived the keypad");
  await tap(page.getByRole("button", { name: "Cancel" }));
  await waitState("idle");

  // A wrong code: a clear message, and nothing starts.
  await startWith("1357");
  await page.getByText("no teacher has that code").waitFor({ timeout: 20_000 });
  if ((await status()).state !== "idle") throw new Error("a wrong code started something");
  await look("wrong-code");

  // The right code. "Starting…" first; "Recording" only once the service says so.
  await tap(page.getByRole("button", { name: "Clear all digits" }));
  await typeCode(GOOD_CODE);
  const pressed = Date.now();
  await tap(page.getByRole("button", { name: "Start recording" }));
  // "Starting…" lasts until the first segment is sealed (about 2 s): checked while it shows.
  await waitState("starting", 10);
  await look("starting");
  await waitState("recording", 20);
  console.log(`record-to-recording-ms ${Date.now() - pressed}`);
  const s = await status();
  if (s.state !== "recording") throw new Error(`the screen says recording, the service says ${s.state}`);
  await page.getByRole("heading", { name: "Recording" }).waitFor();
  await page.getByText(process.env.LL_TEACHER_NAME).waitFor();
  if (await page.getByText(s.teacher, { exact: true }).count()) throw new Error("the screen shows the username");

  // The meter follows the tone, whose volume the test switches between quiet and loud.
  const [low, high] = await meterRange(4000);
  console.log(`meter range ${low} ${high}`);
  if (!(low <= -35 && high >= -15)) throw new Error(`the meter did not move with the tone: ${low}..${high} dB`);

  // The camera's preview, a few frames a second, from memory.
  await page.locator("#preview").waitFor({ state: "visible", timeout: 10_000 });
  const shown = await page.locator("#preview").evaluate((img) => img.naturalWidth);
  if (shown !== 320) throw new Error(`the preview is ${shown} px wide`);
  await look("recording");

  await tap(page.getByRole("button", { name: "Pause" }));
  await waitState("paused");
  await page.getByText("nothing is being recorded").waitFor();
  await look("paused");
  await tap(page.getByRole("button", { name: "Resume" }));
  await waitState("recording");
  await page.waitForTimeout(2500);

  // Stop asks first; "Keep recording" keeps it.
  await tap(page.getByRole("button", { name: "Stop" }));
  await page.getByRole("dialog").waitFor();
  await look("confirm-stop");
  await tap(page.getByRole("button", { name: "Keep recording" }));
  if ((await status()).state !== "recording") throw new Error("Keep recording stopped the lesson");
  await tap(page.getByRole("button", { name: "Stop" }));
  await tap(page.getByRole("dialog").getByRole("button", { name: "Stop" }));
  await waitState("after", 20);
  await page.getByRole("heading", { name: /Saved|Uploaded/ }).waitFor();
  await page.getByRole("heading", { name: "Uploaded" }).waitFor({ timeout: 60_000 });
  await look("uploaded");
  const done = await status();
  console.log(`recording ${done.last_recording.recording}`);

  // Back to idle, with nothing of the teacher on screen.
  await tap(page.getByRole("button", { name: "Done" }));
  await waitState("idle");
  const text = await page.locator("body").innerText();
  if (text.includes(process.env.LL_TEACHER_NAME)) throw new Error("the idle screen still names the teacher");
  if (await page.locator("#preview").getAttribute("src")) throw new Error("the preview frame outlived the lesson");
}

if (steps === "faults") {
  await startWith(GOOD_CODE);
  await waitState("recording", 20);
  // The test microphone is silent: the warning appears, and the lesson records on.
  await page.getByText("has sent no sound at all").waitFor({ timeout: 20_000 });
  await look("silent-microphone");
  if ((await status()).state !== "recording") throw new Error("a warning ended the recording");

  // The camera goes away mid-lesson: the recording ends, and the screen says what happened.
  process.kill(Number(env("LL_CAMERA_PID")), "SIGKILL");
  await page.getByText("The last recording stopped by itself.").waitFor({ timeout: 30_000 });
  await page.getByText("the camera stopped delivering", { exact: false }).waitFor();
  await look("camera-gone");
}

if (steps === "offline") {
  await startWith(GOOD_CODE);
  await waitState("recording", 30);
  await page.getByText("kept sealed on this device").waitFor();
  await page.getByText("School server not reachable").waitFor({ timeout: 70_000 });
  await look("offline");
  await tap(page.getByRole("button", { name: "Stop" }));
  await tap(page.getByRole("dialog").getByRole("button", { name: "Stop" }));
  await waitState("after", 20);
  await page.getByText("uploads by itself when the school server can be reached").waitFor();
  await look("saved-offline");
}

if (steps === "booked") {
  // A booked slot begins: the screen asks, and a tap on Record starts it with no code.
  await page.locator("#booked", { hasText: "lesson is booked: tap Record or press the button to start" }).waitFor({ timeout: 30_000 });
  await look("booked");
  await tap(page.getByRole("button", { name: "Record" }));
  await waitState("recording", 30);
  await look("booked-recording");
}

noConsoleErrors(page);
await browser.close();
console.log("device screen ok");
