// Reviewing a lesson in the browser (issue 5), in Debian's Chromium driven by playwright-core,
// against the real server and a lesson recorded by the real capture daemon (timeoverlay source):
//   the teacher plays it, seeks and sees that moment, comments at a time, writes a private
//   reflection and shares with a coach; the coach finds it under "Shared with me", clicks the
//   comment (the player seeks there) and replies, and does not see the reflection; the teacher sees
//   who watched, then stops sharing and the coach's next request is refused; an admin cannot open it,
//   but adds (by invitation) and offboards a person, adds a second coach, holds the recording and
//   filters the audit log; a person invited by the admin sees and acknowledges the admin's actions
//   on their account; the teacher sees a group's members before sharing with it, sees the coach
//   who joined afterwards marked as unable to watch, and lets them in.
// Every main page gets a screenshot and an axe-core check. Run by tests/tests/review.rs with
//   LL_URL, LL_SERVER_CERT, LL_SCREENSHOTS, LL_RECORDING, and LL_TEACHER / LL_COACH / LL_ADMIN
//   as "username:password". Prints JSON: a11y, poster_width, download_bytes, enrollment_code,
//   share_group_members (the share form's text about the group), nina_admin_actions ({unseen:
//   the notice's lines, listed: rows on her Account page}), late_member_let_in (true).
import { checkA11y, env, launch, newPage, noConsoleErrors, screenshot, signIn, url } from "./browser.mjs";
import { readFile } from "node:fs/promises";

const rec = env("LL_RECORDING");
const [teacher, teacherPw] = env("LL_TEACHER").split(":");
const [coach, coachPw] = env("LL_COACH").split(":");
const [admin, adminPw] = env("LL_ADMIN").split(":");
const report = { a11y: {} };

function check(cond, what) {
  if (!cond) throw new Error(what);
}

async function a11y(page, name) {
  await screenshot(page, name);
  report.a11y[name] = await checkA11y(page, name);
}

// Seeks the paused video to t and returns the frame shown, as RGBA bytes of a small canvas.
async function frameAt(page, t) {
  return page.evaluate(async (t) => {
    const v = document.querySelector("video");
    v.pause();
    await new Promise((resolve) => {
      v.addEventListener("seeked", resolve, { once: true });
      v.currentTime = t;
    });
    // Give the decoder a moment to present the frame at the new position (a paused video may
    // never call back, hence the time limit).
    await Promise.race([
      new Promise((resolve) => v.requestVideoFrameCallback(resolve)),
      new Promise((resolve) => setTimeout(resolve, 500)),
    ]);
    const c = document.createElement("canvas");
    c.width = 320;
    c.height = 180;
    const g = c.getContext("2d");
    g.drawImage(v, 0, 0, c.width, c.height);
    return Array.from(g.getImageData(0, 0, c.width, c.height).data);
  }, t);
}

const diff = (a, b) => a.reduce((s, x, i) => s + Math.abs(x - b[i]), 0) / a.length;

async function waitPlaying(page) {
  await page.waitForFunction(() => document.querySelector("video").readyState >= 2, null, { timeout: 20000 });
  await page.evaluate(() => {
    const v = document.querySelector("video");
    v.muted = true;
    return v.play();
  });
  await page.waitForFunction(() => document.querySelector("video").currentTime > 1, null, { timeout: 20000 });
  const error = await page.evaluate(() => document.querySelector("video").error);
  check(!error, `media error ${JSON.stringify(error)}`);
}

