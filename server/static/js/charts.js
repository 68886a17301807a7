// ECharts (vendored, global `echarts`) option builders for the views.
import { getLang, t } from "./i18n.js";
import { localTime, STATE_COLORS } from "./format.js";

const live = new Set();

// A chart on `el` with `option`; charts are disposed with disposeCharts() on view change.
export function chart(el, option) {
  const c = echarts.init(el, null, { locale: getLang() === "zh" ? "ZH" : "EN", renderer: "canvas" });
  c.setOption({ animation: false, ...option });
  live.add(c);
  return c;
}

export function disposeCharts() {
  live.forEach(c => c.dispose());
  live.clear();
}

addEventListener("resize", () => live.forEach(c => c.resize()));

// Gantt: one row per machine, one rectangle per state interval (/api/v1/timeline).
export function ganttOption(doc) {
  const names = doc.equipment.map(e => e.name);
  const data = [];
  doc.equipment.forEach((e, row) => e.intervals.forEach(iv => data.push({
    value: [row, Date.parse(iv.start), Date.parse(iv.end), iv.state],
    itemStyle: { color: STATE_COLORS[iv.state] },
  })));
  return {
    tooltip: {
      formatter: p => `${p.marker}${t("state_" + p.value[3])}<br>${localTime(p.value[1])} – ` +
        `${localTime(p.value[2])} (${((p.value[2] - p.value[1]) / 1000).toFixed(1)} ${t("seconds")})`,
    },
    grid: { left: 120, right: 30, top: 10, bottom: 60 },
    xAxis: { type: "time", min: Date.parse(doc.start), max: Date.parse(doc.end) },
    yAxis: { type: "category", data: names, inverse: true },
    dataZoom: [{ type: "inside", filterMode: "weakFilter" }, { type: "slider", filterMode: "weakFilter", height: 18 }],
    series: [{
      type: "custom", encode: { x: [1, 2], y: 0 }, data,
      renderItem(params, api) {
        const y = api.value(0), a = api.coord([api.value(1), y]), b = api.coord([api.value(2), y]);
        const h = api.size([0, 1])[1] * 0.6;
        const shape = echarts.graphic.clipRectByRect(
          { x: a[0], y: a[1] - h / 2, width: Math.max(b[0] - a[0], 0.5), height: h },
          { x: params.coordSys.x, y: params.coordSys.y, width: params.coordSys.width, height: params.coordSys.height });
        return shape && { type: "rect", shape, style: { fill: api.visual("color") } };
      },
    }],
  };
}

export const LOSSES = ["failures", "setups", "small_stops", "slow_cycles", "process_rejects", "startup_rejects"];

// Waterfall from planned busy time down through the six big losses to fully productive time.
export function waterfallOption(doc) {
  const minutes = doc.planned_busy_time_s >= 600;
  const unit = v => (minutes ? v / 60 : v);
  const labels = [t("planned_busy_time"), ...LOSSES.map(k => t("loss_" + k)), t("fully_productive_time")];
  const base = [0], size = [unit(doc.planned_busy_time_s)], colors = ["#2c3e50"];
  let left = doc.planned_busy_time_s;
  for (const k of LOSSES) {
    const loss = doc.losses_s[k], next = left - loss;
    base.push(unit(Math.min(left, next)));
    size.push(unit(Math.abs(loss)));
    colors.push(loss >= 0 ? "#c0392b" : "#27ae60");
    left = next;
  }
  base.push(0); size.push(unit(doc.fully_productive_time_s)); colors.push("#2e8b57");
  return {
    tooltip: { trigger: "axis", axisPointer: { type: "shadow" },
      formatter: ps => { const p = ps.find(x => x.seriesIndex === 1); return `${p.name}: ${p.value.toFixed(1)} ${t(minutes ? "minutes" : "seconds")}`; } },
    grid: { left: 60, right: 20, top: 35, bottom: 90 },
    xAxis: { type: "category", data: labels, axisLabel: { interval: 0, rotate: 30 } },
    yAxis: { type: "value", name: t(minutes ? "minutes" : "seconds") },
    series: [
      { type: "bar", stack: "w", data: base, itemStyle: { color: "transparent" }, emphasis: { disabled: true } },
      { type: "bar", stack: "w", data: size.map((v, i) => ({ value: v, itemStyle: { color: colors[i] } })),
        label: { show: true, position: "top", formatter: p => p.value.toFixed(1) } },
    ],
  };
}

