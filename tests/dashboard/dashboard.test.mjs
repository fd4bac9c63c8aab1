// The dashboard end to end: the real `intake` binary, Debian's Chromium
// driven by playwright-core. Load the page, push records, see the rate and
// the records appear, pause the stream with its button and see pushes
// refused (and the refusal shown); the server is a manager, so a node's
// heartbeat shows in the nodes panel. A screenshot goes to
// target/dashboard/dashboard.png (paused) and dashboard-live.png (while
// records flow).
//
// INTAKE_BIN picks the binary (default: $CARGO_TARGET_DIR or ./target,
// debug build); CHROMIUM the browser (default /usr/bin/chromium).
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const target = path.resolve(root, process.env.CARGO_TARGET_DIR || "target");
const bin = process.env.INTAKE_BIN || path.join(target, "debug", "intake");
const shots = path.join(root, "target", "dashboard");

let server, url, dataDir, browser;

function startServer() {
  dataDir = mkdtempSync(path.join(tmpdir(), "intake-dashboard-"));
  // A manager (it serves pushes like any node), so the nodes panel shows.
  server = spawn(bin, ["serve", "--manager", "--listen", "127.0.0.1:0", "--data-dir", dataDir], {
    // INTAKE_* variables are the node's settings: INTAKE_BIN is this
    // test's, not one of them.
    env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== "INTAKE_BIN")), INTAKE_LOG: "warn" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    server.on("error", reject);
    server.on("exit", (code) => reject(new Error(`intake exited with ${code} before listening`)));
    createInterface({ input: server.stdout }).on("line", (line) => {
      const m = line.match(/^listening on (.+)$/);
      if (m) resolve(`http://${m[1]}`);
    });
  });
}

async function api(method, p, body, contentType = "application/json") {
  const r = await fetch(url + p, {
    method,
    headers: body === undefined ? {} : { "content-type": contentType },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

before(async () => {
  url = await startServer();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    server.removeAllListeners("exit");
    server.kill("SIGTERM");
    await new Promise((resolve) => server.once("exit", resolve));
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

test("the dashboard shows live traffic and pauses a stream", { timeout: 90_000 }, async () => {
  // The demo stream forwards to the NATS server of the machine (CI has one).
  const sink = { name: "n1", kind: "nats", url: "nats://127.0.0.1:4222", subject: `intake.dashboard.${Date.now()}` };
  assert.equal((await api("POST", "/v1/streams", { name: "demo", partitions: 2, sinks: [sink] })).status, 201);
  assert.equal((await api("POST", "/v1/streams", { name: "quiet" })).status, 201);

  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const problems = [];
  page.on("pageerror", (e) => problems.push(e.message));
  page.on("console", (m) => { if (m.type() === "error") problems.push(m.text()); });
  await page.goto(`${url}/#stream=demo`);
  const row = page.locator('#streams tr[data-stream="demo"]');
  await row.waitFor();
  assert.equal(await row.locator(".state").textContent(), "active");
  assert.equal(await page.locator('#streams tr[data-stream="quiet"]').count(), 1);

  // Push for a few seconds: 10 records every 100 ms, each request marked.
  let pushed = 0;
  const pushing = (async () => {
    for (let i = 0; i < 40; i++) {
      const batch = Array.from({ length: 10 }, (_, j) => ({ marker: `m-${i}-${j}`, temp: 20 + j }));
      const r = await api("POST", "/v1/streams/demo/records", batch);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      pushed += 10;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();

  // The rate shows while records flow, and the latest records appear.
  await page.waitForFunction(() => {
    const cell = document.querySelector('#streams tr[data-stream="demo"] .rate');
    return cell && parseFloat(cell.textContent.replace(/,/g, "")) > 0;
  }, null, { timeout: 20_000 });
  const rate = parseFloat((await row.locator(".rate").textContent()).replace(/,/g, ""));
  assert.ok(rate > 0 && rate < 1000, `records/s shown: ${rate}`);
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: path.join(shots, "dashboard-live.png"), fullPage: true });
  await page.locator("#records li", { hasText: '"marker":"m-' }).first().waitFor({ timeout: 20_000 });
  await pushing;
  await page.waitForFunction((n) => {
    const cell = document.querySelector('#streams tr[data-stream="demo"] .records');
    return cell && cell.textContent.replace(/,/g, "") === String(n);
  }, pushed, { timeout: 10_000 });
  await page.locator("#records li", { hasText: '"marker":"m-39-9"' }).waitFor({ timeout: 10_000 });
  const offsets = await page.locator("#partitions .next-offset").allTextContents();
  assert.equal(offsets.reduce((n, t) => n + Number(t.replace(/,/g, "")), 0), pushed);
  assert.equal(await row.locator(".faces").textContent(), "native");
  // The sink forwarded everything: its row shows the count and no lag.
  await page.waitForFunction((n) => {
    const r = document.querySelector('#sink-table tr[data-sink="n1"]');
    return r && r.querySelector(".sink-sent").textContent.replace(/,/g, "") === String(n)
      && r.querySelector(".sink-lag").textContent === "0";
  }, pushed, { timeout: 20_000 });

  // The nodes panel: a node heartbeats to this manager and shows up with
  // its status and load; a draining heartbeat changes its status.
  const beat = { ip: "10.1.2.3", port: 46802, protocol: "HTTP", load: 37, status: "online" };
  assert.equal((await api("POST", "/v1/cluster/heartbeat", beat)).status, 200);
  const node = page.locator('#nodes tr[data-node="10.1.2.3:46802"]');
  await node.waitFor({ timeout: 10_000 });
  assert.equal(await node.locator(".node-status").textContent(), "online");
  assert.equal(await node.locator(".node-load").textContent(), "37 / 200");
  assert.match(await page.locator("#cluster-role").textContent(), /manager/);
  assert.equal((await api("POST", "/v1/cluster/heartbeat", { ...beat, load: 0, status: "draining" })).status, 200);
  await page.waitForFunction(() =>
    document.querySelector('#nodes tr[data-node="10.1.2.3:46802"] .node-status')?.textContent === "draining");

  // Pause from the button: the stream shows paused and pushes are refused.
  await row.locator("button.toggle").click();
  await page.waitForFunction(() =>
    document.querySelector('#streams tr[data-stream="demo"] .state')?.textContent === "paused");
  const refused = await api("POST", "/v1/streams/demo/records", { marker: "late" });
  assert.equal(refused.status, 409);
  assert.equal(refused.body.error.code, "stream_paused");
  assert.equal((await api("GET", "/v1/streams/demo")).body.state, "paused");
  await page.locator('#streams tr[data-stream="demo"] .refusals', { hasText: "stream_paused: 1" }).waitFor();
  assert.equal(await row.locator("button.toggle").textContent(), "Resume");

  await page.screenshot({ path: path.join(shots, "dashboard.png"), fullPage: true });

  // Resume: pushes are accepted again.
  await row.locator("button.toggle").click();
  await page.waitForFunction(() =>
    document.querySelector('#streams tr[data-stream="demo"] .state')?.textContent === "active");
  assert.equal((await api("POST", "/v1/streams/demo/records", { marker: "again" })).status, 200);
  assert.deepEqual(problems, []);
});
