"""The ``shopfloor`` command: one subcommand per service."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from shopfloor import __version__
from shopfloor.config import ConfigError


class HelpFormatter(argparse.RawDescriptionHelpFormatter,
                    argparse.ArgumentDefaultsHelpFormatter):
    """Descriptions as written; every option says its default, or that it is required;
    flags say nothing. Used by every command and script of the project."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if not action.option_strings or action.nargs == 0 or "default" in text:
            return text  # positionals, flags, or help that names its default itself
        if action.required:
            return text + " (required)"
        if action.default is None:
            return text + " (default: none)"
        return super()._get_help_string(action)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    for noisy in ("httpx", "httpcore", "asyncua", "pymodbus", "numba", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.root.level))


def _simulate(args: argparse.Namespace) -> None:
    from shopfloor.simulators import runner

    runner.run(args.scenario, truth_path=args.truth, duration_s=args.duration)


def _edge(args: argparse.Namespace) -> int | None:
    if args.edge_command in (None, "run"):
        if args.config is None:
            raise ConfigError("shopfloor edge: --config FILE is required")
        from shopfloor.edge import agent

        agent.run(args.config)
        return None
    if args.edge_command == "check":
        from shopfloor.edge import check

        return check.run_check(args.config)
    if args.edge_command == "discover":
        from shopfloor.edge.opcua import discover

        if (args.cert is None) != (args.key is None):
            raise ConfigError("shopfloor edge discover: --cert and --key go together")
        security = None if args.cert is None else {
            "policy": args.policy, "mode": args.mode, "certificate": str(args.cert),
            "private_key": str(args.key), "application_uri": args.application_uri,
            **({"server_certificate": str(args.server_cert)} if args.server_cert else {}),
            **({"trust_dir": str(args.trust_dir)} if args.trust_dir else {})}
        return discover.run_discover(args.url, username=args.username, password=args.password,
                                     max_nodes=args.max_nodes, security=security)
    from shopfloor.edge.opcua import certs

    return certs.run_create_cert(args.out, common_name=args.common_name, days=args.days,
                                 application_uri=args.application_uri)


def _gateway(args: argparse.Namespace) -> None:
    from shopfloor.gateway import service

    service.run(args.config)


def _server(args: argparse.Namespace) -> None:
    from shopfloor.server import app

    app.run(args.config)


def _cluster(args: argparse.Namespace) -> None:
    from shopfloor.server.federation import cluster

    cluster.run(args.config)


def _rollup(args: argparse.Namespace) -> int:
    from shopfloor.server.rollup import rebuild

    return rebuild.run_rebuild(args.config, args.machine)


def _db(args: argparse.Namespace) -> int:
    from shopfloor.server.operations import db

    return db.run_upgrade(args.config)


def _up(args: argparse.Namespace) -> None:
    from shopfloor import up

    if args.cluster and args.scenario is not None:
        raise ConfigError("--cluster is the built-in cluster demo; with --scenario give "
                          "your own cluster file instead")
    from shopfloor.demo.stacks import BUILTIN_CLUSTER

    up.run(workdir=args.workdir, port=args.port,
           scenario=BUILTIN_CLUSTER if args.cluster else args.scenario,
           broker=args.broker, duration_s=args.duration, history_days=args.history_days)


def _history(args: argparse.Namespace) -> int:
    from shopfloor.demo import history

    return history.run(args.config, args.scenario, args.days, args.improvement)


def _scenario_options(p: argparse.ArgumentParser, default: str | None, until: str) -> None:
    """--scenario (required unless ``default`` says what it is) and --duration."""
    p.add_argument("--scenario", type=Path, default=None, required=default is None,
                   help=f"plant scenario YAML {default or 'file'}")
    p.add_argument("--duration", type=float, default=None,
                   help=f"stop after this many seconds (default: {until})")


