// Browser check of recording from the web app: a teacher opens Rooms, presses Record in a free
// room, sees it record, pauses, resumes and stops it, while the other room stays free; the room's
// own screen (LL_DEVICE) says who started it from the web. Run by tests/tests/rooms.rs with:
//   LL_URL, LL_SERVER_CERT, LL_SCREENSHOTS, LL_USER ("username:password"), LL_ROOM (to record in),
//   LL_OTHER (the room that must stay free, then is booked), LL_DEVICE (LL_ROOM's screen address).
// Prints JSON: recorded (true), a11y (axe's count of lesser violations on the rooms page).
import { checkA11y, env, launch, newPage, noConsoleErrors, screenshot, signIn } from "./browser.mjs";

const [user, password] = env("LL_USER").split(":");
const room = env("LL_ROOM");
const other = env("LL_OTHER");
const browser = await launch();
try {
  const page = await newPage(browser);
  await signIn(page, user, password);
  await page.getByRole("link", { name: "Rooms" }).click();
  const row = (name) => page.locator("#rooms tr", { has: page.locator("th", { hasText: name }) });
  const stateOf = (name) => row(name).locator(".room-state");
  await stateOf(room).filter({ hasText: "Free" }).waitFor();
  await stateOf(other).filter({ hasText: "Free" }).waitFor();
  const a11y = await checkA11y(page, "rooms");
  await screenshot(page, "rooms-free");

  await page.getByRole("button", { name: `Record: ${room}` }).click();
  await stateOf(room).filter({ hasText: "Recording: your lesson" }).waitFor({ timeout: 30000 });
  await screenshot(page, "rooms-recording");
  // The room's own screen says who started it from the web.
  const screen = await browser.newPage();
  await screen.goto(env("LL_DEVICE"));
  await screen.locator("#started-by", { hasText: `Started from the web by ${user}` }).waitFor();
  await screen.close();

  await page.getByRole("button", { name: `Pause: ${room}` }).click();
  await stateOf(room).filter({ hasText: "Paused: your lesson" }).waitFor({ timeout: 15000 });
  await page.getByRole("button", { name: `Resume: ${room}` }).click();
  await stateOf(room).filter({ hasText: "Recording: your lesson" }).waitFor({ timeout: 30000 });
  await page.getByRole("button", { name: `Stop: ${room}` }).click();
  await stateOf(room).filter({ hasText: "Free" }).waitFor({ timeout: 30000 });
  const otherState = await stateOf(other).textContent();
  if (otherState !== "Free") throw new Error(`the other room shows "${otherState}"`);

  // Booking: tomorrow 10:00 to 11:00, two weeks in a row; both are listed; one is cancelled.
  const tomorrow = new Date(Date.now() + 86400000).toISOString().slice(0, 10);
  const form = page.locator("#booking-form");
  await form.getByLabel("Room", { exact: true }).selectOption(other);
  await form.getByLabel("Day", { exact: true }).fill(tomorrow);
  await form.getByLabel("From", { exact: true }).fill("10:00");
  await form.getByLabel("To", { exact: true }).fill("11:00");
  await form.getByLabel("Weeks in a row").fill("2");
  await page.getByRole("button", { name: "Book", exact: true }).click();
  const bookings = page.locator("#bookings tr");
  await bookings.nth(1).waitFor();
  if ((await bookings.count()) !== 2) throw new Error(`${await bookings.count()} bookings listed`);
  await screenshot(page, "rooms-bookings");
  await checkA11y(page, "rooms-bookings");
  await page.getByRole("button", { name: /^Cancel the booking of/ }).first().click();
  await page.waitForFunction(() => document.querySelectorAll("#bookings tr").length === 1);
  noConsoleErrors(page);
  console.log(JSON.stringify({ recorded: true, a11y }));
} finally {
  await browser.close();
}
