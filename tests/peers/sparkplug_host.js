// A Sparkplug B host application built on Eclipse Tahu's payload codec (sparkplug-payload)
// and MQTT.js, independent of shopfloor's Python code: it reads every edge node's births,
// keeps their aliases, resolves NDATA/DDATA metrics by alias, and prints one JSON line per
// message on stdout. With a host id it is a primary host: STATE (Sparkplug 3.0 JSON)
// online, retained, after subscribing, its death (same timestamp) as the MQTT will.
//
//   node sparkplug_host.js mqtt://127.0.0.1:PORT [HOST_ID]
// stdin: "rebirth GROUP NODE" (an NCMD Node Control/Rebirth), "offline", "online", "quit".
"use strict";
const mqtt = require("mqtt");
const sparkplug = require("sparkplug-payload").get("spBv1.0");
const readline = require("readline");

const [url, hostId] = process.argv.slice(2);
const stateTopic = hostId ? `spBv1.0/STATE/${hostId}` : null;
let stateTs = Date.now();
const state = (online) => JSON.stringify({ online, timestamp: stateTs });
const options = { clean: true, keepalive: 5, reconnectPeriod: 500 };
if (stateTopic) options.will = { topic: stateTopic, payload: state(false), qos: 1, retain: true };
const client = mqtt.connect(url, options);
const births = new Map(); // "group/node" -> Map(alias -> {device, name, type})

const out = (doc) => process.stdout.write(JSON.stringify(doc) + "\n");
const num = (v) => (v !== null && typeof v === "object" && typeof v.toNumber === "function"
  ? v.toNumber() : v);
const prop = (m, key) => (m.properties && m.properties[key] ? num(m.properties[key].value) : null);
const metric = (m, name) => ({
  name, alias: num(m.alias), type: m.type, value: num(m.value), timestamp: num(m.timestamp),
  historical: !!m.isHistorical, quality: prop(m, "Quality"), unit: prop(m, "engUnit"),
});

client.on("connect", () => {
  client.subscribe("spBv1.0/+/+/#", { qos: 1 }, () => {
    if (stateTopic) client.publish(stateTopic, state(true), { qos: 1, retain: true });
    out({ type: "ready" });
  });
});

client.on("message", (topic, message) => {
  const [, group, type, node, device] = topic.split("/");
  if (group === "STATE") return;
  let p;
  try {
    p = sparkplug.decodePayload(message);
  } catch (err) {
    out({ type: "undecodable", topic });
    return;
  }
  const key = `${group}/${node}`;
  const doc = { type, group, node, device: device || null, seq: num(p.seq),
                timestamp: num(p.timestamp) };
  const metrics = p.metrics || [];
  if (type === "NBIRTH") births.set(key, new Map());
  if (type === "NBIRTH" || type === "DBIRTH") {
    const table = births.get(key);
    if (table) {
      for (const m of metrics) {
        if (m.alias !== undefined) table.set(num(m.alias), { device: device || null,
                                                              name: m.name, type: m.type });
      }
    }
    doc.metrics = metrics.map((m) => metric(m, m.name));
  } else if (type === "NDATA" || type === "DDATA") {
    const table = births.get(key);
    doc.metrics = metrics.map((m) => {
      const def = m.name ? { name: m.name } : table && table.get(num(m.alias));
      if (!def || (def.device !== undefined && def.device !== (device || null))) {
        doc.unknown_alias = true;
        return metric(m, null);
      }
      return metric(m, def.name);
    });
  } else if (type === "NDEATH") {
    const bd = metrics.find((m) => m.name === "bdSeq");
    doc.bdSeq = bd ? num(bd.value) : null;
    births.delete(key);
  } else if (type !== "DDEATH") {
    return; // commands
  }
  if (type === "NBIRTH") {
    const bd = metrics.find((m) => m.name === "bdSeq");
    doc.bdSeq = bd ? num(bd.value) : null;
  }
  out(doc);
});

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const [cmd, group, node] = line.trim().split(/\s+/);
  if (cmd === "rebirth") {
    const payload = sparkplug.encodePayload({ timestamp: Date.now(), metrics: [
      { name: "Node Control/Rebirth", type: "Boolean", value: true }] });
    client.publish(`spBv1.0/${group}/NCMD/${node}`, Buffer.from(payload), { qos: 0 });
  } else if ((cmd === "offline" || cmd === "online") && stateTopic) {
    if (cmd === "online") stateTs = Date.now();
    client.publish(stateTopic, state(cmd === "online"), { qos: 1, retain: true });
  } else if (cmd === "quit") {
    client.end(false, () => process.exit(0));
  }
}).on("close", () => client.end(false, () => process.exit(0)));
