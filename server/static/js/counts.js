// The operator view's count entry (a tablet at the line): pick the machine and what was
// counted (rejects found at inspection, or parts made), the quantity with big -/+ keys,
// optionally when and a comment; then this shift's entries (change, delete) and every
// change to them (the audit trail).
import * as api from "./api.js";
import { t } from "./i18n.js";
import { esc, localTime } from "./format.js";

const KINDS = ["reject", "total"];
const HOUR_MS = 3600 * 1000;

export function html() {
  return `<div class="card counts" data-testid="counts"><h2 data-i18n="counts_title">${t("counts_title")}</h2>
    <div class="count-form">
      <div class="choices" data-testid="count-machine"></div>
      <div class="choices" data-testid="count-kind">${KINDS.map(k =>
        `<button type="button" data-kind="${k}" aria-pressed="${k === "reject"}">${t("count_" + k)}</button>`).join("")}</div>
      <div class="choices qty"><button type="button" data-step="-1" aria-label="-1">−</button>
        <input type="number" inputmode="numeric" min="1" step="1" data-testid="count-qty" aria-label="${esc(t("quantity"))}" placeholder="${esc(t("quantity"))}">
        <button type="button" data-step="1" aria-label="+1">+</button></div>
      <div class="choices"><label><span>${t("count_at")}</span>
        <input type="datetime-local" step="1" data-testid="count-at"></label>
        <input type="text" maxlength="2000" data-testid="count-comment" placeholder="${esc(t("count_comment"))}"></div>
      <div class="choices"><button type="button" class="save" data-testid="count-save">${t("save")}</button></div></div>
    <div class="grid2">
      <div><h2>${t("count_entries")}</h2><table class="small" data-testid="count-entries"><thead><tr>
        <th>${t("at")}</th><th>${t("equipment")}</th><th>${t("kind")}</th><th>${t("quantity")}</th>
        <th>${t("comment")}</th><th>${t("who")}</th><th></th></tr></thead><tbody></tbody></table></div>
      <div><h2>${t("count_audit")}</h2><table class="small" data-testid="count-audit"><thead><tr>
        <th>${t("at")}</th><th>${t("who")}</th><th>${t("equipment")}</th><th>${t("change")}</th></tr></thead>
        <tbody></tbody></table></div></div></div>`;
}

// Wire the card inside ``section`` for the machines ``names`` (id -> name) of a line;
// ``act(call)`` runs a write and refreshes the view. Returns { draw(win) }.
export function wire(section, names, act) {
  const q = k => section.querySelector(`[data-testid="${k}"]`);
  const ids = [...names.keys()];
  let machine = ids[0], kind = "reject", shown = "";
  const name = id => names.get(id) || id;
  q("count-machine").innerHTML = ids.map(id => `<button type="button" data-machine="${esc(id)}"
    aria-pressed="${id === machine}">${esc(name(id))}</button>`).join("");
  const press = (group, attr, value) => q(group).querySelectorAll(`[data-${attr}]`).forEach(b => {
    b.setAttribute("aria-pressed", String(b.dataset[attr] === value)); });
  q("count-machine").querySelectorAll("[data-machine]").forEach(b => b.addEventListener("click", () => {
    machine = b.dataset.machine; press("count-machine", "machine", machine); }));
  q("count-kind").querySelectorAll("[data-kind]").forEach(b => b.addEventListener("click", () => {
    kind = b.dataset.kind; press("count-kind", "kind", kind); }));
  const qty = q("count-qty");
  section.querySelectorAll(".qty [data-step]").forEach(b => b.addEventListener("click", () => {
    qty.value = String(Math.max(1, (parseInt(qty.value, 10) || 0) + Number(b.dataset.step))); }));
  q("count-save").addEventListener("click", () => {
    const body = { machine, kind, quantity: Number(qty.value) };
    const at = q("count-at").value, comment = q("count-comment").value.trim();
    if (at) body.at = new Date(at).toISOString();
    if (comment) body.comment = comment;
    act(async () => {
      await api.send("POST", "counts", body);
      qty.value = ""; q("count-comment").value = ""; q("count-at").value = "";
    });
  });

  const what = c => {
    const v = c.new ?? c.old;
    const label = x => `${x.quantity} ${t("count_" + x.kind)}`;
    if (c.action === "add") return `${t("action_add")}: ${esc(label(v))}`;
    if (c.action === "delete") return `${t("action_delete")}: ${esc(label(v))}`;
    return `${esc(label(c.old))} → ${esc(label(c.new))}${c.new.comment !== c.old.comment ? ` (${esc(c.new.comment ?? "")})` : ""}`;
  };

  function drawEntries(entries) {
    const body = q("count-entries").querySelector("tbody");
    body.innerHTML = entries.length ? [...entries].reverse().map(e => `<tr data-entry="${e.id}" data-kind="${e.kind}">
      <td>${localTime(e.at)}</td><td>${esc(name(e.machine))}</td><td>${t("count_" + e.kind)}</td>
      <td data-testid="count-quantity">${e.quantity}</td><td>${esc(e.comment ?? "")}</td><td>${esc(e.updated_by)}</td>
      <td><button type="button" data-act="edit">${t("edit")}</button> <button type="button" data-act="delete">${t("delete")}</button></td></tr>`).join("")
      : `<tr><td class="muted">${t("no_counts")}</td></tr>`;
    body.querySelectorAll("tr[data-entry]").forEach(tr => {
      const id = tr.dataset.entry, entry = entries.find(e => String(e.id) === id);
      tr.querySelector("[data-act=edit]").addEventListener("click", () => {
        const n = prompt(t("count_edit_prompt"), String(entry.quantity));
        if (n !== null) act(() => api.send("PATCH", `counts/${id}`, { quantity: Number(n) }));
      });
      tr.querySelector("[data-act=delete]").addEventListener("click", () => {
        if (confirm(t("count_delete_confirm"))) act(() => api.send("DELETE", `counts/${id}`));
      });
    });
  }

  return {
    async draw(win) {
      // the server clips the end to its own clock: an entry made just now is listed
      const span = { ...win, end: new Date(Date.now() + HOUR_MS).toISOString() };
      const [counts, audit] = await Promise.all([api.get("counts", span), api.get("counts/audit", span)]);
      const key = JSON.stringify([counts.entries, audit.changes]);
      if (key === shown) return;  // do not move buttons under a finger
      shown = key;
      drawEntries(counts.entries);
      q("count-audit").querySelector("tbody").innerHTML = audit.changes.slice(0, 50).map(c => `<tr data-action="${c.action}">
        <td>${localTime(c.at)}</td><td>${esc(c.who)}</td><td>${esc(name(c.machine))}</td><td>${what(c)}</td></tr>`).join("");
    },
  };
}
