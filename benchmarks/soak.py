"""Soak: the whole stack on real Mosquitto and InfluxDB at ten times the demo's rate for a
set time; fails if memory or file descriptors grow without bound or a sample is lost.

    python benchmarks/soak.py [--duration_s 7200] [--interval_s 60] [--warmup_s 600]

The demo plant, each machine ``--copies`` times (default 2), every cycle time and state
duration divided by ``--speedup`` (default 10): about ten times the demo's samples per
second (measured: the demo plant stores 21 samples/s; 5 machines at 10x speed, 96/s),
the edge, the gateway (embedded
store and InfluxDB 1.x) and the server, each its own process. Every ``--interval_s``
it samples each process's RSS, open files, threads and CPU, and the outbox, store and
InfluxDB sizes, and reads the server's /oee once. At the end it stops the plant, lets
the edge drain, stops the rest, and prints per process the slopes after the warm-up.

Fails (exit 1) when: a service stops; over the time after the warm-up, a process of
ours or Mosquitto grows in RSS by more than max(20 MB, 10 %) or in open files by more
than 10 (InfluxDB's own memory, which its cache and index grow by design, is reported,
not judged); the edge dropped a sample or did not get every batch acknowledged; the
gateway's seq ledger has a gap; the embedded store and InfluxDB hold different counts
or fewer samples than the edge committed. A JSON report goes to the work directory.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import services  # noqa: E402
from command_line import parse_args  # noqa: E402

from shopfloor.config import load_yaml  # noqa: E402
from shopfloor.storage.sqlite import SqliteStore  # noqa: E402
from shopfloor.up import (  # noqa: E402
    DEMO_SCENARIO,
    Supervisor,
    free_port,
    port_open,
    shopfloor_cmd,
    write_configs,
)

JUDGED = ("broker", "plant", "gateway", "edge", "server")  # influxd: reported only
MB = 1 << 20


def fast_scenario(speedup: float, copies: int, duration_s: float) -> dict[str, Any]:
    """The demo plant, each machine ``copies`` times, ``speedup`` times faster, for
    ``duration_s`` of shift."""
    doc = load_yaml(DEMO_SCENARIO)
    for area in doc["areas"]:
        for line in area["lines"]:
            line["machines"] = [m | {"id": f"{m['id']}-{k}" if k else m["id"]}
                                for m in line["machines"] for k in range(copies)]
    doc["timeline"] = {"lead_in_s": 3, "duration_s": duration_s + 120, "lead_out_s": 3}
    for m in [doc["defaults"], *(m for a in doc["areas"] for ln in a["lines"]
                                 for m in ln["machines"])]:
        if "ideal_cycle_time_s" in m:
            m["ideal_cycle_time_s"] /= speedup
        for state, (lo, hi) in (m.get("durations_s") or {}).items():
            m["durations_s"][state] = [lo / speedup, hi / speedup]
    return doc


def size(*paths: Path) -> int:
    total = 0
    for p in paths:
        if p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        elif p.exists():
            total += p.stat().st_size
    return total


def sample_procs(procs: dict[str, psutil.Process], last_cpu: dict[str, float],
                 dt: float) -> dict[str, dict[str, float]]:
    out = {}
    for name, p in procs.items():
        with p.oneshot():
            cpu = sum(p.cpu_times()[:2])
            out[name] = {"rss_mb": p.memory_info().rss / MB, "fds": p.num_fds(),
                         "threads": p.num_threads(),
                         "cpu_pct": 100 * (cpu - last_cpu.get(name, cpu)) / dt}
        last_cpu[name] = cpu
    return out


def slopes(rows: list[dict[str, Any]], warmup_s: float) -> dict[str, dict[str, float]]:
    """Per process: the least-squares slope per hour of RSS, fds and threads after the
    warm-up, the growth it implies over that time, and the mean."""
    after = [r for r in rows if r["t"] >= warmup_s]
    if len(after) < 3:
        raise SystemExit(f"soak: only {len(after)} samples after the warm-up; run longer")
    t = np.array([r["t"] for r in after]) / 3600
    out: dict[str, dict[str, float]] = {}
    for name in after[0]["procs"]:
        out[name] = {}
        for key in ("rss_mb", "fds", "threads", "cpu_pct"):
            y = np.array([r["procs"][name][key] for r in after])
            slope = float(np.polyfit(t, y, 1)[0])
            out[name] |= {f"{key}_per_h": slope, f"{key}_growth": slope * (t[-1] - t[0]),
                          f"{key}_mean": float(y.mean())}
    for key in ("outbox_mb", "store_mb", "influx_mb"):
        y = np.array([r[key] for r in after])
        out.setdefault("files", {})[f"{key}_per_h"] = float(np.polyfit(t, y, 1)[0])
    return out


def oee_ok(url: str) -> bool:
    """The server answers /oee over the last ten minutes of the whole plant."""
    end = datetime.now(UTC)
    r = httpx.get(f"{url}/api/v1/oee", params={
        "scope": "acme", "start": (end - timedelta(minutes=10)).isoformat(),
        "end": end.isoformat()}, timeout=60)
    return r.status_code == 200 and r.json()["counts"]["total"] > 0


def edge_stats(log: Path) -> dict[str, int]:
    """The edge's last `stats:` line (written when it stops)."""
    lines = [ln for ln in log.read_text().splitlines() if "stats: read=" in ln]
    if not lines:
        raise SystemExit(f"soak: no stats line in {log}")
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", lines[-1].split("stats:")[1])}


