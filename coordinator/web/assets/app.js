// enrich dashboard: a read-only single page. It polls the coordinator's JSON API once a second
// and redraws the current view; every value is inserted as text, never as HTML.
"use strict";

const POLL_MS = 1000;
let timer = null;
let generation = 0;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") e.textContent = v;
    else if (k === "style") Object.assign(e.style, v);
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

const stateName = (s) => String(s || "").replace(/^(BATCH|ITEM)_STATE_/, "").toLowerCase();
const seconds = (d) => (d ? parseFloat(String(d)) : NaN); // protojson Duration: "42.5s"
const num = (v) => Number(v || 0);
const money = (v) => "$" + num(v).toFixed(2);

function fmtDuration(s) {
  if (!isFinite(s)) return "-";
  s = Math.max(0, Math.round(s));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
  return Math.floor(s / 3600) + "h" + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
}

function fmtTime(ts) {
  if (!ts) return "-";
  const d = new Date(ts);
  return isNaN(d) ? "-" : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function ago(ts) {
  if (!ts) return "-";
  return fmtDuration((Date.now() - new Date(ts).getTime()) / 1000) + " ago";
}

const ended = (ip) => num(ip.succeeded) + num(ip.failed) + num(ip.cancelled);
const selected = (ip) => num(ip.total) - num(ip.skipped);

function bar(ip) {
  const total = Math.max(selected(ip), 1);
  const ok = (100 * num(ip.succeeded)) / total;
  const bad = (100 * (num(ip.failed) + num(ip.cancelled))) / total;
  return el("div", { class: "bar", title: ended(ip) + " of " + selected(ip) + " ended" },
    el("div", { class: "ok", style: { width: ok + "%" } }),
    el("div", { class: "bad", style: { left: ok + "%", width: bad + "%" } }));
}

function stateBadge(s, id) {
  const name = stateName(s);
  return el("span", { class: "state " + name, id: id, text: name.replace(/_/g, " ") });
}

async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error(url + ": " + r.status + " " + (await r.text()).trim());
  return r.json();
}

