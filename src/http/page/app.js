// The crew's page: live status by SSE, controls through /api/v1/cmd/<name>
// with the session cookie and its CSRF token. No third-party code.
"use strict";
const $ = (id) => document.getElementById(id);
let csrf = null;
let state = null;
let seq = 0;

async function post(path, body) {
  const headers = { "Content-Type": "application/json" };
  if (csrf) headers["X-CSRF-Token"] = csrf;
  const r = await fetch(path, { method: "POST", headers, body: JSON.stringify(body), credentials: "same-origin" });
  let json = null;
  try { json = await r.json(); } catch (_) { json = null; }
  return { status: r.status, json };
}

function command(name, extra) {
  seq += 1;
  return post("/api/v1/cmd/" + name, Object.assign({ id: "page-" + Date.now() + "-" + seq }, extra || {}));
}

function text(el, s) { el.textContent = s == null ? "" : String(s); }

function row(tbody, cells) {
  const tr = document.createElement("tr");
  for (const c of cells) { const td = document.createElement("td"); text(td, c); tr.appendChild(td); }
  tbody.appendChild(tr);
}

const STATE_WORDS = { live: "on air", degraded: "degraded", idle: "idle", starting: "starting", stopping: "stopping", error: "error" };

function showStatus(s) {
  state = s.state;
  const el = $("state");
  el.className = "state " + s.state;
  text(el, STATE_WORDS[s.state] || s.state);
  text($("reason"), s.reason || "");
  text($("device"), s.device_id + " · " + s.board + " · fieldcast " + s.firmware);
}

// dBFS -60..0 as 0..100 % of the bar.
const pct = (db) => Math.max(0, Math.min(100, (db + 60) / 60 * 100));

// One bar per audio channel: RMS filled, the peak as a tick (the last second).
function showMeters(audio) {
  const box = $("meters");
  while (box.children.length > audio.length) box.lastChild.remove();
  for (const a of audio) {
    let m = box.children[a.channel];
    if (!m) {
      m = document.createElement("div"); m.className = "meter";
      m.innerHTML = '<span class="ch"></span><span class="bar"><span class="rms"></span><span class="peak"></span></span><span class="db"></span>';
      box.appendChild(m);
    }
    text(m.querySelector(".ch"), a.channel === 0 ? "L" : a.channel === 1 ? "R" : String(a.channel + 1));
    m.querySelector(".rms").style.width = pct(a.rms_dbfs) + "%";
    m.querySelector(".peak").style.left = "calc(" + pct(a.peak_dbfs) + "% - 3px)";
    text(m.querySelector(".db"), a.peak_dbfs <= -100 ? "silent" : a.peak_dbfs.toFixed(0) + " dB");
    m.dataset.peak = a.peak_dbfs;
  }
}

// Each rung's measured bitrate and fps over the last minute, from the telemetry pushed here.
const HISTORY_MS = 60000;
const history = new Map();
const SVG = "http://www.w3.org/2000/svg";

function spark(values, cls) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark " + cls);
  svg.setAttribute("viewBox", "0 0 60 16");
  svg.setAttribute("preserveAspectRatio", "none");
  const max = Math.max(1e-9, ...values);
  const line = document.createElementNS(SVG, "polyline");
  const n = values.length;
  line.setAttribute("points", values.map((v, k) => (n < 2 ? 60 : (k / (n - 1)) * 60).toFixed(1) + "," + (15 - (v / max) * 14).toFixed(1)).join(" "));
  svg.appendChild(line);
  svg.dataset.points = String(n);
  return svg;
}

function rungRow(tbody, r, now) {
  const h = (history.get(r.name) || []).filter((x) => now - x.at <= HISTORY_MS);
  h.push({ at: now, kbps: r.bitrate_kbps, fps: r.fps });
  history.set(r.name, h);
  const tr = document.createElement("tr");
  tr.dataset.rung = r.name;
  const cells = [r.name + " " + r.width + "×" + r.height, Math.round(r.bitrate_kbps) + " / " + r.target_kbps, r.fps.toFixed(1)];
  cells.forEach((c, k) => {
    const td = document.createElement("td"); text(td, c);
    if (k === 1) td.appendChild(spark(h.map((x) => x.kbps), "kbps"));
    if (k === 2) td.appendChild(spark(h.map((x) => x.fps), "fps"));
    tr.appendChild(td);
  });
  tbody.appendChild(tr);
}

