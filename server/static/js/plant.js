// Plant overview: every line and machine with live state, current-shift OEE and counts.
import * as api from "./api.js";
import { t } from "./i18n.js";
import { badge, esc, kpiHeader, kpis, localTime } from "./format.js";

// A table of one line: its total row, then one row per machine with its live state.
export function lineTable(line, ctx) {
  const rows = line.children.map(eq => `<tr><td><a href="#/asset/${encodeURIComponent(eq.id)}">${esc(eq.name)}</a></td>
    <td class="state">${badge(ctx.states.get(eq.id), eq.id)}</td>${kpis(EMPTY, eq.id)}</tr>`);
  return `<table class="kpis"><thead><tr><th data-i18n="equipment">${t("equipment")}</th>
    <th data-i18n="state">${t("state")}</th>${kpiHeader()}</tr></thead><tbody>
    <tr class="total"><td data-i18n="line_total">${t("line_total")}</td><td></td>${kpis(EMPTY, line.id)}</tr>
    ${rows.join("")}</tbody></table>`;
}

const EMPTY = { oee: null, availability: null, performance: null, quality: null, counts: { total: null, reject: null } };

// Put /oee documents into their cells (keyed by asset id) in one synchronous pass.
export function fillKpis(root, docs) {
  for (const [id, doc] of Object.entries(docs)) {
    const tmp = document.createElement("tr");
    tmp.innerHTML = kpis(doc, id);
    for (const cell of tmp.children) {
      const el = root.querySelector(`[data-testid="${CSS.escape(cell.dataset.testid)}"]`);
      if (el) el.innerHTML = cell.innerHTML;
    }
  }
}

// Live state badges: update in place so the page shows a change as soon as it streams in.
export function fillStates(root, states) {
  root.querySelectorAll("[data-testid^='state-']").forEach(el => {
    const id = el.dataset.testid.slice("state-".length);
    const tmp = document.createElement("div");
    tmp.innerHTML = badge(states.get(id), id);
    const fresh = tmp.firstElementChild;
    if (el.dataset.state !== fresh.dataset.state || el.dataset.since !== fresh.dataset.since) {
      el.dataset.since = fresh.dataset.since;
      el.dataset.state = fresh.dataset.state;
      el.style.background = fresh.style.background;
      el.textContent = fresh.textContent;
    }
  });
}

// /oee for every id over one window, all at once.
export async function oeeOf(ids, win) {
  const docs = await Promise.all(ids.map(scope => api.get("oee", { scope, ...win })));
  return Object.fromEntries(ids.map((id, i) => [id, docs[i]]));
}

export function show(el, ctx) {
  const lines = ctx.lines();
  el.innerHTML = `<section data-testid="view-plant">
    <div class="bar"><h1 data-i18n="nav_plant">${t("nav_plant")}</h1>
      <span class="muted"><span data-i18n="shift">${t("shift")}</span>: <b data-testid="shift-label"></b>
      <span data-i18n="since">${t("since")}</span> <span data-testid="shift-start"></span></span></div>
    <table class="kpis"><thead><tr><th></th>${kpiHeader()}</tr></thead>
      <tbody><tr class="total"><td data-i18n="plant_total">${t("plant_total")}</td>${kpis(EMPTY, ctx.tree.id)}</tr></tbody></table>
    ${lines.map(({ line, path }) => `<div class="card">
      <h2><a href="#/asset/${encodeURIComponent(line.id)}">${esc(line.name)}</a> <span class="muted">${esc(path)}</span></h2>
      ${lineTable(line, ctx)}</div>`).join("")}
  </section>`;
  const section = el.firstElementChild;
  const ids = [ctx.tree.id, ...lines.flatMap(({ line }) => [line.id, ...line.children.map(e => e.id)])];
  return {
    async update() {
      const win = ctx.window("shift");
      const docs = await oeeOf(ids, win);
      section.dataset.start = win.start;
      section.dataset.end = win.end;
      section.querySelector("[data-testid='shift-label']").textContent = ctx.shiftLabel();
      section.querySelector("[data-testid='shift-start']").textContent = localTime(win.start);
      fillKpis(section, docs);
    },
    states(states) { fillStates(section, states); },
  };
}
