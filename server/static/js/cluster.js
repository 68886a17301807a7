// Cluster view: enterprises compared on the digitalization indicators and on OEE,
// beside the published regional and national figures (/api/v1/compare).
import * as api from "./api.js";
import { t } from "./i18n.js";
import { chart, compareOption } from "./charts.js";
import { esc, pct } from "./format.js";

export const METRICS = ["equipment_digitalization_rate", "networking_rate", "key_process_nc_rate", "oee"];

function table(doc) {
  const m = doc.metric;
  const cell = (key, v) => `<td data-testid="cmp-${m}-${esc(key)}">${pct(v)}</td>`;
  const ents = doc.enterprises.map(e => `<tr><td>${e.rank ?? "—"}</td><td>${esc(e.name)}</td>${cell(e.id, e[m])}</tr>`);
  const pub = doc.published.map((p, i) => `<tr class="published"><td></td>
    <td>${esc(p.region)} · ${esc(p.scope)} · ${esc(p.as_of)}<div class="muted">${esc(p.source)}${p.note ? " (" + esc(p.note) + ")" : ""}</div></td>
    <td data-testid="pub-${m}-${i}">${p.value_percent.toFixed(1)} %</td></tr>`);
  return `<table class="small compare"><thead><tr><th data-i18n="rank">${t("rank")}</th><th data-i18n="enterprise">${t("enterprise")}</th>
    <th data-i18n="measured">${t("measured")}</th></tr></thead><tbody>${ents.join("")}
    <tr class="total"><td></td><td data-i18n="pooled">${t("pooled")}</td>${cell("pooled", doc.pooled)}</tr>
    <tr class="total"><td></td><td data-i18n="mean_of_enterprises">${t("mean_of_enterprises")}</td>${cell("mean", doc.mean_of_enterprise_rates)}</tr>
    ${pub.length ? `<tr><th colspan="3" data-i18n="published">${t("published")}</th></tr>${pub.join("")}`
    : `<tr><td colspan="3" class="muted" data-i18n="none_published">${t("none_published")}</td></tr>`}</tbody></table>`;
}

export function show(el, ctx) {
  el.innerHTML = `<section data-testid="view-cluster"><div class="bar"><h1 data-i18n="cluster_title">${t("cluster_title")}</h1>
    <span class="muted">${esc(ctx.tree.name)}</span></div>
    <div class="grid2">${METRICS.map(m => `<div class="card" data-testid="compare-${m}">
      <h2 data-i18n="metric_${m}">${t("metric_" + m)}</h2><div class="chart"></div><div class="table"></div></div>`).join("")}</div></section>`;
  const section = el.firstElementChild;
  const charts = {};
  return {
    async update() {
      const win = ctx.window("shift");
      const docs = await Promise.all(METRICS.map(metric => api.get("compare",
        { scope: ctx.tree.id, metric, ...(metric === "oee" ? win : {}) })));
      section.dataset.start = win.start;
      section.dataset.end = win.end;
      docs.forEach(doc => {
        const card = section.querySelector(`[data-testid="compare-${doc.metric}"]`);
        card.querySelector(".table").innerHTML = table(doc);
        const option = compareOption(doc);
        const box = card.querySelector(".chart");
        box.style.height = `${60 + 28 * option.yAxis.data.length}px`;
        if (charts[doc.metric]) { charts[doc.metric].resize(); charts[doc.metric].setOption(option); }
        else charts[doc.metric] = chart(box, option);
      });
    },
  };
}
