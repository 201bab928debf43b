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

function showTelemetry(t) {
  const i = t.input;
  text($("input"), i ? (i.signal ? "signal" : "NO SIGNAL" + (i.slate ? " (slate on air)" : "")) + " · " + i.kind + " " + i.width + "×" + i.height + " · " + i.fps.toFixed(1) + "/" + i.configured_fps + " fps" : "no input (idle)");
  const rungs = $("rungs").tBodies[0]; rungs.replaceChildren();
  for (const r of t.rungs) row(rungs, [r.name + " " + r.width + "×" + r.height, Math.round(r.bitrate_kbps) + " / " + r.target_kbps, r.fps.toFixed(1)]);
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

function showErrors(reply) {
  for (const el of document.querySelectorAll("#dest-form .error")) text(el, "");
  text($("dest-ok"), "");
  const e = reply.json && reply.json.error;
  if (!e) { text(document.querySelector('#dest-form [data-field="other"]'), "no answer (" + reply.status + ")"); return; }
  const problems = e.fields && e.fields.length ? e.fields : [{ field: e.field || "", message: e.message }];
  for (const p of problems) {
    const m = /destination\[\d+\]\.(url|stream|key)/.exec(p.field || "");
    const el = document.querySelector('#dest-form [data-field="' + (m ? m[1] : "other") + '"]');
    text(el, (el.textContent ? el.textContent + "; " : "") + p.message);
  }
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
  if (r.json && r.json.ok) {
    for (const el of document.querySelectorAll("#dest-form .error")) text(el, "");
    text($("dest-ok"), "saved (config version " + r.json.result.config_version + ")");
  } else {
    showErrors(r);
  }
});

$("logout").addEventListener("click", async () => { await post("/ui/logout", {}); location.reload(); });

boot();