function showTelemetry(t) {
  const i = t.input;
  showMeters(i && i.audio ? i.audio : []);
  text($("input"), i ? (i.signal ? "signal" : "NO SIGNAL" + (i.slate ? " (slate on air)" : "")) + " · " + i.kind + " " + i.width + "×" + i.height + " · " + i.fps.toFixed(1) + "/" + i.configured_fps + " fps" : "no input (idle)");
  const rungs = $("rungs").tBodies[0]; rungs.replaceChildren();
  const now = Date.now();
  for (const r of t.rungs) rungRow(rungs, r, now);
  const outs = $("outputs").tBodies[0]; outs.replaceChildren();
  for (const d of t.destinations) row(outs, [d.name + "/" + d.rung + (d.endpoint === "primary" ? "" : "@" + d.endpoint), d.state + (d.reconnects ? " (" + d.reconnects + " reconnects)" : "")]);
  const y = t.system;
  const rec = t.recording.map((r) => r.rung + " " + r.state).join(", ") || "off";
  text($("recording"), rec + (y.disk_free_bytes != null ? " · " + (y.disk_free_bytes / 1e9).toFixed(1) + " GB free" : ""));
  const parts = [];
  if (y.cpu_percent != null) parts.push("CPU " + Math.round(y.cpu_percent) + "%");
  if (y.rss_bytes != null) parts.push("RSS " + Math.round(y.rss_bytes / 1e6) + " MB");
  if (y.mem_available_bytes != null) parts.push(Math.round(y.mem_available_bytes / 1e6) + " MB free");
  if (y.temperature_c != null) parts.push(y.temperature_c.toFixed(0) + " °C");
  text($("system"), parts.join(" · "));
}

let thumbUrl = null;
async function refreshThumb() {
  if (state === "live" || state === "degraded") {
    try {
      const r = await fetch("/ui/thumb.jpg?t=" + Date.now(), { credentials: "same-origin" });
      if (r.ok && (r.headers.get("Content-Type") || "").startsWith("image/")) {
        const url = URL.createObjectURL(await r.blob());
        $("thumb").src = url;
        if (thumbUrl) URL.revokeObjectURL(thumbUrl);
        thumbUrl = url;
      }
    } catch (_) { /* the next round tries again */ }
  }
  setTimeout(refreshThumb, 1500);
}

function listen() {
  const es = new EventSource("/ui/events");
  es.addEventListener("status", (e) => showStatus(JSON.parse(e.data)));
  es.addEventListener("telemetry", (e) => showTelemetry(JSON.parse(e.data)));
  es.onerror = () => { /* EventSource reconnects by itself */ };
}

// A configure reply shown in `form`: each refused field's message under its
// input (`fieldOf` maps the error's field path to a data-field name, or null),
// or the config version it was saved as in `okId`.
function showReply(form, okId, reply, fieldOf) {
  for (const el of document.querySelectorAll("#" + form + " .error")) text(el, "");
  text($(okId), "");
  if (reply.json && reply.json.ok) { text($(okId), "saved (config version " + reply.json.result.config_version + ")"); return; }
  const e = reply.json && reply.json.error;
  if (!e) { text(document.querySelector("#" + form + ' [data-field="other"]'), "no answer (" + reply.status + ")"); return; }
  const problems = e.fields && e.fields.length ? e.fields : [{ field: e.field || "", message: e.message }];
  // Several rungs can break one rule: each reason once under its field.
  const under = new Map();
  for (const p of problems) {
    const el = document.querySelector("#" + form + ' [data-field="' + (fieldOf(p.field || "") || "other") + '"]');
    const said = under.get(el) || [];
    if (!said.includes(p.message)) said.push(p.message);
    under.set(el, said);
  }
  for (const [el, said] of under) text(el, said.join(" · "));
}

async function boot() {
  const s = await (await fetch("/ui/session", { credentials: "same-origin" })).json();
  csrf = s.csrf;
  if (!s.logged_in && !s.public_status) {
    $("login").hidden = false;
    if (s.setup_code) text($("password-label"), "Setup code (printed in the journal at start)");
    return;
  }
  $("box").hidden = false;
  $("controls").hidden = !s.logged_in;
  $("config").hidden = !s.logged_in;
  listen();
  refreshThumb();
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const r = await post("/ui/login", { password: $("password").value });
  $("password").value = "";
  if (r.status === 200) { location.reload(); return; }
  text($("login-error"), r.json && r.json.error ? r.json.error.message : "login failed (" + r.status + ")");
});

for (const name of ["start", "stop"]) {
  $(name).addEventListener("click", async () => {
    text($("control-error"), "");
    $(name).disabled = true;
    const r = await command(name);
    $(name).disabled = false;
    if (!(r.json && r.json.ok)) text($("control-error"), r.json && r.json.error ? r.json.error.message : "failed (" + r.status + ")");
  });
}

$("dest-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const d = { name: "primary", url: $("dest-url").value.trim(), stream: $("dest-stream").value.trim() || "{rung}_{key}" };
  const key = $("dest-key").value;
  if (key) d.key = key;
  const r = await command("configure", { config: { destination: [d] } });
  $("dest-key").value = "";
  showReply("dest-form", "dest-ok", r, (f) => { const m = /destination\[\d+\]\.(url|stream|key)/.exec(f); return m && m[1]; });
});

$("ladder-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  // A profile replaces the rungs: the overlay's own rungs are dropped (null).
  const r = await command("configure", { config: { ladder: { profile: $("ladder-profile").value, rungs: null } } });
  showReply("ladder-form", "ladder-ok", r, (f) => (/^(config\.)?ladder(\.|$)/.test(f) ? "profile" : null));
});

$("logout").addEventListener("click", async () => { await post("/ui/logout", {}); location.reload(); });

boot();
