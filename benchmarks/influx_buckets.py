"""Reading roll-up buckets from InfluxDB 1.6: the packed layout against one field per
quantity, MessagePack against JSON, plain against gzipped results, side by side in one run.

    python benchmarks/influx_buckets.py [--machines 1000] [--days 30] [--repeat 5]

Writes ``--machines`` x ``--days`` day buckets of random quantities twice into a private
InfluxDB 1.6 (``rollup_buckets`` as ``InfluxBuckets`` writes it, and the same values with
one field per quantity, the layout before ``packed_v1``), then times summing all of them
per machine, as a cluster's 30-day ``/oee`` does, for each way of reading (median of
``--repeat``), checks every way gives the same sums, and prints the ratios.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import services  # noqa: E402
from command_line import parse_args  # noqa: E402

from shopfloor.server.rollup.buckets import DAY  # noqa: E402
from shopfloor.server.rollup.influx_buckets import BUCKETS, InfluxBuckets  # noqa: E402
from shopfloor.server.rollup.quantities import (  # noqa: E402
    FLOAT_FIELDS,
    INT_FIELDS,
    Quantities,
)
from shopfloor.storage import InfluxConfig  # noqa: E402
from shopfloor.storage.influx import PATH_TAGS, point, quote_ident  # noqa: E402

T0 = 1_764_547_200 * 10**9
FIELDS_MEASUREMENT = "rollup_buckets_fields"  # the layout before packed_v1


def machines(n: int) -> list[str]:
    return [f"e{i // 50}/p/w/l{i // 10}/m{i}" for i in range(n)]


def write(store: InfluxBuckets, names: list[str], days: int) -> dict[str, Quantities]:
    rng = np.random.default_rng(7)
    starts = T0 + DAY * np.arange(days, dtype=np.int64)
    truth, old = {}, []
    for name in names:
        q = Quantities(rng.integers(0, 10**13, (days, len(INT_FIELDS))),
                       rng.integers(0, 10**6, (days, len(FLOAT_FIELDS))).astype(np.float64))
        store.put(name, DAY, starts, q)
        tags = {"res": str(DAY), **dict(zip(PATH_TAGS, name.split("/"), strict=True))}
        for s, ints, floats in zip(starts.tolist(), q.ints.tolist(), q.floats.tolist(),
                                   strict=True):
            fields = dict(zip((*INT_FIELDS, *FLOAT_FIELDS), ints + floats, strict=True))
            old.append(point(FIELDS_MEASUREMENT, tags, fields, s))
        truth[name] = q.total()
    store._writer.write_lines(old)
    store.flush()
    return truth


def read_fields(store: InfluxBuckets, days: int) -> dict[str, Quantities]:
    """The former read: every quantity a field of its own, summed per machine."""
    cols = ",".join(quote_ident(c) for c in (*PATH_TAGS, *INT_FIELDS, *FLOAT_FIELDS))
    series = store._reader.query(f"SELECT {cols} FROM {quote_ident(FIELDS_MEASUREMENT)} "  # noqa: S608
                                 f"WHERE time >= {T0} AND time < {T0 + days * DAY}")
    nt, ni = len(PATH_TAGS), len(INT_FIELDS)
    rows: dict[str, list[list]] = {}
    for row in (r for s in series for r in s.get("values") or []):
        rows.setdefault("/".join(row[1:1 + nt]), []).append(row[1 + nt:])
    out = {}
    for name, got in rows.items():
        a = np.array(got, dtype=object)
        out[name] = Quantities(a[:, :ni].astype(np.int64), a[:, ni:].astype(np.float64)).total()
    return out


def timed(fn: Callable[[], dict], repeat: int) -> tuple[float, dict]:
    times, got = [], {}
    for _ in range(repeat):
        t = time.perf_counter()
        got = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), got


def main() -> None:
    a = parse_args(__doc__, machines=(1000, "machines"), days=(30, "day buckets each"),
                   repeat=(5, "reads per way (the median is printed)"))
    names = machines(a.machines)
    with tempfile.TemporaryDirectory() as tmp, services.influxdb1(Path(tmp)) as db:
        cfg = InfluxConfig(version=1, url=db.url, database=db.database)
        store = InfluxBuckets(cfg, "bench")
        t = time.perf_counter()
        truth = write(store, names, a.days)
        print(f"wrote {a.machines * a.days:,} buckets twice in {time.perf_counter() - t:.1f} s")

        def asking(accept: str, gzip: bool) -> InfluxBuckets:
            s = InfluxBuckets(cfg.model_copy(update={"gzip_results": gzip}), "bench")
            s._reader._http.headers["Accept"] = accept
            return s

        js, mp = "application/json", "application/x-msgpack"
        before = asking(js, True)  # JSON whatever was asked; httpx asks for gzip by default
        mp_gzip, js_plain = asking(mp, True), asking(js, False)
        span = (DAY, T0, T0 + a.days * DAY, None, "device")
        ways: dict[str, Callable[[], dict]] = {
            "fields, JSON, gzip (before)": lambda: read_fields(before, a.days),
            "packed_v1, JSON, gzip": lambda: before.sums(*span),
            "packed_v1, MessagePack, gzip": lambda: mp_gzip.sums(*span),
            "packed_v1, JSON": lambda: js_plain.sums(*span),
            "packed_v1, MessagePack (now)": lambda: store.sums(*span),
        }
        results = {label: timed(fn, a.repeat) for label, fn in ways.items()}
        base = results["fields, JSON, gzip (before)"][0]
        print(f"\nsum of {a.machines:,} machines x {a.days} day buckets ({BUCKETS}), "
              f"median of {a.repeat}")
        print(f"{'way of reading':34} {'seconds':>8} {'vs before':>10}")
        for label, (s, got) in results.items():
            same = all(np.array_equal(got[n].ints, truth[n].ints)
                       and np.array_equal(got[n].floats, truth[n].floats) for n in names)
            print(f"{label:34} {s:8.3f} {base / s:9.2f}x{'' if same else '  SUMS DIFFER'}")
        for s in (store, before, mp_gzip, js_plain):
            s.close()


if __name__ == "__main__":
    main()
