// Number formatting and small DOM helpers shared by the views.
import { t } from "./i18n.js";

export const STATE_COLORS = {
  PRODUCING: "#2e8b57", IDLE: "#d4a017", DOWN: "#c0392b", SETUP: "#2980b9",
  PLANNED_STOP: "#7f8c8d", NO_SHIFT: "#bdc3c7", OFFLINE: "#34495e",
};

// A ratio as a percentage with one decimal; "—" when the API says null (no denominator).
export const pct = v => (v === null || v === undefined ? "—" : (100 * v).toFixed(1) + " %");
export const count = v => (v === null || v === undefined ? "—" : Math.round(v).toLocaleString("en-US"));
export const secs = v => (v === null || v === undefined ? "—" : v.toFixed(1));

export const esc = s => String(s).replace(/[&<>"']/g, c => (
  { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

// A machine's live state; data-since is the time of the state sample it shows.
export function badge(doc, id) {
  const s = doc?.state || "OFFLINE";
  return `<span class="badge" style="background:${STATE_COLORS[s] || STATE_COLORS.OFFLINE}"
    data-testid="state-${esc(id)}" data-state="${esc(s)}" data-since="${esc(doc?.since ?? "")}">${esc(t("state_" + s))}</span>`;
}

// KPI cells for one /oee document: data-testid="<kpi>-<id>" so tests can read them.
export function kpis(doc, id) {
  const cell = (k, v) => `<td data-testid="${k}-${esc(id)}">${v}</td>`;
  return cell("oee", `<b>${pct(doc.oee)}</b>`) + cell("availability", pct(doc.availability)) +
    cell("performance", pct(doc.performance)) + cell("quality", pct(doc.quality)) +
    cell("total", count(doc.counts.total)) + cell("reject", count(doc.counts.reject));
}

export const kpiHeader = () => ["oee", "availability", "performance", "quality", "parts", "rejects"]
  .map(k => `<th data-i18n="${k}">${esc(t(k))}</th>`).join("");

export const localTime = iso => new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