def build_parser() -> argparse.ArgumentParser:
    fmt = HelpFormatter
    parser = argparse.ArgumentParser(
        prog="shopfloor", formatter_class=fmt,
        description="Shop-floor data collection (OPC UA, Modbus -> MQTT -> store) "
                    "and digital-workshop metrics (OEE, digitalization rates).")
    parser.add_argument("--version", action="version", version=f"shopfloor {__version__}")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"], help="log verbosity")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("up", formatter_class=fmt,
                       help="run the embedded demo: simulated plant, edge, broker, gateway, "
                            "store, server and dashboard",
                       description="Start everything on this machine and print the URL. "
                                   "Ctrl-C stops it all.")
    p.add_argument("--workdir", type=Path, default=Path(".shopfloor"),
                   help="where generated configs, the store and logs go")
    p.add_argument("--port", type=int, default=8000, help="HTTP port of the server")
    p.add_argument("--broker", choices=["auto", "mosquitto", "embedded"], default="auto",
                   help="MQTT broker: Mosquitto if installed (auto), or the embedded one")
    p.add_argument("--cluster", action="store_true",
                   help="the built-in cluster demo: three enterprises of different maturity, "
                        "each its own stack, federating to a cluster server (--port is the "
                        "cluster's, the enterprises' servers the ports after it)")
    p.add_argument("--history-days", type=int, default=None,
                   help="days of history written into each new store before the live "
                        "shift (default: each enterprise's `history.days`, 0 for a plain "
                        "scenario)")
    _scenario_options(p, "or cluster file (default: the built-in demo plant)",
                      "run until Ctrl-C")
    p.set_defaults(func=_up)

    p = sub.add_parser("history", formatter_class=fmt,
                       help="write past shifts of a scenario's machines into a server's store",
                       description="So trends and monthly history are not empty in a demo: "
                                   "each machine runs the simulators' dynamics (minutes for "
                                   "seconds) once per shift of the server's calendar, its "
                                   "stops longer the older the day. The store must not "
                                   "hold samples of these machines yet.")
    p.add_argument("--config", type=Path, required=True,
                   help="server config YAML (its store, calendar and stale_after_s)")
    p.add_argument("--scenario", type=Path, required=True, help="plant scenario YAML")
    p.add_argument("--days", type=int, default=365, help="days before now")
    p.add_argument("--improvement", type=float, default=0.3,
                   help="stops were this much longer --days ago than now (0.3: 30 %%)")
    p.set_defaults(func=_history)

    p = sub.add_parser("simulate", formatter_class=fmt,
                       help="serve a simulated plant over OPC UA and Modbus TCP",
                       description="Run the machines of a scenario and write the "
                                   "ground-truth log.")
    p.add_argument("--truth", type=Path, default=None,
                   help="ground-truth log (JSON lines) to write")
    _scenario_options(p, None, "lead-in + shift + lead-out")
    p.set_defaults(func=_simulate)

    p = sub.add_parser("edge", formatter_class=fmt,
                       help="edge agent: read OPC UA / Modbus devices, publish over MQTT",
                       description="Run the edge agent (`shopfloor edge --config FILE`), "
                                   "or one of its tools below.")
    p.add_argument("--config", type=Path, help="edge config YAML (to run the agent)")
    p.set_defaults(func=_edge, edge_command=None)
    esub = p.add_subparsers(dest="edge_command", metavar="TOOL")
    e = esub.add_parser("run", formatter_class=fmt, help="run the agent (the default)")
    e.add_argument("--config", type=Path, required=True, help="edge config YAML")
    e = esub.add_parser("check", formatter_class=fmt,
                        help="validate the config, try every device and the broker once",
                        description="Commissioning check: prints a table of device, "
                                    "protocol, reachable, tags read and first error.")
    e.add_argument("--config", type=Path, required=True, help="edge config YAML")
    e = esub.add_parser("discover", formatter_class=fmt,
                        help="browse an OPC UA server and print a config skeleton")
    e.add_argument("url", help="server endpoint, e.g. opc.tcp://127.0.0.1:4840")
    e.add_argument("--username", default=None, help="user name, if the server needs one")
    e.add_argument("--password", default=None, help="password (or env SHOPFLOOR_OPCUA_PASSWORD)")
    e.add_argument("--max-nodes", type=int, default=10000, help="stop browsing after this many")
    e.add_argument("--cert", type=Path, default=None,
                   help="the agent's certificate (`shopfloor edge cert`): connect securely")
    e.add_argument("--key", type=Path, default=None, help="its private key (with --cert)")
    e.add_argument("--policy", default="Basic256Sha256",
                   choices=["Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"],
                   help="security policy (with --cert)")
    e.add_argument("--mode", default="SignAndEncrypt", choices=["Sign", "SignAndEncrypt"],
                   help="security mode (with --cert)")
    e.add_argument("--server-cert", type=Path, default=None,
                   help="pin the server's certificate (else taken from its endpoints)")
    e.add_argument("--trust-dir", type=Path, default=None,
                   help="directory of trusted server certificates")
    e.add_argument("--application-uri", default="urn:shopfloor:edge",
                   help="must match the certificate's URI (with --cert)")
    e = esub.add_parser("cert", formatter_class=fmt,
                        help="create the agent's OPC UA application certificate and key")
    e.add_argument("--out", type=Path, default=Path("pki"), help="directory for cert and key")
    e.add_argument("--common-name", default="shopfloor-edge", help="certificate CN")
    e.add_argument("--application-uri", default="urn:shopfloor:edge",
                   help="OPC UA application URI (must match the client's)")
    e.add_argument("--days", type=int, default=3650, help="validity in days")

    p = sub.add_parser("gateway", formatter_class=fmt,
                       help="gateway: MQTT -> embedded store and/or InfluxDB")
    p.add_argument("--config", type=Path, required=True, help="gateway config YAML")
    p.set_defaults(func=_gateway)

    p = sub.add_parser("rollup", formatter_class=fmt,
                       help="roll-ups of the metrics: rebuild them from raw samples",
                       description="Roll-ups hold each machine's metric quantities per "
                                   "minute, hour and day; the server keeps them up to date.")
    rsub = p.add_subparsers(dest="rollup_command", metavar="TOOL", required=True)
    r = rsub.add_parser("rebuild", formatter_class=fmt,
                        help="recompute them from raw samples (after a config change)")
    r.add_argument("--config", type=Path, required=True, help="server config YAML")
    r.add_argument("--machine", action="append", default=None,
                   help="equipment id to rebuild, repeated for several (default: every machine)")
    p.set_defaults(func=_rollup)

    p = sub.add_parser("db", formatter_class=fmt,
                       help="the operations database (reasons, plans, alerts)",
                       description="The server migrates it at start unless "
                                   "operations.database.migrate is false; then run this.")
    dsub = p.add_subparsers(dest="db_command", metavar="TOOL", required=True)
    d = dsub.add_parser("upgrade", formatter_class=fmt, help="migrate to the newest schema")
    d.add_argument("--config", type=Path, required=True, help="server config YAML")
    p.set_defaults(func=_db)

    p = sub.add_parser("server", formatter_class=fmt,
                       help="metrics server: REST API (OEE, assets) and dashboard")
    p.add_argument("--config", type=Path, required=True, help="server config YAML")
    p.set_defaults(func=_server)

    p = sub.add_parser("cluster", formatter_class=fmt,
                       help="cluster server: receives enterprises' aggregates, serves the "
                            "cluster's indicators over time and reports",
                       description="Enterprise servers with a `federation:` section push "
                                   "their day and month aggregates here (never a sample); "
                                   "the cluster serves monthly and quarterly history "
                                   "(pooled and mean of enterprises, published figures, "
                                   "gaps, most improved) and CSV/XLSX exports under "
                                   "/api/v1/cluster.")
    p.add_argument("--config", type=Path, required=True,
                   help="cluster config YAML (server/federation/cluster.sample.yaml)")
    p.set_defaults(func=_cluster)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.log_level)
    try:
        code = args.func(args)
        if isinstance(code, int):
            return code
    except ConfigError as exc:
        print(f"shopfloor {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    except RuntimeError as exc:  # e.g. up.StartupError: says which service and its log
        print(f"shopfloor {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
