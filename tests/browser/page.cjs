// Drives the crew's page in headless Chromium (Debian's, through
// playwright-core): log in, see "on air", the thumbnail loads and changes,
// Stop -> idle, Start -> on air, a bad destination URL and a ladder the
// picture is too small for show their errors next to the field, a
// phone-width screenshot. Run by tests/http_browser.rs with
// FIELDCAST_URL, FIELDCAST_PASSWORD and OUT_DIR set; prints one line per step.
// bypassCSP: Playwright evaluates its wait predicates as strings, which the
// page's Content-Security-Policy (no eval) would refuse.
"use strict";
const { chromium } = require("playwright-core");

const url = process.env.FIELDCAST_URL;
const password = process.env.FIELDCAST_PASSWORD;
const out = process.env.OUT_DIR;
const T = Number(process.env.STEP_TIMEOUT_MS || "60000");

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  try {
    const page = await (await browser.newContext({ viewport: { width: 390, height: 844 }, bypassCSP: true })).newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(url);
    await page.fill("#password", password);
    await page.click("#login-form button");
    await page.waitForFunction(() => document.getElementById("state").textContent === "on air", null, { timeout: T });
    console.log("STEP on-air");
    await page.waitForFunction(() => (document.getElementById("thumb").src || "").startsWith("blob:"), null, { timeout: T });
    const first = await page.evaluate(() => document.getElementById("thumb").src);
    await page.waitForFunction((f) => document.getElementById("thumb").src !== f && document.getElementById("thumb").naturalWidth > 0, first, { timeout: T });
    console.log("STEP thumbnail-changes");
    await page.waitForFunction(() => {
      const m = document.querySelectorAll("#meters .meter");
      return m.length === 2 && [...m].every((e) => Number(e.dataset.peak) > -60);
    }, null, { timeout: T });
    console.log("STEP audio-meters " + JSON.stringify(await page.$$eval("#meters .meter .db", (els) => els.map((e) => e.textContent))));
    // Two telemetry updates: every rung's sparklines have at least two points.
    await page.waitForFunction(() => {
      const s = document.querySelectorAll("#rungs svg.spark");
      return s.length >= 2 && [...s].every((e) => Number(e.dataset.points) >= 2);
    }, null, { timeout: T });
    console.log("STEP sparklines " + await page.$$eval("#rungs svg.spark", (els) => els.map((e) => e.dataset.points).join(",")));
    await page.click("#stop");
    await page.waitForFunction(() => document.getElementById("state").textContent === "idle", null, { timeout: T });
    console.log("STEP idle");
    await page.click("#start");
    await page.waitForFunction(() => document.getElementById("state").textContent === "on air", null, { timeout: T });
    console.log("STEP on-air-again");
    await page.fill("#dest-url", "ftp://nowhere.example/live");
    await page.fill("#dest-key", "BrowserKey-Qz7x9Vw");
    await page.click("#dest-form button");
    await page.waitForFunction(() => document.querySelector('#dest-form [data-field="url"]').textContent.length > 0, null, { timeout: T });
    console.log("STEP url-error " + JSON.stringify(await page.textContent('#dest-form [data-field="url"]')));
    // Every built-in profile is larger than the test picture: refused, the
    // reason under the profile field, the stream untouched.
    const offered = await page.$$eval("#ladder-profile option[value]:not([value=''])", (os) => os.map((o) => o.value));
    await page.selectOption("#ladder-profile", "basic");
    await page.click("#ladder-form button");
    await page.waitForFunction(() => document.querySelector('#ladder-form [data-field="profile"]').textContent.length > 0, null, { timeout: T });
    console.log("STEP ladder-error " + JSON.stringify(await page.textContent('#ladder-form [data-field="profile"]')) + " offered " + offered.join(","));
    if (await page.textContent("#state") !== "on air") throw new Error("the refused ladder touched the stream");
    const html = await page.content();
    if (html.includes("BrowserKey-Qz7x9Vw")) throw new Error("the key is in the page");
    await page.screenshot({ path: out + "/page-phone.png", fullPage: true });
    console.log("STEP screenshot");
    if (errors.length) throw new Error("script errors: " + errors.join("; "));
  } finally {
    await browser.close();
  }
}

main().then(() => console.log("DONE"), (e) => { console.error(String(e && e.stack || e)); process.exit(1); });
