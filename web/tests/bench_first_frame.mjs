// Benchmark, not a test (run by tests/benches/web.rs): time to first frame after pressing play on
// the recording page, over LL_RUNS page loads. Each run reloads the page, waits until the lesson's
// details are shown, calls play() and stops the clock when the first frame is presented
// (requestVideoFrameCallback). Prints {"times_ms": [...]}.
//   LL_URL, LL_SERVER_CERT, LL_SCREENSHOTS, LL_USER ("username:password"), LL_RECORDING, LL_RUNS
import { env, launch, newPage, signIn, url } from "./browser.mjs";

const [user, password] = env("LL_USER").split(":");
const recording = env("LL_RECORDING");
const runs = Number(process.env.LL_RUNS || "20");

const browser = await launch();
try {
  const page = await newPage(browser);
  await signIn(page, user, password);
  const times = [];
  for (let i = 0; i < runs; i++) {
    await page.goto(`${url}#/recording/${recording}`);
    await page.reload();
    await page.locator("#player-title").filter({ hasText: /\S/ }).waitFor();
    times.push(
      await page.evaluate(
        () =>
          new Promise((resolve, reject) => {
            const v = document.querySelector("video");
            v.muted = true;
            const t0 = performance.now();
            v.requestVideoFrameCallback(() => resolve(performance.now() - t0));
            v.play().catch(reject);
            setTimeout(() => reject(new Error("no frame within 10 s")), 10000);
          }),
      ),
    );
  }
  console.log(JSON.stringify({ times_ms: times }));
} finally {
  await browser.close();
}
