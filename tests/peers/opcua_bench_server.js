// A load server for the edge benchmark (node-opcua, not asyncua): N Double variables,
// all changed every --change-ms.
//
//   node opcua_bench_server.js --port P --vars N --change-ms MS [--pki DIR]
//                              [--per-publish K]
//
// Variables are s=Bench.Var<i> (i = 0..N-1) under Objects/Bench/Group<i / 500> in namespace
// "urn:peer:bench". Every round sets each one to the round number (one Variant and one
// source timestamp shared by the round), then prints @{"written": total} on stdout; the
// next round starts change-ms after the last began (or at once, if a round took longer).
// --per-publish raises node-opcua's cap on notifications per PublishResponse (1,000 by
// default; the client's MaxNotificationsPerPublish still applies). It prints
// @{"ready": port, "ns": index} first and exits when stdin closes or on SIGTERM.
const path = require("path");
const {
  OPCUAServer, OPCUACertificateManager, Variant, DataType, StatusCodes, MessageSecurityMode,
  SecurityPolicy,
} = require("node-opcua");
const { Subscription } = require("node-opcua-server");

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const out = (doc) => process.stdout.write("@" + JSON.stringify(doc) + "\n");

async function main() {
  const port = Number(arg("--port", "4840"));
  const n = Number(arg("--vars", "1000"));
  const changeMs = Number(arg("--change-ms", "1000"));
  Subscription.maxNotificationPerPublishHighLimit = Number(arg("--per-publish", "1000"));
  const certificateManager = new OPCUACertificateManager({
    rootFolder: arg("--pki", path.join(process.cwd(), "pki")),
    automaticallyAcceptUnknownCertificate: true });
  await certificateManager.initialize();
  const server = new OPCUAServer({
    port, hostname: "127.0.0.1", resourcePath: "/", serverCertificateManager: certificateManager,
    alternateHostname: ["127.0.0.1"], securityModes: [MessageSecurityMode.None],
    securityPolicies: [SecurityPolicy.None], allowAnonymous: true, disableDiscovery: true,
    buildInfo: { productName: "shopfloor-bench-peer", buildNumber: "1" },
    serverCapabilities: { maxMonitoredItemsPerSubscription: Math.max(100000, n),
                          maxMonitoredItems: Math.max(1000000, n) },
  });
  await server.initialize();
  const addressSpace = server.engine.addressSpace;
  const ns = addressSpace.registerNamespace("urn:peer:bench");
  const bench = ns.addObject({ organizedBy: addressSpace.rootFolder.objects,
                               browseName: "Bench", nodeId: "s=Bench" });
  const vars = [];
  const first = new Variant({ dataType: DataType.Double, value: 0 });
  let group = null;  // 500 a folder: node-opcua checks a new child against its siblings
  for (let i = 0; i < n; i++) {
    if (i % 500 === 0) {
      group = ns.addObject({ organizedBy: bench, browseName: `Group${i / 500}`,
                             nodeId: `s=Bench.Group${i / 500}` });
    }
    const v = ns.addVariable({ componentOf: group, browseName: `Var${i}`,
                               nodeId: `s=Bench.Var${i}`, dataType: "Double" });
    v.setValueFromSource(first, StatusCodes.Good, new Date());
    vars.push(v);
  }
  await server.start();
  out({ ready: port, ns: ns.index });

  let round = 0;
  let written = 0;
  let next = Date.now() + changeMs;
  let timer = null;
  const change = () => {
    round += 1;
    const value = new Variant({ dataType: DataType.Double, value: round });
    const ts = new Date();
    for (const v of vars) v.setValueFromSource(value, StatusCodes.Good, ts);
    written += n;
    out({ written });
    next = Math.max(next + changeMs, Date.now());
    timer = setTimeout(change, next - Date.now());
  };
  timer = setTimeout(change, changeMs);

  const quit = async () => {
    clearTimeout(timer);
    await server.shutdown(0);
    process.exit(0);
  };
  process.stdin.on("end", quit);
  process.stdin.resume();
  process.on("SIGTERM", quit);
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack || err) + "\n");
  process.exit(1);
});