// OEE and its three parts per bucket (/api/v1/trend).
export function trendOption(doc) {
  const label = b => (doc.granularity === "1h" ? localTime(b.start).slice(0, 5)
    : doc.granularity === "day" ? b.label : `${b.label} ${new Date(b.start).toLocaleDateString()}`);
  const pc = v => (v === null ? null : +(100 * v).toFixed(1));
  const line = key => ({ type: "line", name: t(key), data: doc.buckets.map(b => pc(b[key])) });
  return {
    tooltip: { trigger: "axis", valueFormatter: v => (v === null ? "—" : v + " %") },
    legend: { top: 0 },
    grid: { left: 50, right: 20, top: 35, bottom: 30 },
    xAxis: { type: "category", data: doc.buckets.map(label) },
    yAxis: { type: "value", min: 0, max: v => Math.max(100, Math.ceil(v.max)), axisLabel: { formatter: "{value} %" } },
    series: [{ type: "bar", name: t("oee"), data: doc.buckets.map(b => pc(b.oee)), itemStyle: { color: "#2c3e50" } },
      line("availability"), line("performance"), line("quality")],
  };
}

// Measured rates of each enterprise, the cluster's, and the published figures beside them.
export function compareOption(doc) {
  const m = doc.metric;
  const rows = [
    ...doc.enterprises.map(e => ({ name: e.name, v: e[m], color: "#2980b9" })),
    { name: t("pooled"), v: doc.pooled, color: "#2c3e50" },
    { name: t("mean_of_enterprises"), v: doc.mean_of_enterprise_rates, color: "#7f8c8d" },
    ...doc.published.map(p => ({ name: `${p.region} ${p.as_of}`, v: p.value_percent / 100, color: "#d4a017" })),
  ];
  return {
    tooltip: { trigger: "axis", axisPointer: { type: "shadow" }, valueFormatter: v => (v === null ? "—" : v + " %") },
    grid: { left: 150, right: 40, top: 10, bottom: 30 },
    xAxis: { type: "value", min: 0, max: 100, axisLabel: { formatter: "{value} %" } },
    yAxis: { type: "category", data: rows.map(r => r.name), inverse: true },
    series: [{ type: "bar", data: rows.map(r => ({ value: r.v === null ? null : +(100 * r.v).toFixed(1), itemStyle: { color: r.color } })),
      label: { show: true, position: "right", formatter: p => (p.value === null ? "—" : p.value + " %") } }],
  };
}

// Pareto of stop time by reason (/api/v1/pareto): bars largest first, "unclassified"
// last in grey, and the cumulative share as a line.
export function paretoOption(doc, name) {
  const rows = [...doc.reasons.map(r => ({ label: name(r), v: r.seconds, color: "#c0392b" })),
    ...(doc.unclassified.seconds > 0 ? [{ label: t("unclassified"), v: doc.unclassified.seconds, color: "#95a5a6" }] : [])];
  const total = rows.reduce((a, r) => a + r.v, 0);
  let run = 0;
  const cumulative = rows.map(r => { run += r.v; return total ? +(100 * run / total).toFixed(1) : 0; });
  return {
    tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
    grid: { left: 50, right: 50, top: 20, bottom: 70 },
    xAxis: { type: "category", data: rows.map(r => r.label), axisLabel: { interval: 0, rotate: 30 } },
    yAxis: [{ type: "value", name: t("seconds") }, { type: "value", min: 0, max: 100, axisLabel: { formatter: "{value} %" } }],
    series: [
      { type: "bar", data: rows.map(r => ({ value: +r.v.toFixed(1), itemStyle: { color: r.color } })) },
      { type: "line", yAxisIndex: 1, data: cumulative, itemStyle: { color: "#2c3e50" } },
    ],
  };
}
