// Browser check of the admin's device list: an admin signs in, opens Admin > Devices and finds the
// row of the device named LL_DEVICE saying LL_EXPECT. Run by tests/tests/devices.rs with:
//   LL_URL, LL_SERVER_CERT, LL_SCREENSHOTS, LL_USER ("username:password"), LL_DEVICE, LL_EXPECT.
// Prints JSON: row (the device's row as text), a11y (axe's count of lesser violations).
import { checkA11y, env, launch, newPage, noConsoleErrors, screenshot, signIn, url } from "./browser.mjs";

const [user, password] = env("LL_USER").split(":");
const browser = await launch();
try {
  const page = await newPage(browser);
  await signIn(page, user, password);
  await page.goto(`${url}#/admin/devices`);
  const row = page.locator("#admin-devices tr", { hasText: env("LL_DEVICE") }).filter({ hasText: env("LL_EXPECT") });
  await row.waitFor();
  await screenshot(page, "admin-devices");
  const a11y = await checkA11y(page, "admin-devices");
  noConsoleErrors(page);
  console.log(JSON.stringify({ row: await row.textContent(), a11y }));
} finally {
  await browser.close();
}
