// Browser check for talk time: in Chromium, the teacher opens a lesson and sees the talk-time band
// under the timeline, with its totals; a click on the band moves the player there. Checks the page
// with axe and saves a screenshot. Run by tests/tests/talk.rs with:
//   LL_URL, LL_USER, LL_PASSWORD, LL_RECORDING, LL_SERVER_CERT, LL_SCREENSHOTS
// Prints the totals as the page shows them, and where the player went, as JSON.
import { checkA11y, env, launch, newPage, noConsoleErrors, screenshot, signIn } from "./browser.mjs";

const recording = env("LL_RECORDING");
const browser = await launch();
try {
  const page = await newPage(browser);
  await signIn(page, env("LL_USER"), env("LL_PASSWORD"));
  await page.goto(`${env("LL_URL")}#/recording/${recording}`);
  const talk = page.locator("#talk");
  await talk.waitFor({ state: "visible" });
  const band = page.locator("#talk-band");
  const runs = await band.locator("span").count();
  if (runs === 0) throw new Error("the talk-time band is empty");
  const totals = await page.locator("#talk-totals").innerText();
  const video = page.locator("video");
  await page.waitForFunction(() => document.querySelector("video").readyState >= 1, null, { timeout: 15000 });
  // A click three quarters along the band seeks three quarters into the lesson.
  const box = await band.boundingBox();
  await band.click({ position: { x: box.width * 0.75, y: box.height / 2 } });
  await page.waitForFunction(() => document.querySelector("video").currentTime > 1, null, { timeout: 10000 });
  const at = await video.evaluate((v) => v.currentTime);
  await screenshot(page, "talk-time");
  await checkA11y(page, "talk-time");
  noConsoleErrors(page);
  console.log(JSON.stringify({ runs, totals, at, label: await band.getAttribute("aria-label") }));
} finally {
  await browser.close();
}
