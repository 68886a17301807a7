// An independent OPC UA server for the edge tests (node-opcua, not asyncua).
//
//   node opcua_server.js --port P [--pki DIR] [--secure-only] [--extra-namespace]
//                        [--vars JSON]
//
// Variables live under Objects/Machine in namespace "urn:peer:machine", node ids
// "s=Machine.<name>". --vars is a list of {"name", "type", "value", "array"} (type: a
// node-opcua DataType name; "LocalizedText" takes {"locale","text"}; "DateTime" an ISO
// string; 64-bit integers a decimal string). --extra-namespace registers another
// namespace first, so the machine's namespace index is 3 instead of 2 (a changed
// namespace table). --secure-only offers Basic256Sha256 SignAndEncrypt only and trusts
// no client certificate it has not been told to (its PKI is --pki).
//
// It prints @{"ready": port, "ns": index} on stdout, then reads JSON commands, one per
// line on stdin, and answers each with {"ok": id} (or {"error": ..., "id": id}):
//   {"id", "set": name, "value": v, "status": "Good"|"BadSomething"}
//   {"id", "count": name, "n": N, "period_ms": ms, "jitter_ms": ms}  -> adds 1 N times,
//       each period_ms + a random 0..jitter_ms after the last, then answers {"ok", "value"}
//   {"id", "remove": name}     {"id", "add": {var spec}}
const readline = require("readline");
const path = require("path");
const {
  OPCUAServer, OPCUACertificateManager, Variant, DataType, VariantArrayType, StatusCodes,
  MessageSecurityMode, SecurityPolicy, coerceLocalizedText,
} = require("node-opcua");

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const flag = (name) => process.argv.includes(name);
// our lines start with "@" (node-opcua prints lines of its own on stdout)
const out = (doc) => process.stdout.write("@" + JSON.stringify(doc) + "\n");

function scalar(type, value) {
  if (type === "LocalizedText") return coerceLocalizedText(value);
  if (type === "DateTime") return new Date(value);
  if (type === "UInt64" || type === "Int64") {
    const big = BigInt(value);  // node-opcua takes [high, low] 32-bit words
    const mask = (1n << 32n) - 1n;
    const u = big < 0n ? (1n << 64n) + big : big;
    return [Number((u >> 32n) & mask), Number(u & mask)];
  }
  return value;
}

function variant(spec, value) {
  const dataType = DataType[spec.type];
  if (spec.array) {
    return new Variant({ dataType, arrayType: VariantArrayType.Array,
                         value: value.map((x) => scalar(spec.type, x)) });
  }
  return new Variant({ dataType, arrayType: VariantArrayType.Scalar,
                       value: scalar(spec.type, value) });
}

function countUp(cmd, increment, value) {
  let left = cmd.n;
  const step = () => {
    increment();
    if (--left <= 0) {
      out({ ok: cmd.id, value: value() });
    } else {
      setTimeout(step, cmd.period_ms + Math.random() * (cmd.jitter_ms || 0));
    }
  };
  setTimeout(step, cmd.period_ms);
}

async function main() {
  const port = Number(arg("--port", "4840"));
  const pki = arg("--pki", path.join(process.cwd(), "pki"));
  const secureOnly = flag("--secure-only");
  const certificateManager = new OPCUACertificateManager({
    rootFolder: pki, automaticallyAcceptUnknownCertificate: !secureOnly });
  await certificateManager.initialize();
  const server = new OPCUAServer({
    port, hostname: "127.0.0.1", resourcePath: "/", serverCertificateManager: certificateManager,
    alternateHostname: ["127.0.0.1"],
    securityModes: secureOnly ? [MessageSecurityMode.SignAndEncrypt]
      : [MessageSecurityMode.None, MessageSecurityMode.SignAndEncrypt],
    securityPolicies: secureOnly ? [SecurityPolicy.Basic256Sha256]
      : [SecurityPolicy.None, SecurityPolicy.Basic256Sha256],
    allowAnonymous: true, disableDiscovery: true,
    buildInfo: { productName: "shopfloor-peer", buildNumber: "1" },
  });
  await server.initialize();
  const addressSpace = server.engine.addressSpace;
  if (flag("--extra-namespace")) addressSpace.registerNamespace("urn:peer:other");
  const ns = addressSpace.registerNamespace("urn:peer:machine");
  const machine = ns.addObject({ organizedBy: addressSpace.rootFolder.objects,
                                 browseName: "Machine", nodeId: "s=Machine" });
  const vars = new Map();

  function add(spec) {
    const v = ns.addVariable({
      componentOf: machine, browseName: spec.name, nodeId: `s=Machine.${spec.name}`,
      dataType: spec.type, valueRank: spec.array ? 1 : -1,
      accessLevel: "CurrentRead | CurrentWrite", userAccessLevel: "CurrentRead | CurrentWrite",
    });
    v.setValueFromSource(variant(spec, spec.value), StatusCodes.Good, new Date());
    vars.set(spec.name, { node: v, spec });
  }
  for (const spec of JSON.parse(arg("--vars", "[]"))) add(spec);

  function set(name, value, status) {
    const { node, spec } = vars.get(name);
    node.setValueFromSource(variant(spec, value), StatusCodes[status || "Good"], new Date());
  }

  await server.start();
  out({ ready: port, ns: ns.index });

  const rl = readline.createInterface({ input: process.stdin });
  rl.on("line", (line) => {
    let cmd;
    try {
      cmd = JSON.parse(line);
      if (cmd.set !== undefined) {
        set(cmd.set, cmd.value, cmd.status);
      } else if (cmd.count !== undefined) {
        countUp(cmd, () => set(cmd.count, vars.get(cmd.count).node.readValue().value.value + 1),
                () => vars.get(cmd.count).node.readValue().value.value);
        return;
      } else if (cmd.remove !== undefined) {
        addressSpace.deleteNode(vars.get(cmd.remove).node);
        vars.delete(cmd.remove);
      } else if (cmd.add !== undefined) {
        add(cmd.add);
      }
      out({ ok: cmd.id });
    } catch (err) {
      out({ error: String(err), id: cmd && cmd.id });
    }
  });
  rl.on("close", async () => {
    await server.shutdown(0);
    process.exit(0);
  });
  process.on("SIGTERM", async () => {
    await server.shutdown(0);
    process.exit(0);
  });
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack || err) + "\n");
  process.exit(1);
});
