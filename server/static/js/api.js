// The REST API and its live stream. Anonymous reads work in the demo; a server that
// needs a token gets one from ?token=... or a prompt, kept in localStorage.
import { t } from "./i18n.js";

const TOKEN_KEY = "shopfloor.token";
const fromUrl = new URLSearchParams(location.search).get("token");
if (fromUrl) localStorage.setItem(TOKEN_KEY, fromUrl);

function headers() {
  const token = localStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

function askForToken() {
  const token = prompt(t("token_prompt"));
  if (!token) return false;
  localStorage.setItem(TOKEN_KEY, token.trim());
  return true;
}

// Ask for a token and keep it (the operator view's "sign in").
export function signIn() {
  const token = prompt(t("sign_in_prompt"));
  if (token) localStorage.setItem(TOKEN_KEY, token.trim());
}

// POST/PUT/PATCH a JSON body (or DELETE) to /api/v1/<path>; the answer's JSON (null for
// 204); throws an Error carrying the API's message.
export async function send(method, path, body) {
  const r = await fetch(`/api/v1/${path}`, { method,
    body: body === undefined ? undefined : JSON.stringify(body),
    headers: { "Content-Type": "application/json", ...headers() } });
  if (!r.ok) {
    const doc = await r.json().catch(() => ({}));
    throw new Error(`${path}: ${r.status} ${JSON.stringify(doc.detail ?? "")}`);
  }
  return r.status === 204 ? null : r.json();
}

export function url(path, params = {}) {
  return `/api/v1/${path}?${new URLSearchParams(params)}`;
}

// GET /api/v1/<path>?params as JSON; throws an Error carrying the API's message.
export async function get(path, params = {}) {
  let r = await fetch(url(path, params), { headers: headers() });
  if (r.status === 401 && askForToken()) r = await fetch(url(path, params), { headers: headers() });
  if (!r.ok) {
    const body = await r.json().catch(() => ({}));
    const err = new Error(`${path}: ${r.status} ${JSON.stringify(body.detail ?? "")}`);
    err.status = r.status;
    throw err;
  }
  return r.json();
}

// Server-Sent Events over fetch (EventSource cannot send a token); reconnects on loss.
// onEvent(kind, data) for each event, onStatus(true|false) when connected or not.
export async function stream(scope, onEvent, onStatus, signal) {
  const sleep = ms => new Promise(res => setTimeout(res, ms));
  while (!signal.aborted) {
    try {
      const r = await fetch(url("stream", { scope, interval_s: 0.5 }), { headers: headers(), signal });
      if (!r.ok) throw new Error(`stream: ${r.status}`);
      onStatus(true);
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let end;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const field = name => block.split("\n").find(l => l.startsWith(name + ": "))?.slice(name.length + 2);
          const kind = field("event"), data = field("data");
          if (kind && data) onEvent(kind, JSON.parse(data));
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      console.warn("stream interrupted:", e.message);
    }
    onStatus(false);
    await sleep(1000);
  }
}
