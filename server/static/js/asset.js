// Line and machine view: OEE and its parts, state timeline, six big losses, counts, trends.
import * as api from "./api.js";
import { t } from "./i18n.js";
import { chart, ganttOption, LOSSES, trendOption, waterfallOption } from "./charts.js";
import { badge, count, esc, pct, secs } from "./format.js";
import { fillKpis, fillStates, lineTable, oeeOf } from "./plant.js";

const DAY_MS = 24 * 3600 * 1000;
const WEEK_MS = 7 * DAY_MS;

function cards(id) {
  const card = (k, label) => `<div class="kpi"><div class="label" data-i18n="${label}">${t(label)}</div>
    <div class="value" data-testid="card-${k}">—</div></div>`;
  return `<div class="cards">${card("oee", "oee")}${card("availability", "availability")}
    ${card("performance", "performance")}${card("quality", "quality")}${card("total", "parts")}
    ${card("good", "good")}${card("reject", "rejects")}</div>`;
}

export function show(el, ctx, id) {
  const asset = ctx.find(id);
  if (!asset) {
    el.innerHTML = `<p class="error">${esc(t("error"))}: ${esc(id)}</p>`;
    return {};
  }
  const machines = asset.level === "equipment" ? [asset] : ctx.equipmentUnder(asset);
  const lossRows = LOSSES.map(k => `<tr><td data-i18n="loss_${k}">${t("loss_" + k)}</td>
    <td data-testid="loss-${k}">—</td></tr>`).join("");
  el.innerHTML = `<section data-testid="view-asset" data-scope="${esc(asset.id)}">
    <div class="bar"><h1>${esc(asset.name)}</h1><span class="muted">${esc(asset.id)}</span>
      ${asset.level === "equipment" ? badge(ctx.states.get(asset.id), asset.id) : ""}
      <label class="right"><span data-i18n="window">${t("window")}</span>
      <select data-testid="window">${["shift", "1h", "8h", "7d", "30d"].map(w =>
        `<option value="${w}" ${w === ctx.windowKind ? "selected" : ""} data-i18n="window_${w}">${t("window_" + w)}</option>`).join("")}
      </select></label></div>
    ${cards(asset.id)}
    ${asset.level === "line" ? `<div class="card">${lineTable(asset, ctx)}</div>` : ""}
    <div class="card"><h2 data-i18n="timeline">${t("timeline")}</h2>
      <p class="muted" data-testid="timeline-note"></p>
      <div class="legend">${["PRODUCING", "IDLE", "DOWN", "SETUP", "PLANNED_STOP", "NO_SHIFT", "OFFLINE"]
        .map(s => `<span><i class="sw" style="background:var(--${s})"></i><span data-i18n="state_${s}">${t("state_" + s)}</span></span>`).join("")}</div>
      <div class="chart" data-testid="gantt" style="height:${80 + 40 * machines.length}px"></div></div>
    <div class="grid2">
      <div class="card"><h2 data-i18n="losses">${t("losses")}</h2><div class="chart" data-testid="losses"></div>
        <table class="small"><tbody>${lossRows}</tbody></table></div>
      <div class="card"><h2 data-testid="trend-title">${t("trend_1h")}</h2><div class="chart" data-testid="trend-1h"></div>
        <h2 data-i18n="trend_shift">${t("trend_shift")}</h2><p class="muted" data-testid="trend-note"></p>
        <div class="chart" data-testid="trend-shift"></div></div>
    </div></section>`;
  const section = el.firstElementChild;
  const q = k => section.querySelector(`[data-testid="${k}"]`);
  section.querySelector("select").addEventListener("change", e => { ctx.windowKind = e.target.value; ctx.refresh(); });
  const charts = {};
  const draw = (k, option) => (charts[k] ? charts[k].setOption(option) : (charts[k] = chart(q(k), option)));
  const ids = asset.level === "line" ? [asset.id, ...asset.children.map(e => e.id)] : [asset.id];

  let byShift = null, byShiftAt = 0;  // the week by shift changes slowly: every 30 s
  async function shiftTrend() {
    if (byShift && Date.now() - byShiftAt < 30000) return byShift;
    byShift = await weekByShift();
    byShiftAt = Date.now();
    return byShift;
  }

  async function weekByShift() {
    const end = new Date(), start = new Date(end - WEEK_MS);
    const win = { start: start.toISOString(), end: end.toISOString() };
    try {
      return [await api.get("trend", { scope: asset.id, ...win, granularity: "shift" }), ""];
    } catch (e) {  // no shift calendar: by day instead
      if (e.status !== 422) throw e;
      return [await api.get("trend", { scope: asset.id, ...win, granularity: "day" }), t("no_calendar")];
    }
  }

  const view = {
    async update() {
      const win = ctx.window(ctx.windowKind);
      // a week or a month: the Gantt shows its last day, the trend goes by day
      const long = ctx.isLong(ctx.windowKind);
      const ganttWin = long ? { start: new Date(new Date(win.end) - DAY_MS).toISOString(),
        end: win.end } : win;
      const [docs, losses, timeline, hourly, [weekly, note]] = await Promise.all([
        oeeOf(ids, win), api.get("losses", { scope: asset.id, ...win }),
        api.get("timeline", { scope: asset.id, ...ganttWin }),
        api.get("trend", { scope: asset.id, ...win, granularity: long ? "day" : "1h" }),
        shiftTrend()]);
      q("trend-title").textContent = t(long ? "trend_day" : "trend_1h");
      q("timeline-note").textContent = long ? t("timeline_last_day") : "";
      const doc = docs[asset.id];
      section.dataset.start = win.start;
      section.dataset.end = win.end;
      q("card-oee").textContent = pct(doc.oee);
      q("card-availability").textContent = pct(doc.availability);
      q("card-performance").textContent = pct(doc.performance);
      q("card-quality").textContent = pct(doc.quality);
      q("card-total").textContent = count(doc.counts.total);
      q("card-good").textContent = count(doc.counts.good);
      q("card-reject").textContent = count(doc.counts.reject);
      fillKpis(section, docs);
      for (const k of LOSSES) q("loss-" + k).textContent = `${secs(losses.losses_s[k])} ${t("seconds")}`;
      q("trend-note").textContent = note;
      draw("gantt", ganttOption(timeline));
      q("gantt").dataset.intervals = timeline.equipment.reduce((n, e) => n + e.intervals.length, 0);
      draw("losses", waterfallOption(losses));
      draw("trend-1h", trendOption(hourly));
      q("trend-1h").dataset.buckets = hourly.buckets.length;
      draw("trend-shift", trendOption(weekly));
      q("trend-shift").dataset.buckets = weekly.buckets.length;
    },
    states(states) { fillStates(section, states); },
  };
  return view;
}
