// An independent Modbus TCP server for the edge tests (npm modbus-serial or jsmodbus).
//
//   node modbus_server.js --port P [--impl modbus-serial|jsmodbus] [--registers N]
//                         [--units 1,2,3] [--preset '{"1": [w, ...], ...}']
//
// Holding and input registers 0..N-1 (default 200) start at zero. --units (modbus-serial
// only: its ServerTCP hands the unit id to the vector; jsmodbus answers every unit id
// from one set of tables): several units behind one TCP port (a Modbus TCP gateway),
// each with its own tables; other unit ids get no answer. --preset: holding registers
// from 0 of each unit, set before listening (a PLC back from an outage keeps its values). modbus-serial answers
// exception 02 (illegal data address) for a read touching an address in "illegal";
// jsmodbus answers a read beyond N with no registers (byte count 0, not an exception). It prints @{"ready": port} on stdout, then reads
// JSON commands, one per line on stdin, and answers each with @{"ok": id}:
//   {"id", "write": address, "words": [w, ...], "table": "holding"|"input"}
//   {"id", "illegal": [address, ...]}    (modbus-serial only)
//   {"id", "count": address, "n": N, "period_ms": ms, "jitter_ms": ms}  the uint32 (ABCD)
//       at address += 1, N times, each period_ms + random 0..jitter_ms apart; answers
//       {"ok", "value"} after the last
//   {"id", "hang": true|false}    stop answering (connections stay open) / answer again
//   {"id", "silent": [unit, ...]}  those units get no answer (--units: a dead slave)
//   {"id", "connections": true}    answers {"ok", "value"}: TCP connections accepted
// "write" and "count" take "unit" with --units (default the first).
const net = require("net");
const readline = require("readline");

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const out = (doc) => process.stdout.write("@" + JSON.stringify(doc) + "\n");

const port = Number(arg("--port", "5020"));
const impl = arg("--impl", "modbus-serial");
const size = Number(arg("--registers", "200"));
const units = arg("--units", "1").split(",").map(Number);
const newTables = () => ({ holding: Buffer.alloc(size * 2), input: Buffer.alloc(size * 2) });
const byUnit = new Map(units.map((u) => [u, newTables()]));
const tables = byUnit.get(units[0]);
for (const [u, words] of Object.entries(JSON.parse(arg("--preset", "{}")))) {
  words.forEach((w, i) => byUnit.get(Number(u)).holding.writeUInt16BE(w, i * 2));
}
let illegal = new Set();
let silent = new Set();
let hung = false;
let accepted = 0;
const sockets = new Set();

function track(socket) {
  accepted += 1;
  sockets.add(socket);
  socket.on("close", () => sockets.delete(socket));
  if (hung) socket.pause();
}

function modbusSerial() {
  const ModbusRTU = require("modbus-serial");
  const reg = (table) => (addr, unitID, cb) => {
    if (!byUnit.has(unitID) || silent.has(unitID)) return; // no answer
    if (illegal.has(addr)) {
      cb({ modbusErrorCode: 0x02, msg: "Illegal data address" });
    } else {
      cb(null, byUnit.get(unitID)[table].readUInt16BE(addr * 2));
    }
  };
  const vector = {
    getHoldingRegister: reg("holding"), getInputRegister: reg("input"),
    getCoil: (addr, unitID, cb) => cb(null, false),
    getDiscreteInput: (addr, unitID, cb) => cb(null, false),
    setRegister: (addr, value, unitID, cb) => { tables.holding.writeUInt16BE(value, addr * 2); cb(); },
    setCoil: (addr, value, unitID, cb) => cb(),
  };
  const unitID = units.length > 1 ? 255 : units[0]; // 255: every unit id to the vector
  const server = new ModbusRTU.ServerTCP(vector, { host: "127.0.0.1", port, unitID });
  server._server.on("connection", track);
  server.on("initialized", () => out({ ready: port }));
  server.on("socketError", () => {});
}

function jsmodbus() {
  const modbus = require("jsmodbus");
  const netServer = new net.Server();
  netServer.on("connection", track);
  // eslint-disable-next-line no-new
  new modbus.server.TCP(netServer, { holding: tables.holding, input: tables.input,
                                     coils: Buffer.alloc(64), discrete: Buffer.alloc(64) });
  netServer.listen(port, "127.0.0.1", () => out({ ready: port }));
}

if (impl === "jsmodbus") jsmodbus(); else modbusSerial();

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const cmd = JSON.parse(line);
  const unit = byUnit.get(cmd.unit === undefined ? units[0] : cmd.unit);
  if (cmd.write !== undefined) {
    cmd.words.forEach((w, i) => unit[cmd.table || "holding"].writeUInt16BE(w, (cmd.write + i) * 2));
  } else if (cmd.illegal !== undefined) {
    illegal = new Set(cmd.illegal);
  } else if (cmd.count !== undefined) {
    let left = cmd.n;
    const step = () => {
      const v = unit.holding.readUInt32BE(cmd.count * 2) + 1;
      unit.holding.writeUInt32BE(v, cmd.count * 2);
      if (--left <= 0) out({ ok: cmd.id, value: v });
      else setTimeout(step, cmd.period_ms + Math.random() * (cmd.jitter_ms || 0));
    };
    setTimeout(step, cmd.period_ms);
    return;
  } else if (cmd.silent !== undefined) {
    silent = new Set(cmd.silent);
  } else if (cmd.connections !== undefined) {
    out({ ok: cmd.id, value: accepted });
    return;
  } else if (cmd.hang !== undefined) {
    hung = cmd.hang;
    for (const s of sockets) { if (hung) s.pause(); else s.resume(); }
  }
  out({ ok: cmd.id });
}).on("close", () => process.exit(0));
