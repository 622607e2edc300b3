// gridctl status page: polls /v1/status every few seconds with the API token and draws
// zones (load per minute over the last hour against the cap), active signals, stations
// and recent alerts. No library, no CDN: plots are plain SVG.
"use strict";

const REFRESH_MS = 5000;
const KEY = "gridctl-token";
let timer = null;

function token() {
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("token")) {
    sessionStorage.setItem(KEY, hash.get("token"));
    history.replaceState(null, "", location.pathname);  // keep it out of the address bar
  }
  return sessionStorage.getItem(KEY);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

const num = (v, digits = 1) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
const time = (ts) => (ts ? new Date(ts).toLocaleTimeString([], { hour12: false }) : "–");

function rows(table, items, cells) {
  const body = document.querySelector(`#${table} tbody`);
  body.replaceChildren(...items.map((item) => el("tr", {}, ...cells(item))));
  document.getElementById(`${table}-count`).textContent = `(${items.length})`;
}

function plot(points, cap, capacity, start, end) {
  // load per minute (points: [[iso, kW], ...]) with the cap and the capacity as lines
  const W = 320, H = 110, pad = 4;
  const top = Math.max(1, capacity || 0, cap || 0, ...points.map((p) => p[1])) * 1.1;
  const x = (t) => pad + ((t - start) / (end - start)) * (W - 2 * pad);
  const y = (kw) => H - pad - (kw / top) * (H - 2 * pad);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  const line = (cls, y0, stroke, dash) => {
    const l = document.createElementNS(ns, "line");
    Object.entries({ x1: pad, x2: W - pad, y1: y0, y2: y0, stroke, "stroke-dasharray": dash,
                     class: cls }).forEach(([k, v]) => l.setAttribute(k, v));
    svg.append(l);
  };
  if (capacity) line("capacity", y(capacity), "var(--capacity)", "2 3");
  if (cap !== null && cap !== undefined) line("cap", y(cap), "var(--cap)", "6 3");
  const path = document.createElementNS(ns, "polyline");
  path.setAttribute("class", "load");
  path.setAttribute("fill", "none");
  path.setAttribute("stroke", "var(--load)");
  path.setAttribute("stroke-width", "2");
  path.setAttribute("points",
    points.map(([t, kw]) => `${x(Date.parse(t)).toFixed(1)},${y(kw).toFixed(1)}`).join(" "));
  path.setAttribute("data-points", String(points.length));
  svg.append(path);
  return svg;
}

function zones(data) {
  const end = Date.parse(data.at), start = end - 3600 * 1000;
  const cards = data.zones.map((z) => {
    const over = z.cap_kw !== null && z.load_kw !== null && z.load_kw > z.cap_kw;
    return el("div", { class: "zone", "data-zone": z.zone_id },
      el("h3", {}, z.zone_id),
      el("div", { class: "figures" },
        el("span", { class: over ? "load bad" : "load" }, `load ${num(z.load_kw)} kW`),
        el("span", { class: "cap" }, z.cap_kw === null ? "no cap" : `cap ${num(z.cap_kw)} kW`),
        el("span", { class: "muted" }, `capacity ${num(z.capacity_kw)} kW`),
        el("span", { class: "online" },
          `${z.online ?? "–"} online / ${z.offline ?? "–"} offline`)),
      plot(data.history[z.zone_id] || [], z.cap_kw, z.capacity_kw, start, end),
      el("div", { class: "legend muted" },
        el("span", {}, "— load"), el("span", {}, "- - cap"), el("span", {}, "··· capacity"),
        z.signal_id ? el("span", {}, `signal ${z.signal_id}`) : ""));
  });
  document.getElementById("zones").replaceChildren(...cards);
}

function render(data) {
  zones(data);
  rows("signals", data.signals, (s) => [
    el("td", { class: "id" }, s.signal_id), el("td", {}, s.zone_id), el("td", {}, s.signal_type),
    el("td", {}, s.priority), el("td", {}, num(s.cap_kw)), el("td", {}, num(s.load_kw)),
    el("td", { class: s.compliance === "compliant" ? "ok" : "bad" }, s.compliance),
    el("td", {}, time(s.end_ts))]);
  rows("stations", data.stations, (s) => [
    el("td", { class: "id" }, s.station_id), el("td", {}, s.zone_id),
    el("td", { class: s.connection === "online" ? "ok" : "bad" }, s.connection),
    el("td", {}, time(s.last_seen)), el("td", {}, s.ocpp_version), el("td", {}, s.connectors),
    el("td", {}, num(s.limit_kw)),
    el("td", { class: s.last_result && s.last_result !== "Accepted" ? "warn" : "" },
      s.last_result)]);
  rows("alerts", data.alerts, (a) => [
    el("td", {}, time(a.detected_at)), el("td", {}, a.alert_type), el("td", {}, a.zone_id),
    el("td", { class: "id" }, a.station_id), el("td", { class: "id" }, a.signal_id),
    el("td", {}, num(a.observed_kw)), el("td", {}, num(a.limit_kw))]);
  document.getElementById("updated").textContent = `updated ${time(data.at)}`;
}

async function health() {
  const pill = document.getElementById("health");
  try {
    const r = await fetch("/healthz");
    const body = await r.json();
    const down = Object.entries(body.components || {}).filter(([, c]) => !c.ok);
    pill.className = `pill ${r.ok ? "ok" : "down"}`;
    pill.textContent = r.ok ? "healthy" : `down: ${down.map(([n, c]) => `${n} (${c.detail})`).join(", ")}`;
  } catch (e) {
    pill.className = "pill down";
    pill.textContent = "API unreachable";
  }
}

async function refresh() {
  const t = token();
  if (!t) return showLogin("");
  health();
  try {
    const r = await fetch("/v1/status", { headers: { Authorization: `Bearer ${t}` } });
    if (r.status === 401) {
      sessionStorage.removeItem(KEY);
      return showLogin("That token was refused.");
    }
    if (!r.ok) throw new Error(`HTTP ${r.status}: ${(await r.text()).slice(0, 200)}`);
    render(await r.json());
    document.getElementById("main").hidden = false;
    document.getElementById("login").hidden = true;
  } catch (e) {
    document.getElementById("updated").textContent = `update failed: ${e.message}`;
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

function showLogin(message) {
  clearTimeout(timer);
  document.getElementById("main").hidden = true;
  document.getElementById("login").hidden = false;
  document.getElementById("login-error").textContent = message;
}

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, document.getElementById("token").value.trim());
  refresh();
});

refresh();
