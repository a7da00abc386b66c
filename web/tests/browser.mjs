// Shared by the browser tests: Debian's Chromium with a fresh profile, trusting exactly the test
// server's key (SPKI pin) rather than ignoring certificate errors; signing in; axe-core checks.
import { chromium } from "playwright-core";
import { createHash, X509Certificate } from "node:crypto";
import { readFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

export const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};

export const url = env("LL_URL");

// A browser check that hangs fails instead of holding up the test run.
const limit = Number(process.env.LL_TIME_LIMIT_S || "240");
setTimeout(() => {
  console.error(`browser check still running after ${limit} s: giving up`);
  process.exit(3);
}, limit * 1000).unref();
const shots = env("LL_SCREENSHOTS");
mkdirSync(shots, { recursive: true });

export async function launch() {
  const cert = new X509Certificate(readFileSync(env("LL_SERVER_CERT")));
  const spki = createHash("sha256").update(cert.publicKey.export({ type: "spki", format: "der" })).digest("base64");
  // launch() gives every run a fresh, empty profile.
  return chromium.launch({
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
}

// A page in its own context (own cookies), collecting console errors. The app asks /api/me first;
// a 401 there just means "not signed in yet", and 404s are what refused people are meant to get.
export async function newPage(browser, width = 1280) {
  const context = await browser.newContext({ viewport: { width, height: 800 } });
  const page = await context.newPage();
  page.consoleErrors = [];
  page.on("console", (m) => {
    const t = m.text();
    if (m.type() === "error" && !t.includes("status of 401") && !t.includes("status of 404")) page.consoleErrors.push(t);
  });
  page.on("dialog", (d) => d.accept());
  return page;
}

export async function signIn(page, user, password) {
  await page.goto(`${url}`);
  await page.getByLabel("Username", { exact: true }).fill(user);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#who").filter({ hasText: user }).waitFor();
}

export async function screenshot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

// axe-core on the page as it is now: any serious or critical violation fails the run.
export async function checkA11y(page, name) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  if (bad.length) {
    const detail = bad.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
    throw new Error(`accessibility violations on ${name}:\n${detail.join("\n")}`);
  }
  return result.violations.length;
}

export function noConsoleErrors(page) {
  if (page.consoleErrors.length) throw new Error(`console errors: ${page.consoleErrors.join("; ")}`);
}
