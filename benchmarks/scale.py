"""Scale benchmark: metrics of a cluster over a month, raw path vs roll-up path, side by side.

    python benchmarks/scale.py [--machines 1000] [--days 30] [--raw-days 1] [--full-raw 10]
                               [--influx 1] [--repeat 3]

Builds a cluster (enterprises of 50 machines, lines of 10) and realistic data for every
machine (``scale_data.py``: about 35,000 samples a day), keeps the last ``--raw-days`` of
raw samples in the stores, and the whole period for the first ``--full-raw`` machines (a
line), as retention would leave them; every machine's roll-up buckets are built by the
project's own code (``Maintainer.build``), the older days' from the generated data in
memory. Then it starts the real server on the embedded store (and on InfluxDB 1.6 with
``--influx 1``) twice, with roll-ups and without, and prints per endpoint, scope and window
the time of each path (median of ``--repeat``), their ratio, samples and buckets read;
then each server's RSS, the store sizes and the fitted growth of time with buckets.
Raw-path cells the stores cannot answer (no raw data that old) read "n/a".
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import services  # noqa: E402
from command_line import parse_args  # noqa: E402
from scale_data import DAY, ICT_S, ArrayReader, generate, influx_load, sqlite_load  # noqa: E402

from shopfloor.server.registry import Registry, RegistryModel  # noqa: E402
from shopfloor.server.rollup.buckets import MINUTE, DeviceState, SqliteBuckets  # noqa: E402
from shopfloor.server.rollup.influx_buckets import InfluxBuckets  # noqa: E402
from shopfloor.server.rollup.maintainer import Maintainer, machine_fingerprint  # noqa: E402
from shopfloor.server.rollup.quantities import Definition  # noqa: E402
from shopfloor.storage import InfluxConfig  # noqa: E402
from shopfloor.storage.influx import InfluxV1Writer  # noqa: E402
from shopfloor.times import iso  # noqa: E402

H = 3600 * 10**9
WINDOWS = {"1h": H, "8h": 8 * H, "24h": 24 * H, "7d": 7 * DAY, "30d": 30 * DAY}
PER_ENTERPRISE, PER_LINE = 50, 10


def registry_doc(n: int) -> dict[str, Any]:
    ents = []
    for e in range(-(-n // PER_ENTERPRISE)):
        lines, m0 = [], e * PER_ENTERPRISE
        for ln in range(-(-min(PER_ENTERPRISE, n - m0) // PER_LINE)):
            ids = range(m0 + ln * PER_LINE, min(m0 + (ln + 1) * PER_LINE, n))
            lines.append({"id": f"line{ln}", "equipment": [
                {"id": f"m{i:04d}", "ideal_cycle_times_s": ICT_S} for i in ids]})
        ents.append({"id": f"ent{e:02d}", "sites": [{"id": "plant", "workshops": [
            {"id": "shop", "lines": lines}]}]})
    return {"cluster": {"id": "bench"}, "enterprises": ents}


class Minutes:
    """Every bucket to each store, minute buckets only from ``minute_from`` on (as
    ``rollup.minute_days`` keeps them); sums read from the first store."""

    def __init__(self, stores: list[Any], minute_from: int):
        self.stores, self.minute_from = stores, minute_from

    def put(self, device, res, starts, q) -> None:
        if res == MINUTE:
            keep = starts >= self.minute_from
            starts, q = starts[keep], type(q)(q.ints[keep], q.floats[keep])
        for s in self.stores:
            s.put(device, res, starts, q)

    def sums(self, *args, **kw):
        return self.stores[0].sums(*args, **kw)

    def maintainers(self) -> list:
        return []

    def set_maintainer(self, _state) -> None:
        pass


def build(args, work: Path, influx: services.InfluxDB1 | None, d: Definition) -> dict:
    registry = Registry(RegistryModel.model_validate(registry_doc(args.machines)))
    equipment = registry.equipment_under(registry.root)
    (work / "registry.yaml").write_text(yaml.safe_dump(registry_doc(args.machines)))
    end = time.time_ns() // DAY * DAY
    day0, raw_from = end - args.days * DAY, end - args.raw_days * DAY
    store = work / "store.db"
    sqlite_buckets = SqliteBuckets(store, d.fingerprint())
    stores: list[Any] = [sqlite_buckets]
    cfg = writer = None
    if influx is not None:
        cfg = InfluxConfig(version=1, url=influx.url, database=influx.database, timeout_s=300)
        stores.append(InfluxBuckets(cfg, d.fingerprint()))
        writer = InfluxV1Writer(cfg)
    buckets = Minutes(stores, raw_from)
    reader = ArrayReader()
    maintainer = Maintainer(reader, None, buckets, lambda: equipment, d)  # type: ignore[arg-type]
    per_day = np.zeros((len(equipment), args.days), dtype=np.int64)  # samples per day
    stored = 0
    for i, asset in enumerate(tqdm(equipment, desc="machines", unit="m", disable=None)):
        series = generate(i, day0, args.days)
        reader.data = {(asset.device, tag): s for tag, s in series.items()}
        for s in series.values():
            per_day[i] += np.bincount((s.ts - day0) // DAY, minlength=args.days)[:args.days]
        maintainer.build(asset, day0, end)
        keep_from = day0 if i < args.full_raw else raw_from
        stored += sqlite_load(store, asset.device, series, keep_from, end)
        if writer is not None:
            influx_load(writer, asset.device, series, keep_from, end)
        state = DeviceState(machine_fingerprint(asset), day0, end)
        for s in stores:
            s.set_device(asset.id, state)
    for s in stores:
        s.close()
    if writer is not None:
        writer.close()
    return {"registry": registry, "equipment": equipment, "end": end, "day0": day0,
            "raw_from": raw_from, "per_day": per_day, "stored": stored, "cfg": cfg}


def server(work: Path, name: str, store: dict, rollups: bool, minute_days: float
           ) -> tuple[subprocess.Popen, str]:
    port = services.free_port()
    doc = {"registry": "registry.yaml", "store": store,
           "http": {"host": "127.0.0.1", "port": port},
           "rollup": {"enabled": rollups, "maintain": False, "minute_days": minute_days}}
    path = work / f"server-{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    log = open(work / f"server-{name}.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "shopfloor", "server", "--config", str(path)],
                            stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server {name} did not start; see {work}/server-{name}.log")
        time.sleep(0.2)


def rss_mb(proc: subprocess.Popen) -> float:
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


_CLIENTS: dict[str, httpx.Client] = {}


def timed(url: str, path: str, params: dict, repeat: int) -> tuple[float, dict]:
    """The median time of ``repeat`` requests over one kept-alive connection, as a browser
    asks (a new httpx client costs ~60 ms of its own: its TLS context)."""
    client = _CLIENTS.setdefault(url, httpx.Client(base_url=url, timeout=3600))
    times, doc = [], {}
    for _ in range(repeat):
        t = time.perf_counter()
        r = client.get(path, params=params)
        times.append(time.perf_counter() - t)
        r.raise_for_status()
        doc = r.json()
    return statistics.median(times), doc


def main() -> None:
    args = parse_args(__doc__, machines=(1000, "machines in the cluster"),
                      days=(30, "days of data"), raw_days=(1, "days of raw samples kept"),
                      full_raw=(10, "machines whose raw samples are kept for every day"),
                      influx=(1, "1: also InfluxDB 1.6; 0: embedded store only"),
                      repeat=(3, "requests per cell (the median is printed)"))
    d = Definition(30 * 10**9, 120 * 10**9, 300 * 10**9)
    with tempfile.TemporaryDirectory(prefix="shopfloor-scale-") as tmp:
        work = Path(tmp)
        influx_cm = services.influxdb1(work / "influxdb") if args.influx else None
        influx = influx_cm.__enter__() if influx_cm else None
        procs = []
        try:
            t = time.perf_counter()
            data = build(args, work, influx, d)
            print(f"built {args.machines} machines x {args.days} days "
                  f"({int(data['per_day'].sum()):,} samples generated, {data['stored']:,} "
                  f"kept raw) in {time.perf_counter() - t:.0f}s", file=sys.stderr)
            stores = {"sqlite": {"embedded": {"path": str(work / "store.db")}}}
            if influx is not None:
                stores["influx"] = {"influxdb": {"version": 1, "url": influx.url,
                                                 "database": influx.database,
                                                 "timeout_s": 600}}
            urls = {}
            for sname, store in stores.items():
                for path_name, on in (("raw", False), ("rollup", True)):
                    proc, url = server(work, f"{sname}-{path_name}", store, on, args.raw_days)
                    procs.append(proc)
                    urls[(sname, path_name)] = (proc, url)
            report(args, data, urls, work, influx)
        finally:
            for p in procs:
                p.terminate()
                p.wait(30)
            if influx_cm is not None:
                influx_cm.__exit__(None, None, None)


def report(args, data: dict, urls: dict, work: Path, influx) -> None:
    eq = data["equipment"]
    reg = data["registry"]
    first = eq[0]
    line = reg.get(first.id.rsplit("/", 1)[0])
    ent = reg.enterprises()[0]
    scopes = {"machine": first, "line": line, "enterprise": ent, "cluster": reg.root}
    end, per_day = data["end"], data["per_day"]
    index = {a.id: i for i, a in enumerate(eq)}
    fit: dict[tuple[str, str], list[tuple[int, float]]] = {}
    print(f"\n{'store':<7} {'endpoint':<9} {'scope':<10} {'window':<6} {'raw s':>9} "
          f"{'rollup s':>9} {'ratio':>8} {'samples':>13} {'buckets':>9} {'raw spans':>9}")
    for sname in sorted({k[0] for k in urls}):
        for endpoint in ("oee", "compare", "trend"):
            for scope_name, scope in scopes.items():
                if endpoint == "compare" and scope_name != "cluster":
                    continue
                machines = [index[a.id] for a in reg.equipment_under(scope)]
                for wname, wns in WINDOWS.items():
                    if wns > args.days * DAY:
                        continue
                    t0 = end - wns
                    params = {"scope": scope.id, "start": iso(t0), "end": iso(end)}
                    path = f"/api/v1/{endpoint}"
                    if endpoint == "compare":
                        params["metric"] = "oee"
                    if endpoint == "trend":
                        params["granularity"] = "1h" if wns <= DAY else "day"
                    days_in = max(1, wns // DAY)
                    samples = int(per_day[machines, -days_in:].sum() * min(wns / DAY, 1))
                    raw_ok = wns <= args.raw_days * DAY or all(m < args.full_raw
                                                               for m in machines)
                    limit = 60e6 if sname == "sqlite" else 8e6
                    t_raw = None
                    if raw_ok and samples <= limit:
                        t_raw, _ = timed(urls[(sname, "raw")][1], path, params, 1)
                        fit.setdefault((sname, "raw"), []).append((samples, t_raw))
                    t_fast, doc = timed(urls[(sname, "rollup")][1], path, params, args.repeat)
                    how = doc.get("answered_from", {})
                    fit.setdefault((sname, "rollup"), []).append((how.get("buckets", 0), t_fast))
                    ratio = f"{t_raw / t_fast:7.1f}x" if t_raw else "     n/a"
                    raw_txt = f"{t_raw:9.3f}" if t_raw is not None else "      n/a"
                    print(f"{sname:<7} {endpoint:<9} {scope_name:<10} {wname:<6} {raw_txt} "
                          f"{t_fast:9.3f} {ratio} {samples:13,} {how.get('buckets', '-'):>9} "
                          f"{how.get('raw_spans', '-'):>9}", flush=True)
    print()
    for (sname, path_name), (proc, _url) in sorted(urls.items()):
        print(f"server {sname:<6} {path_name:<6} RSS {rss_mb(proc):7.0f} MB")
    size = sum(p.stat().st_size for p in work.glob("store.db*"))
    print(f"embedded store {size / 1e6:,.0f} MB")
    if influx is not None:
        isize = sum(p.stat().st_size for p in (work / "influxdb").rglob("*") if p.is_file())
        print(f"InfluxDB data {isize / 1e6:,.0f} MB")
    for (sname, name), pts in sorted(fit.items()):
        if len(pts) >= 3:
            x, y = np.array([p[0] for p in pts], float), np.array([p[1] for p in pts])
            b, a = np.polyfit(x, y, 1)
            unit = "bucket" if name == "rollup" else "sample"
            print(f"{sname} {name} path: time ~ {a * 1e3:.1f} ms + {b * 1e6:.3f} us per "
                  f"{unit} (least squares over {len(pts)} cells)")


if __name__ == "__main__":
    main()