const browser = await launch();
try {
  // --- The teacher.
  const t = await newPage(browser);
  await t.goto(url);
  await t.getByRole("heading", { name: "Sign in" }).waitFor();
  await a11y(t, "login");
  await signIn(t, teacher, teacherPw);
  await t.getByRole("heading", { name: "My lessons" }).waitFor();
  await t.locator(`a[href="#/recording/${rec}"]`).waitFor();
  // The poster frame the device took is shown (decrypted by the server) next to the lesson.
  const poster = t.locator(`a[href="#/recording/${rec}"] img.poster`);
  await poster.waitFor();
  await t.waitForFunction((id) => {
    const img = document.querySelector(`a[href="#/recording/${id}"] img.poster`);
    return img && img.complete && img.naturalWidth > 0;
  }, rec, { timeout: 10000 });
  report.poster_width = await poster.evaluate((img) => img.naturalWidth);
  await a11y(t, "library");
  await t.locator(`a[href="#/recording/${rec}"]`).click();
  await waitPlaying(t);

  // Seeking shows that moment: the time overlay makes every moment's frame different, so the
  // frame at 2 s seen twice (from elsewhere in between) matches itself and not the one at 5 s.
  const at2 = await frameAt(t, 2);
  const at5 = await frameAt(t, 5);
  const at2again = await frameAt(t, 2);
  report.seek = { same: diff(at2, at2again), different: diff(at2, at5) };
  check(report.seek.different > 0.5, `frames at 2 s and 5 s look alike: ${JSON.stringify(report.seek)}`);
  check(report.seek.same * 4 < report.seek.different, `seeking back to 2 s shows another frame: ${JSON.stringify(report.seek)}`);

  // A comment at 4 s, tagged, and a private reflection.
  await frameAt(t, 4);
  await t.getByRole("textbox", { name: /^Comment at/ }).fill("Good open question to the class here");
  await t.getByLabel("Tag").selectOption("questioning");
  await t.getByRole("button", { name: "Add comment" }).click();
  await t.locator(".comment", { hasText: "Good open question" }).waitFor();
  await frameAt(t, 6);
  await t.getByRole("textbox", { name: /^Comment at/ }).fill("Note to self: slow down the starter");
  await t.getByLabel(/Private reflection/).check();
  await t.getByRole("button", { name: "Add comment" }).click();
  await t.locator(".comment", { hasText: "Note to self" }).waitFor();
  const markers = await t.locator("#timeline .marker").count();
  check(markers === 2, `expected 2 timeline markers, got ${markers}`);

  // Share with the coach.
  await t.getByLabel("Coach to share with").selectOption({ label: coach });
  await t.getByRole("button", { name: "Share", exact: true }).click();
  await t.getByRole("button", { name: `Stop sharing with ${coach}` }).waitFor();
  // The share form offers nobody now (the only coach has it).
  await t.locator("#share-form").waitFor({ state: "hidden" });
  // The owner downloads the lesson as one MP4 file.
  const [download] = await Promise.all([t.waitForEvent("download"), t.getByRole("link", { name: "Download MP4" }).click()]);
  check(/^lesson-\d{4}-\d{2}-\d{2}\.mp4$/.test(download.suggestedFilename()), `download named ${download.suggestedFilename()}`);
  report.download_bytes = (await readFile(await download.path())).length;
  await t.evaluate(() => window.scrollTo(0, 0));
  await a11y(t, "recording");

  // --- The coach.
  const c = await newPage(browser);
  await signIn(c, coach, coachPw);
  await c.getByRole("heading", { name: "Shared with me" }).waitFor();
  await c.locator(`a[href="#/recording/${rec}"]`).waitFor();
  await a11y(c, "shared-with-me");
  await c.locator(`a[href="#/recording/${rec}"]`).click();
  await waitPlaying(c);
  await c.locator(".comment", { hasText: "Good open question" }).waitFor();
  check((await c.locator(".comment", { hasText: "Note to self" }).count()) === 0, "the coach sees the private reflection");
  check(await c.locator("#owner-panel").isHidden(), "the coach sees the owner's sharing panel");
  check(await c.locator("#private-row").isHidden(), "the coach is offered a private reflection");
  // Clicking the comment's time seeks the player there.
  await c.evaluate(() => document.querySelector("video").pause());
  await c.locator(".comment", { hasText: "Good open question" }).getByRole("button", { name: "0:04" }).click();
  await c.waitForFunction(() => Math.abs(document.querySelector("video").currentTime - 4) < 0.5, null, { timeout: 10000 });
  await c.getByLabel(`Reply to ${teacher}`).fill("Agreed, and the wait time was good too");
  await c.getByRole("button", { name: "Reply" }).click();
  await c.locator(".replies .comment", { hasText: "Agreed" }).waitFor();
  await a11y(c, "recording-coach");

  // --- The teacher sees the reply and who watched, then stops sharing.
  await t.reload();
  await t.locator(".replies .comment", { hasText: "Agreed" }).waitFor();
  await t.locator("#views", { hasText: coach }).waitFor();
  await t.getByRole("button", { name: `Stop sharing with ${coach}` }).click();
  await t.locator("#shares", { hasText: "Only you can see this lesson" }).waitFor();

  // The coach's next request is refused, and the page says so.
  const after = await c.evaluate(async (rec) => {
    const r = await fetch(`/api/recordings/${rec}/segments/1`);
    return r.status;
  }, rec);
  check(after === 404, `a segment after the share was revoked: ${after}`);
  await c.reload();
  await c.getByText("This recording does not exist or is not shared with you.").waitFor();
  await c.goto(`${url}#/shared`);
  await c.getByText("Nothing has been shared with you yet.").waitFor();

  // --- An admin cannot open the recording.
  const a = await newPage(browser);
  await signIn(a, admin, adminPw);
  await a.goto(`${url}#/recording/${rec}`);
  await a.getByText("This recording does not exist or is not shared with you.").waitFor();
  const adminStatus = await a.evaluate(async (rec) => (await fetch(`/api/recordings/${rec}/playlist.m3u8`)).status, rec);
  check(adminStatus === 404, `admin playlist status ${adminStatus}`);
  // The admin pages: add a person, offboard them, hold the recording, read the audit log. Each
  // sub-page has its own address and the admin moves between them by the sub-navigation.
  const adminPage = async (name, heading) => {
    await a.getByRole("navigation", { name: "Administration" }).getByRole("link", { name }).click();
    await a.getByRole("heading", { name: heading, exact: true }).waitFor();
  };
  await a.getByRole("link", { name: "Admin" }).click();
  await a.getByRole("heading", { name: "School administration" }).waitFor();
  await a.getByRole("heading", { name: "People", exact: true }).waitFor();
  check(!(await a.locator("#admin-page-audit").isVisible()), "the audit log is on its own page");
  await a.getByLabel("Full name").fill("Olivia Leaver");
  await a.getByLabel("New username").fill("olivia");
  await a.getByRole("button", { name: "Add person" }).click();
  await a.locator("#invite-result", { hasText: "Invitation for Olivia Leaver" }).locator(".invite-link").waitFor();
  await a.locator("#admin-users tr", { hasText: "Olivia Leaver" }).filter({ hasText: "Has not chosen a password yet" }).waitFor();
  await a.getByRole("button", { name: "Offboard Olivia Leaver" }).click();
  await a.locator("#admin-users tr", { hasText: "Olivia Leaver" }).filter({ hasText: "Leaving: deleted on" }).waitFor();
  // People can be searched.
  await a.getByLabel("Search").fill("olivia");
  check((await a.locator("#admin-users tr").count()) === 1, "the search leaves only Olivia");
  await a.getByLabel("Search").fill("");
  await a11y(a, "admin-people");
  await adminPage("Retention and holds", "Recordings and holds");
  await a.getByLabel(/^Reason to hold/).fill("Safeguarding review");
  await a.getByRole("button", { name: "Hold", exact: true }).click();
  await a.locator("#admin-recordings", { hasText: "Held: Safeguarding review" }).waitFor();
  // Import the staff roster: a preview shows the bad line and the new account; applying adds it.
  await adminPage("People", "People");
  const csv = "Name,Email,Staff ID,Role\nNina New,nina.new@school.example,T77,teacher\nBroken line\n";
  await a.getByLabel("Staff list (CSV)").setInputFiles({ name: "staff.csv", mimeType: "text/csv", buffer: Buffer.from(csv) });
  await a.getByRole("button", { name: "Preview" }).click();
  await a.locator("#roster-result", { hasText: "line 3:" }).waitFor();
  await a.locator("#roster-result", { hasText: "Nina New (nina.new@school.example; teacher)" }).waitFor();
  await a.getByLabel("Skip bad lines when applying").check();
  await a.getByRole("button", { name: "Apply these changes" }).click();
  await a.locator("#admin-users tr", { hasText: "Nina New" }).waitFor();
  // Nina has no password yet: the admin invites her, and she chooses one with the link.
  await a.getByRole("button", { name: "Invite Nina New" }).click();
  const link = await a.locator("#invite-result", { hasText: "Invitation for Nina New" }).locator(".invite-link").textContent();
  check(new URL(link).origin === new URL(url).origin && link.includes("/#/invite/"), `invitation link ${link}`);
  const n = await newPage(browser);
  await n.goto(link);
  await n.getByLabel("New password").fill("nina-chosen-password");
  await n.getByLabel("The same password again").fill("nina-chosen-password");
  await n.getByRole("button", { name: "Set my password" }).click();
  await n.getByLabel("Password", { exact: true }).fill("nina-chosen-password");
  await n.getByRole("button", { name: "Sign in" }).click();
  await n.locator("#who").filter({ hasText: "Nina New" }).waitFor();
  // What the admin did to her account (whatever the server counts: at least the invitation) is in
  // a notice until she says she saw it, and stays listed on her Account page.
  const notice = n.locator("#admin-actions-notice");
  const unseen = (await notice.isVisible()) ? await n.locator("#admin-actions-unseen li").allTextContents() : [];
  if (unseen.length) {
    await n.getByRole("button", { name: "I have seen this" }).click();
    await notice.waitFor({ state: "hidden" });
    await n.reload();
    await n.locator("#who").filter({ hasText: "Nina New" }).waitFor();
    check(await notice.isHidden(), "the notice comes back after she saw it");
  }
  await n.getByRole("link", { name: "Account" }).click();
  await n.getByRole("heading", { name: "Changes an admin made to your account" }).waitFor();
  const listed = await n.locator("#admin-actions tr:not(.meta)").count();
  check(listed >= unseen.length, `${unseen.length} unseen admin actions but ${listed} listed`);
  report.nina_admin_actions = { unseen, listed };
  await a11y(n, "account");
  // Her password is her own now: the admin is offered no invitation for her any more.
  await a.reload();
  await a.locator("#admin-users tr", { hasText: "Nina New" }).filter({ hasText: "Active" }).waitFor();
  check((await a.getByRole("button", { name: "Invite Nina New" }).count()) === 0, "Nina can still be invited");
  noConsoleErrors(n);
  // Enrol a device: the code shown is handed back to the Rust test, which enrols the real capture
  // binary with it.
  await adminPage("Devices", "Classroom devices");
  await a.getByLabel(/^Device name/).fill("room-99");
  await a.getByRole("button", { name: "Make an enrollment code" }).click();
  const shown = a.locator("#enroll-result .enroll-code");
  await shown.waitFor();
  const code = await shown.textContent();
  check(/^[2-9A-Z]{4}-[2-9A-Z]{4}-[2-9A-Z]{4}$/.test(code), `enrollment code ${code}`);
  report.enrollment_code = code;
  await a.getByRole("button", { name: "Revoke room-12" }).waitFor();
  // The timetable import: a preview names the bad line by number; then the good one is booked.
  await a.locator("#timetable-file").setInputFiles({
    name: "timetable.csv",
    mimeType: "text/csv",
    buffer: Buffer.from(`Room,Day,Start,End,Teacher\nroom-12,Tuesday,10:00,11:00,${teacher}\nroom-12,Funday,10:00,11:00,${teacher}\n`),
  });
  await a.getByLabel("Weeks", { exact: true }).fill("2");
  await a.locator("#timetable-form").getByRole("button", { name: "Preview" }).click();
  await a.locator("#timetable-result li", { hasText: "line 3: \"Funday\" is not a day of the week" }).waitFor();
  await a.getByLabel("Skip bad lines when booking").check();
  await a.getByRole("button", { name: "Book these lessons" }).click();
  await a.locator("#timetable-result p", { hasText: "Booked." }).waitFor();
  report.timetable_booked = true;
  // A group of coaches with the coach in it, for the teacher to share with below.
  await adminPage("Groups", "Groups of coaches");
  await a.getByLabel("Group name (e.g. Maths coaches)").fill("Maths coaches");
  await a.getByRole("button", { name: "Make group" }).click();
  await a.getByLabel("Coach to add to Maths coaches").selectOption({ label: coach });
  await a.getByRole("button", { name: "Add", exact: true }).click();
  await a.getByRole("button", { name: `Remove ${coach} from Maths coaches` }).waitFor();
  // A second coach, who joins the group only after the teacher shared with it.
  await adminPage("People", "People");
  await a.getByLabel("Full name").fill("Dan Later");
  await a.getByLabel("New username").fill("dan");
  await a.getByLabel("Teacher", { exact: true }).uncheck();
  await a.getByLabel("Coach", { exact: true }).check();
  await a.getByRole("button", { name: "Add person" }).click();
  await a.locator("#invite-result", { hasText: "Invitation for Dan Later" }).waitFor();
  // The audit log is paged and filtered on the server.
  await adminPage("Audit log", "Audit log");
  await a.getByLabel("Filter").fill("unshare");
  await a.getByRole("button", { name: "Search the whole log" }).click();
  await a.locator("#audit-page", { hasText: "unshare" }).waitFor();
  await a.locator("#admin-audit tr", { hasText: "unshare" }).first().waitFor();
  const actions = await a.locator("#admin-audit tr td:nth-child(3)").allTextContents();
  check(actions.length > 0 && actions.every((t) => t.includes("unshare")), `filtered audit rows: ${actions}`);
  await a11y(a, "admin");
  // The teacher shares with the group; the coach can watch again, through it.
  await t.reload();
  await t.getByLabel("Group to share with").selectOption({ label: "Maths coaches (1 coach)" });
  // Before sharing, the form says who is in the group.
  const members = t.locator("#share-group-members");
  await members.filter({ hasText: `In Maths coaches: ${coach}.` }).waitFor();
  report.share_group_members = await members.textContent();
  // Issue 14.2: an admin adds someone while the teacher is looking; the share is refused and the
  // form now says who is in the group.
  await adminPage("Groups", "Groups of coaches");
  await a.getByLabel("Coach to add to Maths coaches").selectOption({ label: "Dan Later" });
  await a.getByRole("button", { name: "Add", exact: true }).click();
  const dan = a.getByRole("button", { name: "Remove Dan Later from Maths coaches" });
  await dan.waitFor();
  await t.locator("#group-share-form").getByRole("button", { name: "Share" }).click();
  await t.locator("#share-error", { hasText: "Maths coaches changed since you looked; nothing was shared" }).waitFor();
  await t.getByLabel("Group to share with").selectOption({ label: "Maths coaches (2 coaches)" });
  await members.filter({ hasText: "Dan Later" }).waitFor();
  const refused = await c.evaluate(async (rec) => (await fetch(`/api/recordings/${rec}/segments/1`)).status, rec);
  check(refused === 404, `a refused group share let the coach in: ${refused}`);
  // The browser logs the refused request; that one was expected.
  t.consoleErrors = t.consoleErrors.filter((e) => !e.includes("status of 409"));
  await dan.click();
  await dan.waitFor({ state: "detached" });
  await t.reload();
  await t.getByLabel("Group to share with").selectOption({ label: "Maths coaches (1 coach)" });
  await members.filter({ hasText: `In Maths coaches: ${coach}.` }).waitFor();
  await t.locator("#group-share-form").getByRole("button", { name: "Share" }).click();
  await t.getByRole("button", { name: "Stop sharing with the group Maths coaches" }).waitFor();
  await t.locator("#shares .members li", { hasText: coach }).waitFor();
  check((await t.getByRole("button", { name: /^Let everyone now in the group watch/ }).count()) === 0, "a fresh group share offers to let people in");
  const viaGroup = await c.evaluate(async (rec) => (await fetch(`/api/recordings/${rec}/segments/1`)).status, rec);
  check(viaGroup === 200, `a segment shared through a group: ${viaGroup}`);
  await t.goto(`${url}#/`);
  await t.getByText("Kept: on hold by the school").waitFor();
  await t.getByText("Shared with Maths coaches (group)").waitFor();
  // Dan joins the group after the share: the teacher sees that he cannot watch, and lets him in.
  await adminPage("Groups", "Groups of coaches");
  await a.getByLabel("Coach to add to Maths coaches").selectOption({ label: "Dan Later" });
  await a.getByRole("button", { name: "Add", exact: true }).click();
  await a.getByRole("button", { name: "Remove Dan Later from Maths coaches" }).waitFor();
  await t.goto(`${url}#/recording/${rec}`);
  const late = t.locator("#shares .members li", { hasText: "Dan Later — joined after you shared: cannot watch" });
  await late.waitFor();
  await a11y(t, "recording-late-member");
  await t.getByRole("button", { name: "Let everyone now in the group watch: Maths coaches" }).click();
  await t.locator("#shares .members li", { hasText: /^Dan Later$/ }).waitFor();
  check((await late.count()) === 0, "Dan is still marked as unable to watch");
  report.late_member_let_in = true;

  // --- A tablet-width screen still shows the player and the comments.
  const tablet = await newPage(browser, 800);
  await signIn(tablet, teacher, teacherPw);
  await tablet.goto(`${url}#/recording/${rec}`);
  await tablet.locator(".comment", { hasText: "Good open question" }).waitFor();
  await screenshot(tablet, "recording-tablet");

  for (const p of [t, c, a, tablet]) noConsoleErrors(p);
  console.log(JSON.stringify(report));
} finally {
  await browser.close();
}
