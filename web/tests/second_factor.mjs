// Browser check of the Account page and two-step sign-in. A teacher reads the admin actions on
// their account (acknowledging the notice of unseen ones), sets a device code, makes a recovery
// code, signs out, recovers with that code (new password), and signs in with the new password.
// Then they turn two-step sign-in on (typing the code an authenticator app would show for the key
// on screen), sign out, and sign in again with the new password and a code. The app's codes are
// computed here (RFC 6238, HMAC-SHA-1, 6 digits, 30 s) from the key the page shows.
// Run by tests/tests/second_factor.rs with:
//   LL_URL, LL_SERVER_CERT, LL_SCREENSHOTS, LL_USER ("username:password");
//   optional LL_DEVICE_CODE (default 4821), LL_NEW_PASSWORD (default "<password>-recovered"),
//   LL_ADMIN_ACTION (text an unseen admin action must contain: then the notice must show it).
// Prints JSON: a11y, a11y_recover (axe counts), admin_actions_unseen (the notice's lines, [] if
// none), admin_actions_listed (rows on the Account page), device_code, recovery_code, new_password.
import { createHmac } from "node:crypto";
import { checkA11y, env, launch, newPage, noConsoleErrors, screenshot, signIn } from "./browser.mjs";

const [user, oldPassword] = env("LL_USER").split(":");
const deviceCode = process.env.LL_DEVICE_CODE || "4821";
const password = process.env.LL_NEW_PASSWORD || `${oldPassword}-recovered`;
const expectAction = process.env.LL_ADMIN_ACTION;

function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
}

function base32(text) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const ch of text.replace(/[\s=]/g, "").toUpperCase()) bits += alphabet.indexOf(ch).toString(2).padStart(5, "0");
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

function totp(key, at) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 30)));
  const mac = createHmac("sha1", key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1000000).padStart(6, "0");
}

