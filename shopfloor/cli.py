"""The ``shopfloor`` command: one subcommand per service."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from shopfloor import __version__
from shopfloor.config import ConfigError


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except where there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    for noisy in ("httpx", "httpcore", "asyncua", "pymodbus", "numba"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.root.level))


def _simulate(args: argparse.Namespace) -> None:
    from shopfloor.simulators import runner

    runner.run(args.scenario, truth_path=args.truth, duration_s=args.duration)


def _edge(args: argparse.Namespace) -> None:
    from shopfloor.edge import agent

    agent.run(args.config)


def _gateway(args: argparse.Namespace) -> None:
    from shopfloor.gateway import service

    service.run(args.config)


def _server(args: argparse.Namespace) -> None:
    from shopfloor.server import app

    app.run(args.config)


def _up(args: argparse.Namespace) -> None:
    from shopfloor import up

    up.run(workdir=args.workdir, port=args.port, scenario=args.scenario,
           broker=args.broker, duration_s=args.duration)


def build_parser() -> argparse.ArgumentParser:
    fmt = _HelpFormatter
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
    p.add_argument("--scenario", type=Path, default=None,
                   help="plant scenario YAML (default: the built-in demo plant)")
    p.add_argument("--broker", choices=["auto", "mosquitto", "embedded"], default="auto",
                   help="MQTT broker: Mosquitto if installed (auto), or the embedded one")
    p.add_argument("--duration", type=float, default=None,
                   help="stop after this many seconds (default: run until Ctrl-C)")
    p.set_defaults(func=_up)

    p = sub.add_parser("simulate", formatter_class=fmt,
                       help="serve a simulated plant over OPC UA and Modbus TCP",
                       description="Run the machines of a scenario and write the "
                                   "ground-truth log.")
    p.add_argument("--scenario", type=Path, required=True, help="scenario YAML file")
    p.add_argument("--truth", type=Path, default=None,
                   help="ground-truth log (JSON lines) to write")
    p.add_argument("--duration", type=float, default=None,
                   help="stop after this many seconds (default: lead-in + shift + lead-out)")
    p.set_defaults(func=_simulate)

    p = sub.add_parser("edge", formatter_class=fmt,
                       help="edge agent: read OPC UA / Modbus devices, publish over MQTT")
    p.add_argument("--config", type=Path, required=True, help="edge config YAML")
    p.set_defaults(func=_edge)

    p = sub.add_parser("gateway", formatter_class=fmt,
                       help="gateway: MQTT -> embedded store and/or InfluxDB")
    p.add_argument("--config", type=Path, required=True, help="gateway config YAML")
    p.set_defaults(func=_gateway)

    p = sub.add_parser("server", formatter_class=fmt,
                       help="metrics server: REST API (OEE, assets) and dashboard")
    p.add_argument("--config", type=Path, required=True, help="server config YAML")
    p.set_defaults(func=_server)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.log_level)
    try:
        args.func(args)
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