function route() {
  const h = location.hash || "#/batches";
  const m = h.match(/^#\/batch\/(.+)$/);
  if (m) return { view: "batch", id: decodeURIComponent(m[1]) };
  if (h.startsWith("#/agents")) return { view: "agents" };
  return { view: "batches" };
}

function setLive(ok) {
  const live = document.getElementById("live");
  live.textContent = ok ? "live" : "disconnected: retrying";
  live.classList.toggle("stale", !ok);
}

async function refresh(gen) {
  const r = route();
  document.getElementById("nav-batches").classList.toggle("active", r.view !== "agents");
  document.getElementById("nav-agents").classList.toggle("active", r.view === "agents");
  let node;
  try {
    if (r.view === "batch") node = renderBatch(await getJSON("/api/batches/" + encodeURIComponent(r.id)));
    else if (r.view === "agents") node = renderAgents(await getJSON("/api/agents"));
    else node = renderBatches(await getJSON("/api/batches"));
    setLive(true);
  } catch (err) {
    setLive(false);
    node = el("p", { class: "error", text: String(err.message || err) });
  }
  if (gen !== generation) return; // the route changed while fetching
  document.getElementById("view").replaceChildren(node);
  timer = setTimeout(() => refresh(gen), POLL_MS);
}

function restart() {
  clearTimeout(timer);
  generation++;
  refresh(generation);
}

function renderBatches(data) {
  const batches = data.batches || [];
  if (batches.length === 0) {
    return el("div", {}, el("h1", { text: "Batches" }),
      el("p", { class: "muted", text: "No batches yet. Create one with: enrichctl prepare --from FILE" }));
  }
  const rows = batches.map((b) => {
    const ins = b.instances || [];
    const done = ins.reduce((a, ip) => a + ended(ip), 0);
    const total = ins.reduce((a, ip) => a + selected(ip), 0);
    const failed = ins.reduce((a, ip) => a + num(ip.failed), 0);
    return el("tr", { "data-batch": b.id },
      el("td", {}, el("a", { href: "#/batch/" + encodeURIComponent(b.id), text: b.id })),
      el("td", {}, stateBadge(b.state)),
      el("td", { text: b.source || "-" }),
      el("td", { text: fmtTime(b.createdAt) }),
      el("td", { class: "num", text: done + " / " + total }),
      el("td", { class: "num", text: failed }),
      el("td", { class: "num", text: money(b.costUsd) }));
  });
  return el("div", {}, el("h1", { text: "Batches" }),
    el("table", { id: "batches" },
      el("thead", {}, el("tr", {}, ["batch", "state", "source", "created", "ended", "failed", "cost"].map(
        (h, i) => el("th", { class: i >= 4 ? "num" : null, text: h })))),
      el("tbody", {}, rows)));
}

function renderBatch(page) {
  const b = page.batch;
  const ins = b.instances || [];
  const done = ins.reduce((a, ip) => a + ended(ip), 0);
  const total = ins.reduce((a, ip) => a + selected(ip), 0);
  const attempts = ins.reduce((a, ip) => a + num(ip.attempts), 0);
  const failedAttempts = ins.reduce((a, ip) => a + num(ip.failedAttempts), 0);
  const retries = ins.reduce((a, ip) => a + num(ip.retries), 0);
  const start = b.launchedAt ? new Date(b.launchedAt).getTime() : NaN;
  const end = b.finishedAt ? new Date(b.finishedAt).getTime() : Date.now();
  const elapsed = (end - start) / 1000;
  const running = stateName(b.state) === "running";
  const etas = ins.map((ip) => (ended(ip) >= selected(ip) ? 0 : seconds(ip.eta)));
  const eta = running ? Math.max(...etas) : NaN;

  const card = (label, value, id, extra) => el("div", {}, el("b", Object.assign({ id: id, text: value }, extra || {})), el("span", { text: label }));
  const summary = el("div", { class: "summary" },
    card("state", stateName(b.state).replace(/_/g, " "), "batch-state"),
    card("ended / selected", done + " / " + total, "batch-done", { "data-done": done, "data-total": total }),
    card("elapsed", fmtDuration(elapsed)),
    card("ETA", running ? (etas.some((e) => !isFinite(e)) ? "unknown" : fmtDuration(eta)) : "-", "batch-eta"),
    card("throughput", isFinite(elapsed) && elapsed > 0 ? (done / (elapsed / 60)).toFixed(1) + "/min" : "-"),
    card("error rate", attempts ? ((100 * failedAttempts) / attempts).toFixed(1) + "%" : "-", "batch-error-rate"),
    card("retries", retries),
    card("cost", money(b.costUsd), "batch-cost"));

  const typeRows = ins.map((ip) => el("tr", { "data-instance": ip.instanceType },
    el("td", {}, el("b", { text: ip.instanceType }), ip.waitingForAgent ? el("div", { class: "warn", text: "waiting for an agent" }) : null),
    el("td", {}, bar(ip)),
    el("td", { class: "num", text: ended(ip) + " / " + selected(ip) }),
    el("td", { class: "num", text: num(ip.succeeded) }),
    el("td", { class: "num", text: num(ip.failed) }),
    el("td", { class: "num", text: num(ip.retrying) }),
    el("td", { class: "num", text: num(ip.leased) }),
    el("td", { class: "num", text: num(ip.pending) }),
    el("td", { class: "num", text: num(ip.agents) + " / " + num(ip.slots) }),
    el("td", { class: "num", text: fmtDuration(seconds(ip.durationP50)) }),
    el("td", { class: "num", text: ended(ip) >= selected(ip) ? "done" : fmtDuration(seconds(ip.eta)) }),
    el("td", { class: "num", text: num(ip.attempts) ? ((100 * num(ip.failedAttempts)) / num(ip.attempts)).toFixed(1) + "%" : "-" }),
    el("td", { class: "num", text: num(ip.retries) }),
    el("td", { class: "num", text: money(ip.costUsd) })));
  const heads = ["instance type", "progress", "ended", "ok", "failed", "retrying", "in flight", "pending", "agents / slots", "p50", "ETA", "error rate", "retries", "cost"];

  const failures = (page.failures || []).map((it) => el("tr", {},
    el("td", {}, el("code", { text: it.entity.id })),
    el("td", { text: it.entity.name }),
    el("td", { text: it.instanceType }),
    el("td", { class: "num", text: it.attempt + " / " + it.maxAttempts }),
    el("td", { class: "reason", text: it.lastError || "-" })));

  const dossierLink = (it, fmt) => el("a", {
    href: "/dossier?batch=" + encodeURIComponent(b.id) + "&entity=" + encodeURIComponent(it.entity.id) + "&format=" + fmt,
    target: "_blank", rel: "noopener", text: fmt });
  const dossiers = (page.dossiers || []).map((it) => el("tr", {},
    el("td", {}, el("code", { text: it.entity.id })),
    el("td", { text: it.entity.name }),
    el("td", { text: it.instanceType }),
    el("td", {}, dossierLink(it, "md"), " · ", dossierLink(it, "json"))));

  return el("div", {},
    el("p", {}, el("a", { href: "#/batches", text: "← batches" })),
    el("h1", {}, "Batch ", el("code", { text: b.id }), " ", stateBadge(b.state)),
    el("p", { class: "muted" },
      "source " + (b.source || "-") + " · launched " + fmtTime(b.launchedAt) + " · finished " + fmtTime(b.finishedAt) +
      " · consolidated " + fmtTime(b.consolidatedAt) + " · output " + (b.outputDir || "-")),
    b.consolidationError ? el("p", { class: "error", text: "consolidation failed: " + b.consolidationError }) : null,
    summary,
    el("h2", { text: "Per instance type" }),
    el("table", { id: "instances" },
      el("thead", {}, el("tr", {}, heads.map((h, i) => el("th", { class: i >= 2 ? "num" : null, text: h })))),
      el("tbody", {}, typeRows)),
    el("h2", { text: "Failures (" + failures.length + ")" }),
    failures.length ? el("table", { id: "failures" },
      el("thead", {}, el("tr", {}, ["entity", "name", "instance type", "attempts", "reason"].map((h) => el("th", { text: h })))),
      el("tbody", {}, failures)) : el("p", { class: "muted", text: "None." }),
    el("h2", { text: "Dossiers (" + dossiers.length + ")" }),
    dossiers.length ? el("table", { id: "dossiers" },
      el("thead", {}, el("tr", {}, ["entity", "name", "instance type", "dossier"].map((h) => el("th", { text: h })))),
      el("tbody", {}, dossiers)) : el("p", { class: "muted", text: "None yet." }),
    page.truncated ? el("p", { class: "muted", text: "Lists show the first entries only; report.md has them all." }) : null);
}

function renderAgents(data) {
  const agents = data.agents || [];
  const rows = agents.map((a) => el("tr", { "data-agent": a.agentId },
    el("td", {}, el("b", { text: a.agentId })),
    el("td", { text: a.hostname || "-" }),
    el("td", { text: (a.instanceTypes || []).join(", ") }),
    el("td", { class: "num", text: num(a.slots) }),
    el("td", { class: "num", text: num(a.inFlight) }),
    el("td", { text: ago(a.lastHeartbeat) }),
    el("td", { text: a.version || "-" }),
    el("td", { text: a.draining ? "yes" : "no", class: a.draining ? "warn" : null })));
  return el("div", {}, el("h1", { text: "Agents (" + agents.length + ")" }),
    agents.length ? el("table", { id: "agents" },
      el("thead", {}, el("tr", {}, ["agent", "host", "instance types", "slots", "in flight", "last heartbeat", "version", "draining"].map(
        (h, i) => el("th", { class: i === 3 || i === 4 ? "num" : null, text: h })))),
      el("tbody", {}, rows)) : el("p", { class: "muted", text: "No agent is connected." }));
}

window.addEventListener("hashchange", restart);
restart();
