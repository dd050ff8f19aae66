// Drives the system's Chromium through the dashboard of a home that tests/cli/dashboard.rs set up,
// and checks what a person would see: the job list, a job page, the graph of jobs triggering jobs,
// a run page whose output appears live and whose status turns final without a reload, and a job's hostile output shown as text that
// opens no dialog and makes no element. Prints one JSON line: {"ok":true,...} or {"ok":false,"error":...}.
//
//   node dashboard.mjs BASE_URL LIVE_JOB HOSTILE_JOB BUSY_JOB SCREENSHOT_DIR GO_FILE
// (the live job waits for GO_FILE before it prints, so its output comes after the page is drawn)
import { writeFileSync } from "node:fs";
import { chromium } from "playwright-core";

const [base, liveJob, hostileJob, busyJob, shots, goFile] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

function check(condition, what) {
  if (!condition) throw new Error(what);
}

const browser = await chromium.launch({
  executablePath,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--metrics-recording-only",
  ],
});
const report = { ok: false, checks: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const dialogs = [];
  page.on("dialog", async (dialog) => {
    dialogs.push(dialog.message());
    await dialog.dismiss();
  });
  const problems = [];
  page.on("pageerror", (error) => problems.push(String(error)));

  // The job list.
  await page.goto(base + "/", { waitUntil: "load" });
  const ids = await page.$$eval("#jobs tbody tr", (rows) => rows.map((r) => r.dataset.job));
  check(ids.includes(liveJob) && ids.includes(hostileJob), "the job list shows every job: " + ids);
  const strips = await page.$$eval("#jobs .strip .cell", (cells) => cells.length);
  check(strips > 0, "the list shows a strip of outcomes");
  report.checks.push("job list");
  await page.screenshot({ path: shots + "/jobs.png", fullPage: true });

  // A job page: its description, with markup in it, is text.
  await page.goto(base + "/jobs/" + hostileJob, { waitUntil: "load" });
  const description = await page.textContent(".description");
  check(description.includes("<script>"), "the description is shown as text: " + description);
  check((await page.$$("#runs tbody tr")).length > 0, "the job page lists its runs");
  report.checks.push("job page");

  // A run of the hostile job: what it printed is text, nothing ran and no element was made.
  const hostileRuns = await page.$$eval("#runs tbody tr td a", (links) => links.map((a) => a.href));
  await page.goto(hostileRuns[0], { waitUntil: "load" });
  const texts = await page.$$eval("#events td.text", (cells) => cells.map((c) => c.textContent));
  check(texts.includes("<script>alert(1)</script>"), "the script line is shown as text: " + texts);
  check(texts.includes("<img src=x onerror=alert(2)>"), "the img line is shown as text");
  const made = await page.$$eval("main img, main script:not([src])", (els) => els.length);
  check(made === 0, "no element came from the output");
  report.checks.push("escaped output");

  // A job with some history, filtered by status without a script: a plain link.
  await page.goto(base + "/jobs/" + busyJob, { waitUntil: "load" });
  await page.click(".filters a:text-is('failed')");
  await page.waitForURL(/status=failed/);
  const statuses = await page.$$eval("#runs tbody tr .status", (cells) => cells.map((c) => c.textContent));
  check(statuses.length > 0 && statuses.every((s) => s === "failed"), "the filter shows failed runs only: " + statuses);
  report.checks.push("history filter");
  await page.goto(base + "/jobs/" + busyJob, { waitUntil: "load" });
  await page.screenshot({ path: shots + "/job.png", fullPage: true });

  // The graph: reached from the header, a box per job on an edge, a curve per edge, and a box that
  // leads to its job's page.
  await page.click("#graph-link");
  await page.waitForURL(/\/graph$/);
  const boxes = await page.$$eval("#graph a.node", (nodes) => nodes.map((n) => n.dataset.job));
  check(boxes.includes(busyJob) && boxes.includes("notice"), "the graph draws both ends of the edge: " + boxes);
  const curves = await page.$$eval("#graph path.edge", (paths) =>
    paths.map((p) => [p.dataset.from, p.dataset.to, p.getTotalLength() > 0]),
  );
  check(
    curves.some(([from, to, drawn]) => from === busyJob && to === "notice" && drawn),
    "the graph draws the edge: " + JSON.stringify(curves),
  );
  const [upstreamBox, downstreamBox] = await Promise.all(
    [busyJob, "notice"].map((job) => page.locator(`#graph a.node[data-job="${job}"] rect`).boundingBox()),
  );
  check(upstreamBox.x + upstreamBox.width <= downstreamBox.x, "the upstream is drawn left of its downstream");
  await page.screenshot({ path: shots + "/graph.png", fullPage: true });
  await page.click(`#graph a.node[data-job="notice"]`);
  await page.waitForURL(/\/jobs\/notice$/);
  check((await page.textContent(".upstream")).includes(busyJob), "the job page names its upstream");
  report.checks.push("graph");

  // The live run: lines written after the page was drawn appear, then the final status.
  const runUrl = base + "/jobs/" + liveJob + "/runs/1";
  await page.goto(runUrl, { waitUntil: "load" });
  check((await page.textContent("#status")).trim() === "running", "the live run is running when drawn");
  const drawn = await page.$$eval("#events tbody tr", (rows) => rows.length);
  await page.evaluate(() => {
    window.notReloaded = true;
  });
  writeFileSync(goFile, "");
  await page.waitForFunction(
    (n) => document.querySelectorAll("#events tbody tr.stdout").length > n,
    drawn,
    { timeout: 15000 },
  );
  report.checks.push("live output");
  await page.screenshot({ path: shots + "/run.png", fullPage: true });
  await page.waitForFunction(() => document.getElementById("status").textContent === "succeeded", null, {
    timeout: 30000,
  });
  check(await page.evaluate(() => window.notReloaded === true), "the page was not reloaded");
  const lines = await page.$$eval("#events tbody tr.stdout td.text", (cells) => cells.map((c) => c.textContent));
  const expected = Array.from({ length: 8 }, (_, i) => "tick " + (i + 1));
  check(JSON.stringify(lines) === JSON.stringify(expected), "every line once, in order: " + lines);
  report.checks.push("final status without reload");

  check(dialogs.length === 0, "no dialog opened: " + dialogs);
  check(problems.length === 0, "no script error: " + problems);
  report.ok = true;
} catch (error) {
  report.error = String(error && error.stack ? error.stack : error);
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
process.exit(report.ok ? 0 : 1);
