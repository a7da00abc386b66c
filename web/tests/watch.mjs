// Browser check for the recorded-lesson spine: in Debian's Chromium (driven by playwright-core), the
// teacher signs in, sees the lesson in "My lessons", opens it and it plays: currentTime advances with
// no media error. Saves a screenshot of the recording page. Run by tests/tests/spine.rs with:
//   LL_URL, LL_USER, LL_PASSWORD, LL_RECORDING, LL_SERVER_CERT (PEM of the server certificate),
//   LL_SCREENSHOTS (folder for screenshots), LL_PLAY_TO (seconds of media to play; default 2)
import { env, launch, newPage, noConsoleErrors, screenshot, signIn } from "./browser.mjs";

const recording = env("LL_RECORDING");
const browser = await launch();
try {
  const page = await newPage(browser);
  await signIn(page, env("LL_USER"), env("LL_PASSWORD"));
  await page.getByRole("heading", { name: "My lessons" }).waitFor();
  const link = page.locator(`a[href="#/recording/${recording}"]`);
  await link.waitFor();
  await screenshot(page, "library");
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
  await screenshot(page, "recording");
  noConsoleErrors(page);
  console.log(JSON.stringify({ played_to: state.t, duration: state.d }));
} finally {
  await browser.close();
}
