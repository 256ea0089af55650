// The status page at `/` on the admin endpoint: one static HTML document, no build
// step, no external assets. It reads /debug/proxies, /api/rollout, /api/fleet (every replica's proxies, on a
// PostgreSQL store) and /api/snapshots and refreshes
// itself; every value from a proxy (node ids, NACK messages) is inserted as text,
// never as markup.

enum StatusPage {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>meshctl status</title>
<style>
  :root { --fg:#1d2330; --muted:#5b6475; --line:#dfe3ea; --bg:#f6f7f9; --ok:#1a7f37; --warn:#9a6700; --bad:#cf222e; --idle:#6e7781; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--fg); background:var(--bg); }
  header { background:#fff; border-bottom:1px solid var(--line); padding:14px 24px; display:flex; gap:28px; align-items:baseline; flex-wrap:wrap; }
  header h1 { font-size:18px; margin:0; }
  .stat { color:var(--muted); } .stat b { color:var(--fg); font-family:ui-monospace, monospace; }
  main { padding:18px 24px; display:grid; gap:20px; }
  section { background:#fff; border:1px solid var(--line); border-radius:6px; }
  section h2 { font-size:15px; margin:0; padding:10px 14px; border-bottom:1px solid var(--line); }
  table { border-collapse:collapse; width:100%; }
  th, td { text-align:left; padding:6px 14px; border-bottom:1px solid var(--line); vertical-align:top; }
  th { font-weight:600; color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.03em; }
  td.mono, span.mono { font-family:ui-monospace, monospace; font-size:12.5px; }
  .badge { display:inline-block; padding:1px 7px; border-radius:10px; font-size:11.5px; font-weight:600; color:#fff; }
  .SYNCED { background:var(--ok); } .STALE { background:var(--warn); } .NACKED { background:var(--bad); } .NOT_SENT { background:var(--idle); }
  tr.nack td { background:#fff5f5; color:var(--bad); font-family:ui-monospace, monospace; font-size:12px; white-space:pre-wrap; }
  .live { color:var(--ok); font-weight:600; }
  .running, .paused { background:var(--warn); } .completed, .superseded { background:var(--ok); } .rolled_back, .aborted, .halted { background:var(--bad); }
  #error { display:none; background:#fff5f5; color:var(--bad); border:1px solid #f3c2c2; padding:8px 14px; border-radius:6px; }
  .empty { color:var(--muted); padding:14px; }
  a { color:#0969da; }
</style>
</head>
<body>
<header>
  <h1>meshctl</h1>
  <span class="stat">serving <b id="served">–</b></span>
  <span class="stat">published <b id="published">–</b></span>
  <span class="stat">proxies <b id="count">0</b></span>
  <span class="stat" id="summary"></span>
  <span class="stat">updated <b id="updated">–</b></span>
</header>
<main>
  <div id="error"></div>
  <section id="rollout" style="display:none">
    <h2>Rollout <span id="rollout-phase" class="badge"></span> <span class="stat" id="rollout-versions"></span></h2>
    <div class="empty" id="rollout-failure" style="display:none"></div>
    <table id="rollout-groups">
      <thead><tr><th>Group</th><th>Waves</th><th>Current wave</th><th>Bake</th><th>Wave started</th><th>Proxies by wave</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section>
    <h2>Proxies</h2>
    <table id="proxies">
      <thead><tr><th>Proxy</th><th>Group</th><th>Mode</th><th>LDS</th><th>RDS</th><th>CDS</th><th>EDS</th><th>SDS</th><th>Snapshot</th><th>Connected</th></tr></thead>
      <tbody></tbody>
    </table>
    <div class="empty" id="no-proxies">No proxy is connected.</div>
  </section>
  <section id="fleet" style="display:none">
    <h2>Fleet <span class="stat" id="fleet-summary"></span></h2>
    <table id="fleet-proxies">
      <thead><tr><th>Replica</th><th>Proxy</th><th>Group</th><th>LDS</th><th>RDS</th><th>CDS</th><th>EDS</th><th>SDS</th><th>Snapshot</th><th>Heartbeat</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section>
    <h2>Snapshot history</h2>
    <table id="snapshots">
      <thead><tr><th>Version</th><th>Created</th><th>Author</th><th>Message</th><th>Groups</th><th>Resources</th><th>Changes</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
</main>
<script>
"use strict";
const TYPES = ["LDS", "RDS", "CDS", "EDS", "SDS"];
const short = v => v ? String(v).slice(0, 12) : "–";
const when = t => t ? new Date(t).toLocaleString() : "–";
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function badge(type) {
  if (!type) return el("td", "–");
  const td = el("td");
  const b = el("span", type.status, "badge " + type.status);
  b.title = type.type + ": sent " + short(type.version_sent) + ", ACKed " + short(type.version_acked);
  td.appendChild(b);
  return td;
}
function renderProxies(data) {
  document.getElementById("served").textContent = short(data.served_version);
  document.getElementById("published").textContent = when(data.served_created_at);
  document.getElementById("count").textContent = data.proxy_count;
  const tally = {};
  const body = document.querySelector("#proxies tbody");
  body.replaceChildren();
  for (const p of data.proxies) {
    const tr = el("tr");
    tr.appendChild(el("td", p.node_id, "mono"));
    tr.appendChild(el("td", p.group));
    tr.appendChild(el("td", p.mode));
    const byType = {};
    for (const t of p.types) { byType[t.type] = t; tally[t.status] = (tally[t.status] || 0) + 1; }
    for (const name of TYPES) tr.appendChild(badge(byType[name]));
    const snapshots = [...new Set(p.types.map(t => t.snapshot_sent).filter(Boolean))];
    tr.appendChild(el("td", snapshots.map(short).join(", ") || "–", "mono"));
    tr.appendChild(el("td", when(p.connected_at)));
    body.appendChild(tr);
    for (const t of p.types) {
      if (!t.nack) continue;
      const row = el("tr", null, "nack");
      const td = el("td", t.type + " NACK of " + short(t.nack.rejected_version) + " at " + when(t.nack.at) + ": " + t.nack.message);
      td.colSpan = 10;
      row.appendChild(td);
      body.appendChild(row);
    }
  }
  document.getElementById("no-proxies").style.display = data.proxies.length ? "none" : "block";
  document.getElementById("summary").textContent = Object.keys(tally).sort().map(k => k + " " + tally[k]).join(" · ");
}
function renderSnapshots(data) {
  const body = document.querySelector("#snapshots tbody");
  body.replaceChildren();
  const versions = data.versions.slice().sort((a, b) => new Date(b.created_at) - new Date(a.created_at));
  versions.forEach((v, i) => {
    const tr = el("tr");
    const version = el("td", short(v.version), "mono");
    if (v.live) version.appendChild(el("span", " live", "live"));
    tr.appendChild(version);
    tr.appendChild(el("td", when(v.created_at)));
    tr.appendChild(el("td", v.author || "–"));
    tr.appendChild(el("td", v.message || "–"));
    tr.appendChild(el("td", v.groups));
    tr.appendChild(el("td", v.resources));
    const changes = el("td");
    const previous = versions[i + 1];
    if (previous) {
      const a = el("a", "diff from " + short(previous.version));
      a.href = "/diff?from=" + encodeURIComponent(previous.version) + "&to=" + encodeURIComponent(v.version);
      changes.appendChild(a);
    } else {
      changes.textContent = "first";
    }
    tr.appendChild(changes);
    body.appendChild(tr);
  });
}
function renderRollout(r) {
  document.getElementById("rollout").style.display = "block";
  const phase = document.getElementById("rollout-phase");
  phase.textContent = r.phase;
  phase.className = "badge " + r.phase;
  document.getElementById("rollout-versions").textContent = short(r.previous) + " → " + short(r.target) + ", started " + when(r.startedAt)
    + (r.finishedAt ? ", ended " + when(r.finishedAt) : "");
  const failure = document.getElementById("rollout-failure");
  failure.style.display = r.failure ? "block" : "none";
  if (r.failure) failure.textContent = "Failed: " + r.failure.kind + " by " + r.failure.proxy.node + " (" + r.failure.proxy.group + ")"
    + (r.failure.typeURL ? " " + r.failure.typeURL.split(".").pop() : "") + " in wave " + (r.failure.wave + 1) + ": " + r.failure.detail;
  const body = document.querySelector("#rollout-groups tbody");
  body.replaceChildren();
  for (const name of Object.keys(r.groups).sort()) {
    const g = r.groups[name];
    const tr = el("tr");
    tr.appendChild(el("td", name));
    tr.appendChild(el("td", g.policy.waves.join(", "), "mono"));
    tr.appendChild(el("td", g.completedAt ? "done " + when(g.completedAt) : (g.wave + 1) + " of " + g.policy.waves.length));
    tr.appendChild(el("td", (g.policy.bake_ms / 1000) + "s"));
    tr.appendChild(el("td", when(g.waveStartedAt[g.waveStartedAt.length - 1])));
    const waves = g.policy.waves.map((_, i) => (i + 1) + ": " + Object.keys(g.proxies).filter(n => g.proxies[n].wave === i).sort().join(", "));
    tr.appendChild(el("td", waves.join("  ·  "), "mono"));
    body.appendChild(tr);
  }
}
function renderFleet(f) {
  document.getElementById("fleet").style.display = "block";
  document.getElementById("fleet-summary").textContent = f.replicas.length + " replica(s), " + f.proxy_count + " prox" + (f.proxy_count === 1 ? "y" : "ies")
    + (f.nacked_count ? ", " + f.nacked_count + " NACKED" : "");
  const body = document.querySelector("#fleet-proxies tbody");
  body.replaceChildren();
  for (const r of f.replicas) {
    const beat = (r.stale ? "STALE " : "") + (r.heartbeat_age_seconds < 0 ? "none" : Math.round(r.heartbeat_age_seconds) + "s ago")
      + (r.maintenance_leader ? " · maintenance leader" : "");
    const replica = r.replica_id + " (" + r.xds_address + ", serving " + short(r.serving_version) + ")";
    if (!r.proxies.length) {
      const tr = el("tr");
      tr.appendChild(el("td", replica, "mono"));
      const none = el("td", "no proxy");
      none.colSpan = 8;
      tr.appendChild(none);
      tr.appendChild(el("td", beat));
      body.appendChild(tr);
    }
    for (const p of r.proxies) {
      const tr = el("tr");
      tr.appendChild(el("td", replica, "mono"));
      tr.appendChild(el("td", p.node_id, "mono"));
      tr.appendChild(el("td", p.group));
      const byType = {};
      for (const t of p.types) byType[t.type] = t;
      for (const name of TYPES) tr.appendChild(badge(byType[name]));
      const snapshots = [...new Set(p.types.map(t => t.snapshot_sent).filter(Boolean))];
      tr.appendChild(el("td", snapshots.map(short).join(", ") || "–", "mono"));
      tr.appendChild(el("td", beat));
      body.appendChild(tr);
      for (const t of p.types) {
        if (t.status !== "NACKED" || !t.nack) continue;
        const row = el("tr", null, "nack");
        const td = el("td", r.replica_id + " " + p.node_id + " " + t.type + " NACK of " + short(t.nack.rejected_version) + ": " + t.nack.message);
        td.colSpan = 10;
        row.appendChild(td);
        body.appendChild(row);
      }
    }
  }
}
async function refresh() {
  const error = document.getElementById("error");
  try {
    const proxies = await fetch("/debug/proxies", {cache: "no-store"});
    if (!proxies.ok) throw new Error("/debug/proxies: HTTP " + proxies.status);
    renderProxies(await proxies.json());
    const rollout = await fetch("/api/rollout", {cache: "no-store"});
    if (rollout.ok) renderRollout(await rollout.json());
    const fleet = await fetch("/api/fleet", {cache: "no-store"});
    if (fleet.ok) renderFleet(await fleet.json());
    const snapshots = await fetch("/api/snapshots", {cache: "no-store"});
    if (snapshots.ok) renderSnapshots(await snapshots.json());
    error.style.display = "none";
    document.getElementById("updated").textContent = new Date().toLocaleTimeString();
  } catch (e) {
    error.textContent = "Cannot reach the server: " + e.message;
    error.style.display = "block";
  }
}
refresh();
setInterval(refresh, 3000);
</script>
</body>
</html>
"""#
}
