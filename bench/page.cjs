// Holds the crew's page open in N headless Chromium browser contexts (each
// its own login and session, its own SSE stream and thumbnail refresh, like
// N phones) for bench/page.py. Prints READY once every page shows "on air",
// then keeps them open until stdin closes.
"use strict";
const { chromium } = require("playwright-core");

async function main() {
  const n = Number(process.env.PAGES || "5");
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  const pages = [];
  for (let i = 0; i < n; i++) {
    const page = await (await browser.newContext({ viewport: { width: 390, height: 844 }, bypassCSP: true })).newPage();
    await page.goto(process.env.FIELDCAST_URL);
    await page.fill("#password", process.env.FIELDCAST_PASSWORD);
    await page.click("#login-form button");
    await page.waitForFunction(() => document.getElementById("state").textContent === "on air", null, { timeout: 60000 });
    pages.push(page);
  }
  console.log("READY " + pages.length);
  process.stdin.resume();
  await new Promise((r) => process.stdin.on("end", r));
  await browser.close();
}

main().catch((e) => { console.error(String(e && e.stack || e)); process.exit(1); });