const report = {};
const browser = await launch();
try {
  const page = await newPage(browser);
  await signIn(page, user, oldPassword);
  // Admin actions not yet seen are in a notice on the first page, until acknowledged.
  const notice = page.locator("#admin-actions-notice");
  report.admin_actions_unseen = (await notice.isVisible()) ? await page.locator("#admin-actions-unseen li").allTextContents() : [];
  if (expectAction) check(report.admin_actions_unseen.some((t) => t.includes(expectAction)), `the notice shows "${expectAction}"`);
  if (report.admin_actions_unseen.length) {
    await page.getByRole("button", { name: "I have seen this" }).click();
    await notice.waitFor({ state: "hidden" });
  }
  await page.getByRole("link", { name: "Account" }).click();
  await page.getByRole("heading", { name: "Changes an admin made to your account" }).waitFor();
  report.admin_actions_listed = await page.locator("#admin-actions tr:not(.meta)").count();
  if (expectAction) await page.locator("#admin-actions", { hasText: expectAction }).waitFor();

  // The device code the teacher types on the classroom device.
  await page.locator("#device-code-status", { hasText: "You have no device code yet" }).waitFor();
  await page.getByLabel("New device code").fill(deviceCode);
  await page.locator("#device-code-password").fill(oldPassword);
  await page.getByRole("button", { name: "Set device code" }).click();
  await page.locator("#device-code-status", { hasText: "You have a device code." }).waitFor();
  report.device_code = deviceCode;

  // A recovery code, shown once with the warning that nobody else can reset the password.
  await page.getByLabel("Your current password").fill(oldPassword);
  await page.getByRole("button", { name: "Make a recovery code" }).click();
  await page.locator("#recovery-result").getByText("cannot reset your password").waitFor();
  const recovery = (await page.locator("#recovery-code").textContent()).trim();
  check(/^[0-9A-Z]+(-[0-9A-Z]+)+$/.test(recovery), `recovery code ${recovery}`);
  report.recovery_code = recovery;
  await page.locator("#recovery-status", { hasText: "You have a recovery code." }).waitFor();
  await page.getByRole("button", { name: "I have written it down" }).click();
  check((await page.locator("#recovery-code").textContent()) === "", "the recovery code stays on screen");

  // Forgot the password: the recovery code sets a new one (the two typed must match).
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("button", { name: "Forgot your password?" }).click();
  await page.getByLabel("Your username").fill(user);
  await page.getByLabel("Recovery code").fill(recovery);
  await page.getByLabel("Password to sign in with from now on").fill(password);
  await page.getByLabel("That password again").fill(`${password}-typo`);
  await page.getByRole("button", { name: "Change my password" }).click();
  await page.locator("#recover-error", { hasText: "The two passwords differ." }).waitFor();
  report.a11y_recover = await checkA11y(page, "recover");
  await screenshot(page, "recover");
  await page.getByLabel("That password again").fill(password);
  await page.getByRole("button", { name: "Change my password" }).click();
  await page.locator("#login-notice", { hasText: "Your password is changed" }).waitFor();
  check(await page.locator("#recover-form").isHidden(), "the recovery form stays open");
  report.new_password = password;
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#who").filter({ hasText: user }).waitFor();

  await page.getByRole("link", { name: "Account" }).click();
  await page.getByRole("heading", { name: "Two-step sign-in" }).waitFor();
  await page.getByRole("button", { name: "Set up two-step sign-in" }).click();
  await page.getByLabel("Code from the app").waitFor();
  const key = base32(await page.locator("#second-factor-secret").textContent());
  // The QR code is drawn: a white quiet zone, then the top-left finder pattern (dark ring,
  // light ring, dark centre), sampled in the middle of its modules.
  const qr = await page.evaluate(() => {
    const c = document.querySelector("#second-factor-qr");
    const m = Number(c.dataset.modulePx);
    const at = (col, row) => Array.from(c.getContext("2d").getImageData((4 + col + 0.5) * m, (4 + row + 0.5) * m, 1, 1).data.slice(0, 3)).join();
    return [at(-2, -2), at(0, 0), at(1, 1), at(3, 3), at(6, 6)];
  });
  const [w, b] = ["255,255,255", "0,0,0"];
  if (qr.join("|") !== [w, b, w, b, b].join("|")) throw new Error(`no QR code drawn: ${JSON.stringify(qr)}`);
  check(key.length === 20, `a 160-bit key, got ${key.length} bytes`);
  check((await page.locator("#second-factor-link").getAttribute("href")).startsWith("otpauth://totp/"), "otpauth link");
  await page.getByLabel("Code from the app").fill(totp(key, Date.now() / 1000));
  await page.locator("#second-factor-password").fill(password);
  await page.getByRole("button", { name: "Turn on" }).click();
  await page.getByText(/^On: signing in asks for a code/).waitFor();
  // The subject access archive downloads from the same page.
  const [archive] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Download my data" }).click()]);
  check(archive.suggestedFilename() === `lessonlens-${user}.zip`, `archive named ${archive.suggestedFilename()}`);
  report.a11y = await checkA11y(page, "account");
  await screenshot(page, "account");

  // Sign out; the password alone now leads to the code field.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("Username", { exact: true }).fill(user);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  const code = page.getByLabel("Code from your authenticator app");
  await code.waitFor();
  await code.fill("000000");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText(/^wrong code/).waitFor();
  // That refusal is the expected 400, not a fault of the page.
  page.consoleErrors = page.consoleErrors.filter((t) => !t.includes("status of 400"));
  // The next step's code (the current one was used to turn it on).
  await code.fill(totp(key, Date.now() / 1000 + 30));
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#who").filter({ hasText: user }).waitFor();
  await page.getByRole("heading", { name: "My lessons" }).waitFor();
  noConsoleErrors(page);
  console.log(JSON.stringify(report));
} finally {
  await browser.close();
}
