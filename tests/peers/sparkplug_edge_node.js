// A Sparkplug B edge node built on Eclipse Tahu's edge node client (sparkplug-client),
// independent of shopfloor's Python code. It publishes NBIRTH, then a DBIRTH per device
// (the script's birth metrics: names, aliases, datatypes, properties), then the script's
// DDATA messages (metrics by alias, with their own timestamps), and answers an NCMD
// Node Control/Rebirth with its births again. One JSON line per event on stdout.
//
//   node sparkplug_edge_node.js mqtt://127.0.0.1:PORT GROUP NODE SCRIPT.json
// SCRIPT: {"devices": {"ID": [metric, ...]}, "data": [{"device", "timestamp", "metrics"}]}
// stdin: "quit" (an NDEATH, then disconnect).
"use strict";
const sparkplug = require("sparkplug-client");
const fs = require("fs");
const readline = require("readline");

const [url, groupId, edgeNode, scriptPath] = process.argv.slice(2);
const script = JSON.parse(fs.readFileSync(scriptPath, "utf8"));
const out = (doc) => process.stdout.write(JSON.stringify(doc) + "\n");
const client = sparkplug.newClient({
  serverUrl: url, username: null, password: null, groupId, edgeNode,
  clientId: `${groupId}-${edgeNode}`, version: "spBv1.0", publishDeath: true,
});

function births() {
  const now = Date.now();
  client.publishNodeBirth({ timestamp: now, metrics: [
    { name: "Node Control/Rebirth", type: "Boolean", value: false, timestamp: now }] });
  for (const [device, metrics] of Object.entries(script.devices)) {
    client.publishDeviceBirth(device, { timestamp: now, metrics });
  }
}

let sent = false;
client.on("birth", () => {
  births();
  out({ type: "births" });
  if (sent) return;
  sent = true;
  for (const msg of script.data) {
    client.publishDeviceData(msg.device, { timestamp: msg.timestamp, metrics: msg.metrics });
  }
  out({ type: "sent", messages: script.data.length });
});
client.on("ncmd", (payload) => {
  const asks = (payload.metrics || []).some((m) => m.name === "Node Control/Rebirth" && m.value);
  if (asks) {
    births();
    out({ type: "rebirth" });
  }
});
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.trim() === "quit") {
    client.stop();
    setTimeout(() => process.exit(0), 200);
  }
});