def main() -> int:
    args = parse_args(__doc__, duration_s=(7200.0, "how long the plant runs (s)"),
                      interval_s=(60.0, "sampling period (s)"),
                      warmup_s=(600.0, "samples before this are not judged (s)"),
                      speedup=(10.0, "times the demo's speed"),
                      copies=(2, "of each demo machine"))
    work = Path(tempfile.mkdtemp(prefix="shopfloor-soak-"))
    print(f"soak: {args.duration_s:.0f} s, {args.copies} x the demo's machines at "
          f"{args.speedup:g}x its speed, sampled "
          f"every {args.interval_s:.0f} s; work directory {work}", flush=True)
    failures: list[str] = []
    with services.mosquitto(work / "mosquitto") as broker, \
            services.influxdb1(work / "influxdb") as influx:
        scenario = fast_scenario(args.speedup, args.copies, args.duration_s)
        files = write_configs(work / "stack", scenario,
                              mqtt_port=broker.port, http_port=free_port(),
                              influxdb={"version": 1, "url": influx.url,
                                        "database": influx.database})
        sup = Supervisor(work / "logs", out=lambda _line: None)
        port = load_yaml(files.server)["http"]["port"]
        url = f"http://127.0.0.1:{port}"
        rows: list[dict[str, Any]] = []
        try:
            plant, _, _ = services.start_plant_stack(sup, files)
            sup.start("server", shopfloor_cmd("server", "--config", str(files.server)),
                      lambda: port_open(port))
            procs = {name: psutil.Process(p.pid) for name, p in sup.procs}
            procs["broker"] = psutil.Process(broker.proc.pid)
            procs["influxd"] = next(c for c in psutil.Process().children(recursive=True)
                                    if c.name() == "influxd")
            t0 = last = time.monotonic()
            cpu: dict[str, float] = {}
            sample_procs(procs, cpu, 1.0)
            while (now := time.monotonic()) - t0 < args.duration_s:
                time.sleep(min(args.interval_s, max(0.0, t0 + args.duration_s - now)))
                if (down := sup.exited()):
                    failures.append(f"stopped during the soak: {down}")
                    break
                now = time.monotonic()
                row = {"t": now - t0, "procs": sample_procs(procs, cpu, now - last),
                       "outbox_mb": size(files.workdir / "outbox.db",
                                         files.workdir / "outbox.db-wal") / MB,
                       "store_mb": size(files.store, Path(f"{files.store}-wal")) / MB,
                       "influx_mb": size(work / "influxdb" / "data",
                                         work / "influxdb" / "wal") / MB,
                       "oee_ok": oee_ok(url)}
                last = now
                rows.append(row)
                print(f"  t={row['t']:6.0f}s " + " ".join(
                    f"{n} {v['rss_mb']:.0f}MB/{v['fds']}fd/{v['cpu_pct']:.0f}%"
                    for n, v in row["procs"].items()) +
                    f" outbox {row['outbox_mb']:.1f}MB store {row['store_mb']:.1f}MB",
                    flush=True)
            plant.terminate()  # no new data; the edge publishes what it holds
            plant.wait(30)
            time.sleep(5)
        finally:
            sup.stop_all()
        failures += judge(rows, args.warmup_s, files, influx, work)
    (work / "soak.json").write_text(json.dumps({"args": vars(args), "samples": rows,
                                                "failures": failures}, indent=1))
    print("soak:", "FAILED\n  " + "\n  ".join(failures) if failures else "passed",
          f"(report {work / 'soak.json'})")
    return 1 if failures else 0


def judge(rows: list[dict[str, Any]], warmup_s: float, files: Any,
          influx: services.InfluxDB1, work: Path) -> list[str]:
    failures = []
    fit = slopes(rows, warmup_s)
    print(f"{'process':<9} {'RSS MB':>8} {'MB/h':>8} {'fds':>5} {'fds/h':>7} "
          f"{'threads':>7} {'CPU %':>6}")
    for name, f in fit.items():
        if name == "files":
            continue
        print(f"{name:<9} {f['rss_mb_mean']:8.1f} {f['rss_mb_per_h']:8.2f} "
              f"{f['fds_mean']:5.0f} {f['fds_per_h']:7.2f} {f['threads_mean']:7.1f} "
              f"{f['cpu_pct_mean']:6.1f}")
        if name in JUDGED:
            if f["rss_mb_growth"] > max(20.0, 0.1 * f["rss_mb_mean"]):
                failures.append(f"{name}: RSS grew {f['rss_mb_growth']:.1f} MB after warm-up")
            if f["fds_growth"] > 10:
                failures.append(f"{name}: open files grew {f['fds_growth']:.0f}")
    print("files MB/h: " + " ".join(f"{k.removesuffix('_mb_per_h')} {v:.2f}"
                                    for k, v in fit["files"].items()))
    if not all(r["oee_ok"] for r in rows):
        failures.append("the server's /oee failed at some sample")
    edge = edge_stats(work / "logs" / "edge.log")
    with SqliteStore(files.store) as store:
        stored, ranges = store.count(), store.seq_ranges()
    counted = influx.query('SELECT count("quality") FROM "samples"')
    in_influx = counted["results"][0]["series"][0]["values"][0][1]
    span = rows[-1]["t"] if rows else 1.0
    print(f"edge: {edge}; embedded store {stored} samples ({stored / span:.0f}/s), "
          f"InfluxDB {in_influx}; seq ranges {ranges}")
    if edge.get("dropped", 0) or edge.get("acked") != edge.get("enqueued"):
        failures.append(f"edge: not every sample acknowledged: {edge}")
    if len(ranges.get("edge-1", [])) != 1:
        failures.append(f"gateway: seq ledger has gaps: {ranges}")
    if stored != in_influx or stored < edge.get("enqueued", 0):
        failures.append(f"lost samples: edge committed {edge.get('enqueued')}, embedded "
                        f"{stored}, InfluxDB {in_influx}")
    return failures


if __name__ == "__main__":
    sys.exit(main())
