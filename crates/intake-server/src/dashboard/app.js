// intake dashboard: polls /v1/overview once a second, derives rates from
// the difference of two polls, and reads the latest records of the
// selected stream through the native read API. Everything is written into
// the page with textContent, never as HTML: record values are untrusted.
"use strict";

const POLL_MS = 1000;
const LATEST = 20;

let previous = null;            // the last overview, for rates
let selected = decodeURIComponent((location.hash.match(/stream=([^&]+)/) || [])[1] || "");
let recordsSeen = "";           // next offsets the record list was read at

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function fmtInt(n) { return Math.round(n).toLocaleString("en-US"); }
function fmtRate(n) { return n === null ? "–" : n >= 100 ? fmtInt(n) : n.toFixed(1); }
function fmtBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}
function fmtUptime(s) {
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
  return h ? `${h}h ${m}m` : m ? `${m}m ${sec}s` : `${sec}s`;
}

function rates(stream, now) {
  const before = previous && previous.streams.find((s) => s.definition.name === stream.definition.name);
  if (!before) return { records: null, requests: null, mb: null };
  const secs = (now.node.now_ms - previous.node.now_ms) / 1000;
  if (secs <= 0) return { records: null, requests: null, mb: null };
  return {
    records: Math.max(0, stream.totals.records - before.totals.records) / secs,
    requests: Math.max(0, stream.totals.requests - before.totals.requests) / secs,
    mb: Math.max(0, stream.totals.bytes - before.totals.bytes) / secs / 1e6,
  };
}

async function setState(name, state, button) {
  button.disabled = true;
  try {
    const r = await fetch(`/v1/streams/${encodeURIComponent(name)}/state`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ state }),
    });
    if (!r.ok) {
      const body = await r.json().catch(() => ({}));
      alert(`could not set ${name} ${state}: ${(body.error && body.error.message) || r.status}`);
    }
  } finally {
    await refresh();
  }
}

function select(name) {
  selected = name;
  recordsSeen = "";
  history.replaceState(null, "", `#stream=${encodeURIComponent(name)}`);
  refresh();
}

function renderNode(now, totalRate) {
  document.getElementById("node-uptime").textContent = fmtUptime(now.node.uptime_s);
  document.getElementById("node-load").textContent = `${now.node.load} / 200`;
  document.getElementById("node-inflight").textContent = fmtInt(now.node.requests_in_flight);
  document.getElementById("node-connections").textContent = fmtInt(now.node.connections_open);
  document.getElementById("node-rate").textContent = fmtRate(totalRate);
}

function renderStreams(now) {
  const body = document.querySelector("#streams tbody");
  body.replaceChildren();
  let total = previous ? 0 : null;
  for (const s of now.streams) {
    const d = s.definition;
    const r = rates(s, now);
    if (total !== null && r.records !== null) total += r.records;
    const stored = s.partitions.reduce((n, p) => n + (p.next_offset - p.start_offset), 0);
    const refusals = Object.entries(s.totals.refusals).map(([why, n]) => `${why}: ${fmtInt(n)}`).join(", ");
    const paused = d.state === "paused";
    const button = el("button", {
      class: "toggle",
      onclick: (e) => { e.stopPropagation(); setState(d.name, paused ? "active" : "paused", button); },
    }, paused ? "Resume" : "Pause");
    const row = el("tr", { "data-stream": d.name, class: d.name === selected ? "selected" : "", onclick: () => select(d.name) },
      el("td", { class: "name" }, d.name),
      el("td", { class: `state ${d.state}` }, d.state),
      el("td", {}, d.format),
      el("td", { class: "num" }, d.partitions),
      el("td", { class: "num records" }, fmtInt(stored)),
      el("td", { class: "num rate" }, fmtRate(r.records)),
      el("td", { class: "num request-rate" }, fmtRate(r.requests)),
      el("td", { class: "num mb-rate" }, r.mb === null ? "–" : r.mb.toFixed(2)),
      el("td", { class: "faces" }, s.totals.faces.join(", ")),
      el("td", { class: "refusals" }, refusals),
      el("td", {}, button),
    );
    body.append(row);
  }
  document.getElementById("no-streams").hidden = now.streams.length > 0;
  return total;
}

// The cluster's nodes: shown when this node is a manager or joined one.
function renderCluster(now) {
  const section = document.getElementById("cluster");
  const c = now.cluster;
  section.hidden = !c;
  if (!c) return;
  document.getElementById("cluster-role").textContent = c.role === "manager"
    ? "(this node is the manager)"
    : `(from the manager ${c.manager_url}${c.read_at_ms ? "" : ", not read yet"})`;
  const rows = c.nodes.map((n) => {
    const status = n.status === "draining" ? "draining" : n.online ? "online" : "offline";
    const ago = Math.max(0, (now.node.now_ms - n.last_heartbeat_ms) / 1000);
    return el("tr", { "data-node": `${n.ip}:${n.port}` },
      el("td", { class: "num" }, n.id),
      el("td", { class: "address" }, `${n.ip}:${n.port}`),
      el("td", { class: `node-status ${status}` }, status),
      el("td", { class: "num node-load" }, `${n.load} / 200`),
      el("td", { class: "num" }, `${ago.toFixed(0)} s ago`),
    );
  });
  document.querySelector("#nodes tbody").replaceChildren(...(rows.length
    ? rows
    : [el("tr", {}, el("td", { class: "empty", colspan: "5" }, "No node has reported yet."))]));
}

