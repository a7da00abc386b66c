// Browser check for the recorded-lesson spine: in Debian's Chromium (driven by playwright-core), the
// teacher signs in, sees the lesson in "My lessons", opens it and it plays: currentTime advances with
// no media error. Saves a screenshot of the recording page. Run by tests/tests/spine.rs with:
//   LL_URL, LL_USER, LL_PASSWORD, LL_RECORDING, LL_SERVER_CERT (PEM of the server certificate),
//   LL_SCREENSHOTS (folder for screenshots), LL_PLAY_TO (seconds of media to play; default 2)
import { chromium } from "playwright-core";
import { createHash, X509Certificate } from "node:crypto";
import { readFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const url = env("LL_URL");
const recording = env("LL_RECORDING");
const shots = env("LL_SCREENSHOTS");
mkdirSync(shots, { recursive: true });

// Trust exactly the test server's key (SPKI pin) rather than ignoring certificate errors.
const cert = new X509Certificate(readFileSync(env("LL_SERVER_CERT")));
const spki = createHash("sha256").update(cert.publicKey.export({ type: "spki", format: "der" })).digest("base64");

// launch() gives every run a fresh, empty profile.
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    `--ignore-certificate-errors-spki-list=${spki}`,
    "--autoplay-policy=no-user-gesture-required",
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const consoleErrors = [];
  // The app asks /api/me first; a 401 there just means "not signed in yet".
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().includes("status of 401")) consoleErrors.push(m.text());
  });
  await page.goto(url);
  await page.getByLabel("Username").fill(env("LL_USER"));
  await page.getByLabel("Password").fill(env("LL_PASSWORD"));
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "My lessons" }).waitFor();
  const link = page.locator(`a[href="#/recording/${recording}"]`);
  await link.waitFor();
  await page.screenshot({ path: join(shots, "library.png") });
  await link.click();
  const video = page.locator("video");
  await video.waitFor();
  await page.waitForFunction(() => document.querySelector("video").readyState >= 2, null, { timeout: 15000 });
  await video.evaluate((v) => {
    v.muted = true;
    return v.play();
  });
  const playTo = Number(process.env.LL_PLAY_TO || "2");
  await page.waitForFunction((t) => document.querySelector("video").currentTime > t, playTo, {
    timeout: 15000 + playTo * 2000,
  });
  const state = await video.evaluate((v) => ({ t: v.currentTime, error: v.error && v.error.code, d: v.duration }));
  if (state.error) throw new Error(`media error ${state.error}`);
  const shown = await page.locator("#player-error").textContent();
  if (shown) throw new Error(`page shows an error: ${shown}`);
  await page.screenshot({ path: join(shots, "recording.png") });
  if (consoleErrors.length) throw new Error(`console errors: ${consoleErrors.join("; ")}`);
  console.log(JSON.stringify({ played_to: state.t, duration: state.d }));
} finally {
  await browser.close();
}
