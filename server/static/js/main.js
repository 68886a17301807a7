// Entry point: the asset tree, one live stream for the whole page, a hash router, language.
import * as api from "./api.js";
import { getLang, setLang, t, translate } from "./i18n.js";
import { disposeCharts } from "./charts.js";
import * as plant from "./plant.js";
import * as asset from "./asset.js";
import * as cluster from "./cluster.js";

const REFRESH_MS = 1500;  // numbers; states arrive on the stream as they change
const HOUR_MS = 3600 * 1000;
const app = document.getElementById("app");
const status = document.getElementById("live");
const errorBox = document.getElementById("error");
let view = null;
let gotShift;

const ctx = {
  tree: null,
  states: new Map(),         // equipment id -> {state, since}, from the stream
  shift: null,               // the current shift {shift, start, ...}, from the stream
  shiftReady: new Promise(res => { gotShift = res; }),
  windowKind: "shift",
  refresh: () => refresh(view),  // now, e.g. after the window changed
  find(id, node = ctx.tree) {
    if (node.id === id) return node;
    for (const c of node.children || []) { const f = ctx.find(id, c); if (f) return f; }
    return null;
  },
  equipmentUnder(node) {
    return node.level === "equipment" ? [node] : (node.children || []).flatMap(c => ctx.equipmentUnder(c));
  },
  lines(node = ctx.tree, path = []) {
    if (node.level === "line") return [{ line: node, path: path.join(" / ") }];
    const here = node.level === "cluster" ? path : [...path, node.name];
    return (node.children || []).flatMap(c => ctx.lines(c, here));
  },
  inShift() { return ctx.shift && ctx.shift.shift !== "no shift"; },
  shiftLabel() { return ctx.inShift() ? ctx.shift.shift : t("no_shift"); },
  // {start, end} ISO for "shift" (current shift; last 8 h outside shifts), "1h", "8h",
  // "7d" or "30d" (the long ones answered from the server's roll-ups).
  window(kind) {
    const end = new Date();
    const hours = { "1h": 1, "8h": 8, "7d": 7 * 24, "30d": 30 * 24 }[kind] || 8;
    const start = kind === "shift" && ctx.inShift() ? new Date(ctx.shift.start)
      : new Date(end - hours * HOUR_MS);
    return { start: start.toISOString(), end: end.toISOString() };
  },
  isLong(kind) { return kind === "7d" || kind === "30d"; },
};

// Refresh the view's numbers; returns how long it took (ms).
async function refresh(v) {
  if (!v?.update || v.busy) return 0;
  v.busy = true;
  const t0 = performance.now();
  try {
    await v.update();
    errorBox.textContent = "";
  } catch (e) {
    console.warn(e);
    errorBox.textContent = `${t("error")}: ${e.message}`;
  } finally {
    v.busy = false;
  }
  return performance.now() - t0;
}

// Every REFRESH_MS, slower when the server is slow to answer (long shifts): the
// dashboard then keeps at most a quarter of the time waiting on it.
async function refreshLoop() {
  const took = await refresh(view);
  setTimeout(refreshLoop, Math.max(REFRESH_MS, 3 * took));
}

function route() {
  disposeCharts();
  const [, name, arg] = location.hash.match(/^#\/([a-z]+)\/?(.*)$/) || [];
  document.querySelectorAll("nav a[data-view]").forEach(a => a.classList.toggle("active", a.dataset.view === (name || "plant")));
  if (name === "asset") view = asset.show(app, ctx, decodeURIComponent(arg));
  else if (name === "cluster") view = cluster.show(app, ctx);
  else view = plant.show(app, ctx);
  refresh(view);
}

function onEvent(kind, data) {
  if (kind === "state") {
    ctx.states = new Map(data.map(s => [s.id, s]));
    view?.states?.(ctx.states);
  } else if (kind === "oee") {
    ctx.shift = data;
    gotShift();
  }
}

function onStatus(up) {
  status.textContent = t(up ? "live" : "reconnecting");
  status.dataset.i18n = up ? "live" : "reconnecting";
  status.className = up ? "live" : "down";
}

async function boot() {
  translate(document);
  const toggle = document.getElementById("lang");
  toggle.addEventListener("click", () => { setLang(getLang() === "zh" ? "en" : "zh"); route(); });
  ctx.tree = await api.get("assets");
  api.stream(ctx.tree.id, onEvent, onStatus, new AbortController().signal);
  await Promise.race([ctx.shiftReady, new Promise(res => setTimeout(res, 3000))]);
  addEventListener("hashchange", route);
  route();
  setTimeout(refreshLoop, REFRESH_MS);
}

boot().catch(e => { console.warn(e); errorBox.textContent = `${t("error")}: ${e.message}`; });