function recordText(value) {
  if (typeof value !== "string") return JSON.stringify(value);
  try {
    const text = atob(value);
    return /^[\x09\x0a\x0d\x20-\x7e]*$/.test(text) ? text : `base64:${value}`;
  } catch {
    return value;
  }
}

async function renderDetail(now) {
  const section = document.getElementById("detail");
  const s = now.streams.find((x) => x.definition.name === selected);
  if (!s) { section.hidden = true; return; }
  section.hidden = false;
  const d = s.definition;
  document.getElementById("detail-name").textContent = d.name;
  const parts = document.querySelector("#partitions tbody");
  parts.replaceChildren(...s.partitions.map((p) => el("tr", { "data-partition": p.partition },
    el("td", {}, p.partition),
    el("td", { class: "num" }, fmtInt(p.start_offset)),
    el("td", { class: "num next-offset" }, fmtInt(p.next_offset)),
    el("td", { class: "num" }, fmtBytes(p.size_bytes)),
    el("td", { class: "num" }, fmtBytes(p.pending_bytes)),
  )));
  const sinkBox = document.getElementById("sinks");
  const sinks = Array.isArray(s.sinks) ? s.sinks : [];
  sinkBox.replaceChildren(sinks.length
    ? el("table", { id: "sink-table" },
        el("thead", {}, el("tr", {}, ...["sink", "kind", "state", "lag (records)", "lag (bytes)", "sent", "errors", "last error"].map((h) => el("th", {}, h)))),
        el("tbody", {}, ...sinks.map((k) => el("tr", { "data-sink": k.name },
          el("td", {}, k.name),
          el("td", {}, k.kind),
          el("td", { class: `sink-state ${k.state}` }, k.lag_limit_exceeded ? `${k.state} (over max_lag_bytes)` : k.state),
          el("td", { class: "num sink-lag" }, fmtInt(k.lag_records)),
          el("td", { class: "num" }, fmtBytes(k.lag_bytes)),
          el("td", { class: "num sink-sent" }, fmtInt(k.sent)),
          el("td", { class: "num" }, fmtInt(k.errors)),
          el("td", { class: "sink-error" }, k.last_error || ""),
        ))))
    : el("p", { class: "empty" }, "No sinks: records stay in the local log."));
  const b = d.bindings || {};
  const bind = [];
  for (const i of b.inlong || []) bind.push(`InLong ${i.group_id}/${i.stream_id}`);
  if (b.datahub_id) bind.push(`CKafka DataHub ${b.datahub_id}`);
  if (b.datasource) bind.push(`push path ${b.datasource.method || "POST"} ${b.datasource.path}`);
  bind.push(`REST Proxy topic ${d.name}`);
  document.getElementById("bindings").replaceChildren(el("p", {}, bind.join(" · ")));

  const key = s.partitions.map((p) => p.next_offset).join(",");
  if (key === recordsSeen) return;
  const reads = s.partitions.filter((p) => p.next_offset > p.start_offset).map(async (p) => {
    const from = Math.max(p.start_offset, p.next_offset - LATEST);
    const r = await fetch(`/v1/streams/${encodeURIComponent(d.name)}/partitions/${p.partition}/records?offset=${from}&limit=${LATEST}`);
    return r.ok ? (await r.json()).records : [];
  });
  const records = (await Promise.all(reads)).flat()
    .sort((a, b) => b.timestamp - a.timestamp || b.offset - a.offset)
    .slice(0, LATEST);
  recordsSeen = key;
  document.getElementById("records").replaceChildren(...(records.length
    ? records.map((r) => el("li", {}, el("span", { class: "where" }, `${r.partition}:${r.offset}`), recordText(r.value)))
    : [el("li", { class: "empty" }, "No records yet.")]));
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const r = await fetch("/v1/overview", { cache: "no-store" });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const now = await r.json();
    const total = renderStreams(now);
    renderNode(now, total);
    renderCluster(now);
    await renderDetail(now);
    previous = now;
    status.textContent = now.node.draining ? "draining" : `updated ${new Date().toLocaleTimeString()}`;
    status.className = "status";
  } catch (e) {
    status.textContent = `cannot reach the node: ${e.message}`;
    status.className = "status error";
  }
}

async function loop() {
  await refresh();
  setTimeout(loop, POLL_MS);
}

if (!selected) {
  fetch("/v1/overview").then((r) => r.json()).then((o) => {
    if (!selected && o.streams.length) select(o.streams[0].definition.name);
  }).catch(() => {});
}
loop();
