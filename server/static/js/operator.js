// Operator view (a tablet at the line): this shift's stops, one tap on a stop and one on
// its reason; comment and split; counts entered by hand (counts.js); the Pareto of losses
// by reason with the unclassified stop time; the audit trail; the line's alerts.
import * as api from "./api.js";
import { getLang, t } from "./i18n.js";
import { chart, paretoOption } from "./charts.js";
import * as counts from "./counts.js";
import { esc, localTime, pct, secs, STATE_COLORS } from "./format.js";

const reasonName = (tree, code) => {
  const r = tree.get(code);
  return r ? (r.name[getLang()] || r.name.en) : code;
};

function flat(nodes, out = new Map()) {
  for (const n of nodes) { out.set(n.code, n); flat(n.children, out); }
  return out;
}

export function show(el, ctx, id) {
  const lines = ctx.lines();
  const line = ctx.find(id)?.level === "line" ? ctx.find(id) : lines[0]?.line;
  if (!line) { el.innerHTML = `<p class="muted">—</p>`; return {}; }
  const names = new Map(ctx.equipmentUnder(line).map(m => [m.id, m.name]));
  el.innerHTML = `<section data-testid="view-operator" data-scope="${esc(line.id)}">
    <div class="bar"><h1 data-i18n="operator_title">${t("operator_title")}</h1>
      <select data-testid="line">${lines.map(l => `<option value="${esc(l.line.id)}" ${l.line.id === line.id ? "selected" : ""}>${esc(l.path)} / ${esc(l.line.name)}</option>`).join("")}</select>
      <label><input type="checkbox" data-testid="all-stops"> <span data-i18n="show_all_stops">${t("show_all_stops")}</span></label>
      <span class="right muted" data-testid="whoami"></span>
      <button type="button" data-testid="sign-in" data-i18n="sign_in">${t("sign_in")}</button></div>
    <div class="cards">
      <div class="kpi"><div class="label" data-i18n="unclassified_loss">${t("unclassified_loss")}</div>
        <div class="value" data-testid="unclassified-s">—</div></div>
      <div class="kpi"><div class="label" data-i18n="classified_share">${t("classified_share")}</div>
        <div class="value" data-testid="classified-share">—</div></div></div>
    <div class="card"><div class="stops" data-testid="stops"></div></div>
    ${counts.html()}
    <div class="grid2">
      <div class="card"><h2 data-i18n="pareto">${t("pareto")}</h2><div class="chart" data-testid="pareto-chart"></div>
        <table class="small" data-testid="pareto"><thead><tr><th data-i18n="reason">${t("reason")}</th>
          <th data-i18n="stops_count">${t("stops_count")}</th><th>${t("seconds")}</th></tr></thead><tbody></tbody></table></div>
      <div class="card"><h2 data-i18n="audit">${t("audit")}</h2>
        <table class="small" data-testid="audit"><thead><tr><th data-i18n="at">${t("at")}</th><th data-i18n="who">${t("who")}</th>
          <th data-i18n="equipment">${t("equipment")}</th><th data-i18n="change">${t("change")}</th></tr></thead><tbody></tbody></table></div></div>
    <div class="card"><h2 data-i18n="alerts">${t("alerts")}</h2><table class="small" data-testid="alerts"><tbody></tbody></table></div>
    <div class="sheet" data-testid="sheet" hidden></div></section>`;
  const section = el.firstElementChild;
  const q = k => section.querySelector(`[data-testid="${k}"]`);
  const sheet = q("sheet");
  let tree = new Map(), roots = [], shown = "", paretoChart = null;
  const enterprise = line.id.split("/")[0];

  q("line").addEventListener("change", e => { location.hash = `#/operator/${e.target.value}`; });
  q("all-stops").addEventListener("change", () => { shown = ""; ctx.refresh(); });
  q("sign-in").addEventListener("click", () => { api.signIn(); ctx.refresh(); });
  const countCard = counts.wire(section, names, call => act(call));

  async function act(call) {
    try { await call(); } catch (e) { document.getElementById("error").textContent = `${t("error")}: ${e.message}`; }
    sheet.hidden = true;
    shown = "";
    await ctx.refresh();
  }

  function openSheet(stop) {
    const ref = { machine: stop.machine, stop_start: stop.stop_start, segment_start: stop.segment_start };
    const button = r => `<button type="button" class="reason-btn" data-reason="${esc(r.code)}">${esc(reasonName(tree, r.code))}</button>`;
    sheet.innerHTML = `<div class="panel"><h2>${t("pick_reason")}: ${esc(names.get(stop.machine) || stop.machine)},
      ${esc(t("state_" + stop.state))} ${localTime(stop.start)} (${secs(stop.duration_s)} ${t("seconds")})</h2>
      ${roots.map(r => `<h3>${esc(reasonName(tree, r.code))}</h3><div class="choices">${
        (r.children.length ? r.children : [r]).map(button).join("")}</div>`).join("")}
      <div class="actions"><button type="button" data-act="comment">${t("comment")}</button>
        <button type="button" data-act="split">${t("split")}</button>
        <button type="button" data-act="cancel">${t("cancel")}</button></div></div>`;
    sheet.hidden = false;
    sheet.querySelectorAll("[data-reason]").forEach(b => b.addEventListener("click", () =>
      act(() => api.send("POST", "stops/reason", { ...ref, reason: b.dataset.reason }))));
    sheet.querySelector("[data-act=cancel]").addEventListener("click", () => { sheet.hidden = true; });
    sheet.querySelector("[data-act=comment]").addEventListener("click", () => {
      const comment = prompt(t("comment_prompt"), stop.comment || "");
      if (comment !== null) act(() => api.send("POST", "stops/comment", { ...ref, comment }));
    });
    sheet.querySelector("[data-act=split]").addEventListener("click", () => {
      const after = Number(prompt(t("split_prompt"), (stop.duration_s / 2).toFixed(0)));
      if (after > 0) act(() => api.send("POST", "stops/split", { machine: stop.machine, stop_start: stop.stop_start,
        at: new Date(Date.parse(stop.start) + after * 1000).toISOString() }));
    });
  }

  function drawStops(stops) {
    const all = q("all-stops").checked;
    const list = stops.filter(s => all || s.reason === null).reverse();  // newest first
    const key = JSON.stringify([getLang(), list]);
    if (key === shown || !sheet.hidden) return;  // do not move targets under a finger
    shown = key;
    q("stops").innerHTML = list.length ? list.map((s, i) => `<button type="button"
        class="stop ${s.reason ? "" : "unclassified"}" data-i="${i}" data-machine="${esc(s.machine)}"
        data-stop-start="${esc(s.stop_start)}" data-segment-start="${esc(s.segment_start)}" data-duration="${s.duration_s}">
        <b>${esc(names.get(s.machine) || s.machine)}</b>
        <span class="badge" style="background:${STATE_COLORS[s.state]}">${esc(t("state_" + s.state))}</span><br>
        ${localTime(s.start)} · ${secs(s.duration_s)} ${t("seconds")}
        <span class="reason">${s.reason ? esc(reasonName(tree, s.reason)) + (s.source === "machine" ? ` (${t("from_machine")})` : "")
          : t("unclassified")}</span>${s.comment ? `<span class="muted">${esc(s.comment)}</span>` : ""}</button>`).join("")
      : `<p class="muted">${t("no_stops")}</p>`;
    q("stops").querySelectorAll("button.stop").forEach(b => b.addEventListener("click", () => openSheet(list[+b.dataset.i])));
  }

  function drawPareto(doc) {
    q("unclassified-s").textContent = `${secs(doc.unclassified.seconds)} ${t("seconds")}`;
    q("classified-share").textContent = pct(doc.classified_share);
    q("pareto").querySelector("tbody").innerHTML = doc.reasons.map(r => `<tr data-testid="pareto-${esc(r.reason)}">
      <td>${esc(reasonName(tree, r.reason))}</td><td>${r.count}</td><td>${secs(r.seconds)}</td></tr>`).join("") +
      `<tr data-testid="pareto-unclassified"><td>${t("unclassified")}</td><td>${doc.unclassified.count}</td>
      <td>${secs(doc.unclassified.seconds)}</td></tr>`;
    const option = paretoOption(doc, r => reasonName(tree, r.reason));
    if (paretoChart) paretoChart.setOption(option, true); else paretoChart = chart(q("pareto-chart"), option);
  }

  function drawAudit(changes) {
    const what = c => c.action === "split" ? `${t("split")} ${localTime(new Date(Number(BigInt(c.new) / 1000000n)))}`
      : c.action === "comment" ? `${t("comment")}: ${esc(c.new ?? "")}`
      : `${esc(c.old ? reasonName(tree, c.old) : "—")} → ${esc(c.new ? reasonName(tree, c.new) : "—")}`;
    q("audit").querySelector("tbody").innerHTML = changes.slice(0, 50).map(c => `<tr>
      <td>${localTime(c.at)}</td><td>${esc(c.who)}</td><td>${esc(names.get(c.machine) || c.machine)}</td>
      <td>${what(c)}</td></tr>`).join("");
  }

  function drawAlerts(alerts) {
    q("alerts").querySelector("tbody").innerHTML = alerts.length ? alerts.map(a => `<tr data-status="${a.status}">
      <td>${localTime(a.opened_at)}</td><td>${esc(a.rule ?? "")}</td><td>${esc(a.message)}</td>
      <td>${t(a.status === "open" ? "alert_open" : "alert_resolved")}</td></tr>`).join("")
      : `<tr><td class="muted">${t("no_alerts")}</td></tr>`;
  }

  return {
    async update() {
      const win = { scope: line.id, ...ctx.window("shift") };
      const [who, reasons, stops, pareto, audit, alerts] = await Promise.all([
        api.get("whoami"), tree.size ? null : api.get("reasons", { enterprise }),
        api.get("stops", win), api.get("pareto", win), api.get("stops/audit", win),
        api.get("alerts", { scope: line.id, limit: 20 }), countCard.draw(win)]);
      if (reasons) { roots = reasons.reasons; tree = flat(roots); }
      const whoEl = q("whoami");
      whoEl.dataset.role = who.role;
      whoEl.textContent = who.role === "viewer" && who.name === "anonymous" ? t("anonymous")
        : `${who.name} (${t("role_" + who.role)})`;
      drawStops(stops.stops);
      drawPareto(pareto);
      drawAudit(audit.changes);
      drawAlerts(alerts);
    },
  };
}
