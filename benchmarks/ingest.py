"""Ingest benchmark: prints samples/s and latency measured side by side in one run.

    python benchmarks/ingest.py [--samples 200000] [--naive 2000]
                                [--rollup-samples 3000000] [--rollup-interval-s 10]
                                [--rollup-pairs 2]

Starts its own Mosquitto and InfluxDB 1.x (Debian's influxd) on loopback ports, then:
1. writer path: the gateway's SqliteStore and InfluxV1Writer (batches of 5,000, cached
   pre-escaped series keys, gzip) vs a naive writer (one influxdb-client ``Point`` per
   sample, one synchronous HTTP request per sample);
2. through the gateway: a publisher in another process floods MQTT (QoS 1, 500 samples
   per message); the gateway decodes, batches, writes the embedded store, InfluxDB, or
   both (in turn), and acks after the write;
3. latency: a paced publisher (samples time-stamped when made, 100 messages/s x 50
   samples) -> stored in both stores, per sample: median and p99;
4. the Sparkplug B path: the same flood as an edge node's DDATA (protobuf, 500 metrics
   by alias per message, after an NBIRTH and a DBIRTH per device) -> the gateway's
   Sparkplug host -> the embedded store, beside the JSON contract's;
5. roll-up maintenance: gateway -> embedded store again, ``--rollup-samples`` of a live
   plant (each message stamped when it is sent; a flood of about 35 s), with the server's
   roll-up maintainer following the write log in another process (a round every
   ``--rollup-interval-s``: several rounds within the flood; at the server's default of
   30 s a flood this short would see none), against without, ``--rollup-pairs`` times in
   turn (the median of each is compared: one pair alone differed by 3-9 % run to run).
   Its lag (small-stop threshold + ``settle_s``, 3 minutes by default) is cut to 10 s so
   that most of the run's data is maintained within the run: the work per sample does not
   depend on the lag.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from tqdm import tqdm  # progress on stderr, off when it is not a terminal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import services  # noqa: E402
from command_line import parse_args  # noqa: E402

from shopfloor.config import parse_config  # noqa: E402
from shopfloor.contract import Batch, DevicePath, DeviceSample, Quality, Sample  # noqa: E402
from shopfloor.gateway.config import GatewayConfig  # noqa: E402
from shopfloor.gateway.service import Gateway  # noqa: E402
from shopfloor.sparkplug.payload import DT, set_value  # noqa: E402
from shopfloor.sparkplug.schema import Payload  # noqa: E402
from shopfloor.storage import InfluxConfig  # noqa: E402
from shopfloor.storage.influx import InfluxV1Writer  # noqa: E402
from shopfloor.storage.sqlite import SqliteStore  # noqa: E402

DEVICES = [DevicePath("acme", "plant1", f"area{i % 4}", f"line{i % 8}", f"m{i:03d}")
           for i in range(100)]
TAGS = ["state", "part_count", "reject_count", "spindle_load", "temp", "program"]


def make_rows(n: int, t0: int) -> list[DeviceSample]:
    rows = []
    for i in range(n):
        tag = TAGS[i % len(TAGS)]
        v: float | str = f"P{i % 50}" if tag == "program" else float(i % 1000) * 0.5
        rows.append((DEVICES[(i // len(TAGS)) % len(DEVICES)],
                     Sample(tag, t0 + i * 1000, v, Quality.GOOD)))
    return rows


def rate(fn, rows: list[DeviceSample], batch: int, desc: str) -> float:
    t = time.perf_counter()
    for i in tqdm(range(0, len(rows), batch), desc=desc, unit="batch", disable=None,
                  leave=False):
        fn(rows[i:i + batch])
    return len(rows) / (time.perf_counter() - t)


def naive(url: str, db: str, rows: list[DeviceSample]) -> float:
    from influxdb_client import Point, WritePrecision

    http = httpx.Client(base_url=url)
    t = time.perf_counter()
    for device, s in tqdm(rows, desc="naive writer", unit="sample", disable=None, leave=False):
        p = Point("samples").time(s.ts, WritePrecision.NS).field("quality", str(s.quality))
        for k in ("enterprise", "site", "area", "line", "device"):
            p = p.tag(k, getattr(device, k))
        p = p.tag("tag", s.tag)
        p = p.field("value_str", s.value) if isinstance(s.value, str) else \
            p.field("value", float(s.value))
        http.post("/write", params={"db": db, "precision": "ns"},
                  content=p.to_line_protocol()).raise_for_status()
    http.close()
    return len(rows) / (time.perf_counter() - t)


class TimedStore(SqliteStore):
    """The embedded store, noting when each sample became durable (for latency)."""

    latencies_ns: list[int]

    def write(self, rows, seqs=None, closed=None):  # type: ignore[no-untyped-def]
        out = super().write(rows, seqs, closed)
        now = time.time_ns()
        self.latencies_ns.extend(now - s.ts for _, s in rows)
        return out


def message(m: int, per_msg: int, seq: int, ts0: int) -> tuple[str, bytes]:
    samples = tuple(Sample(TAGS[i % 5], ts0 + i, float(i)) for i in range(per_msg))
    return DEVICES[m % len(DEVICES)].topic("data"), Batch("bench", seq, samples).encode()


SP_GROUP, SP_METRICS = "bench", [f"m{i}" for i in range(5)]  # aliases unique in the node


def sparkplug_messages(n_msgs: int, per_msg: int, node: str, ts0: int) -> list[tuple[str, bytes]]:
    """The Sparkplug twin of ``message``: an NBIRTH, a DBIRTH per device used (its five
    Double metrics' values stored too: ``sparkplug_births``), then ``n_msgs`` DDATA of
    ``per_msg`` metrics by alias, seq 0-255 running on over all of them."""
    out, seq, ms0 = [], 0, ts0 // 10**6

    def payload(metrics: list[tuple[str | None, int, int, float]]) -> bytes:
        nonlocal seq
        p = Payload(timestamp=ms0, seq=seq)
        seq = (seq + 1) % 256
        for name, alias, ts_ms, v in metrics:
            m = p.metrics.add(alias=alias, timestamp=ts_ms, datatype=DT.Double)
            if name is not None:
                m.name = name
            set_value(m, DT.Double, v)
        return p.SerializeToString()

    out.append((f"spBv1.0/{SP_GROUP}/NBIRTH/{node}", payload([])))
    k = len(SP_METRICS)  # device d's metric i: alias d * k + i + 1
    for d, dev in enumerate(DEVICES[:sparkplug_births(n_msgs) // k]):
        out.append((f"spBv1.0/{SP_GROUP}/DBIRTH/{node}/{dev.device}",
                    payload([(n, d * k + i + 1, ms0, 0.0) for i, n in enumerate(SP_METRICS)])))
    for m in range(n_msgs):
        d = m % len(DEVICES)
        out.append((f"spBv1.0/{SP_GROUP}/DDATA/{node}/{DEVICES[d].device}", payload(
            [(None, d * k + i % k + 1, ms0 + m * per_msg + i + 1, float(i))
             for i in range(per_msg)])))
    return out


def sparkplug_births(n_msgs: int) -> int:
    return min(n_msgs, len(DEVICES)) * len(SP_METRICS)


def publish(port: int, n_msgs: int, per_msg: int, per_s: float | None, seq0: int,
            ready: Any, go: Any, sparkplug: bool = False, live: bool = False) -> None:
    """Child process: flood (``per_s`` None) or pace ``n_msgs`` data messages at QoS 1;
    ``sparkplug``: a flood of Sparkplug B messages from edge node ``n<seq0>``; ``live``: a
    flood stamped when sent (else an hour ago, made before the clock starts)."""
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{seq0}")
    pub.max_inflight_messages_set(1000)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    ts0 = time.time_ns() - 3600 * 10**9 + seq0 * 10**6
    msgs = sparkplug_messages(n_msgs, per_msg, f"n{seq0}", ts0) if sparkplug else \
        [message(m, per_msg, seq0 + m, ts0 + m * 10**6) for m in range(n_msgs)] \
        if per_s is None and not live else []
    ready.set()
    go.wait(60)
    start = time.monotonic()
    infos = []
    for m in range(len(msgs) if sparkplug else n_msgs):
        if per_s is not None:  # stamped when "the device changed", sent on schedule
            time.sleep(max(0.0, start + m / per_s - time.monotonic()))
            topic, payload = message(m, per_msg, seq0 + m, time.time_ns())
        elif live:
            topic, payload = message(m, per_msg, seq0 + m, time.time_ns())
        else:
            topic, payload = msgs[m]
        infos.append(pub.publish(topic, payload, qos=1))
    for info in infos:
        info.wait_for_publish(60)
    pub.disconnect()
    pub.loop_stop()


def maintain(path: str, stop: Any, rounds: Any, interval_s: float) -> None:
    """Child process: the roll-up maintainer on the benchmark's store, a round every
    ``interval_s``."""
    from shopfloor.server import kernels
    from shopfloor.server.registry import Registry, RegistryModel
    from shopfloor.server.rollup.buckets import SqliteBuckets
    from shopfloor.server.rollup.maintainer import Maintainer
    from shopfloor.server.rollup.quantities import Definition

    tree: dict = {}
    for d in DEVICES:
        tree.setdefault(d.area, {}).setdefault(d.line, []).append(
            {"id": d.device, "ideal_cycle_time_s": 1.0})
    registry = Registry(RegistryModel.model_validate({"cluster": {"id": "c"}, "enterprises": [
        {"id": "acme", "sites": [{"id": "plant1", "workshops": [
            {"id": a, "lines": [{"id": ln, "equipment": eq} for ln, eq in lines.items()]}
            for a, lines in tree.items()]}]}]}))
    d = Definition(30 * 10**9, 10 * 10**9, 300 * 10**9)  # small stops: 10 s (the lag)
    kernels.warm_up()  # as the server does before it starts
    store = SqliteStore(path)
    m = Maintainer(store, store, SqliteBuckets(path, d.fingerprint()),
                   lambda: registry.equipment_under(registry.root), d,
                   settle_s=0, interval_s=interval_s)
    busy = 0.0
    while not stop.is_set():
        busy += m.round().seconds
        rounds.value += 1
        stop.wait(interval_s)
    cpu = os.times()
    print(f"roll-up maintainer: {busy:.1f} s in rounds, {cpu.user + cpu.system:.1f} s CPU",
          file=sys.stderr)


def through_gateway(tmp: Path, port: int, influx: services.InfluxDB1, n_msgs: int,
                    per_msg: int, per_s: float | None, seq0: int,
                    stores: str = "both", rollups: float | None = None,
                    sparkplug: bool = False, live: bool = False) -> tuple[float, list[int]]:
    """(samples/s, latencies in ns): flood when ``per_s`` is None, else paced;
    ``sparkplug``: the flood as Sparkplug B (the births' values counted in); ``rollups``:
    with the roll-up maintainer, a round every that many seconds."""
    path = tmp / f"gw{seq0}.db"
    cfg = parse_config({"mqtt": {"host": "127.0.0.1", "port": port},
                        "client_id": f"bench-gw-{seq0}", "share_group": None,
                        "batch": {"max_samples": 20_000, "max_interval_s": 0.05},
                        "queue_max_messages": 2000,
                        "store": {"embedded": {"path": str(path)}},
                        **({"sparkplug": {"devices": [
                            {"group": SP_GROUP, "node": "*", "device": "*",
                             "asset": "acme/plant1/sp/line0/{device}"}]}} if sparkplug else {}),
                        }, GatewayConfig)
    store = TimedStore(path)
    store.latencies_ns = []
    influx_w = InfluxV1Writer(InfluxConfig(version=1, url=influx.url, database=influx.database))
    # the embedded store, when used, is the seq ledger: written last, as open_stores does
    writers, ledger = {"both": ([influx_w], store), "influx": ([influx_w], None),
                       "embedded": ([], store)}[stores]
    gw = Gateway(cfg, writers=writers, ledger=ledger)
    gw.start()
    assert gw.wait_ready(10)
    # The publisher is another process (as an edge agent is): it must not share our GIL.
    ctx = mp.get_context("spawn")
    stop_maintainer, rounds = ctx.Event(), ctx.Value("i", 0)
    if rollups:  # the server's maintainer, as a process of its own, on the same file
        maintainer = ctx.Process(target=maintain, args=(str(path), stop_maintainer, rounds,
                                                        rollups))
        maintainer.start()
        while rounds.value == 0:  # its first round: the machines seen, nothing to build
            time.sleep(0.05)
    ready, go = ctx.Event(), ctx.Event()
    child = ctx.Process(target=publish, args=(port, n_msgs, per_msg, per_s, seq0, ready, go,
                                              sparkplug, live))
    child.start()
    if not ready.wait(60):
        raise RuntimeError("the publisher process did not start")
    t = time.perf_counter()
    go.set()
    total = n_msgs * per_msg + (sparkplug_births(n_msgs) if sparkplug else 0)
    limit_s = max(120.0, total / 5_000)  # the flood runs at 30,000-50,000 samples/s
    deadline = time.monotonic() + limit_s
    with tqdm(total=total, desc=f"through the gateway ({'paced' if per_s else 'flood'})",
              unit="sample", disable=None, leave=False) as bar:
        while (stored := gw.stats().samples_stored) < total and time.monotonic() < deadline:
            bar.update(stored - bar.n)
            time.sleep(0.005)
    elapsed = time.perf_counter() - t
    stored = gw.stats().samples_stored
    gw.stop()
    child.join(30)
    if rollups:
        stop_maintainer.set()
        maintainer.join(60)
        print(f"roll-up maintainer: {rounds.value - 1} rounds after its first",
              file=sys.stderr)
    if stored < total:
        raise RuntimeError(f"only {stored} of {total} samples stored in {limit_s:.0f} s")
    return total / elapsed, store.latencies_ns


def main() -> None:
    args = parse_args(__doc__, samples=(200_000, "samples per throughput run"),
                      naive=(2_000, "samples for the naive writer"),
                      rollup_samples=(3_000_000, "samples of each roll-up maintenance run"),
                      rollup_interval_s=(10.0, "the maintainer's round interval"),
                      rollup_pairs=(2, "runs without and with maintenance, in turn"))
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        with services.mosquitto(tmp / "mq") as broker, services.influxdb1(tmp / "influx") as ix:
            rows = make_rows(args.samples, time.time_ns() - 7200 * 10**9)
            emb = SqliteStore(tmp / "w.db")
            r_emb = rate(emb.write, rows, 5000, "embedded store")
            w = InfluxV1Writer(InfluxConfig(version=1, url=ix.url, database=ix.database))
            r_inf = rate(w.write, rows, 5000, "InfluxDB writer")
            old = make_rows(args.naive, time.time_ns() - 9000 * 10**9)
            r_naive = naive(ix.url, ix.database, old)
            n_msgs = args.samples // 500
            r_gwe, _ = through_gateway(tmp, broker.port, ix, n_msgs, 500, None, 1,
                                       stores="embedded")
            r_gwi, _ = through_gateway(tmp, broker.port, ix, n_msgs, 500, None, 10**5,
                                       stores="influx")
            r_gw, _ = through_gateway(tmp, broker.port, ix, n_msgs, 500, None, 2 * 10**5)
            _, lat = through_gateway(tmp, broker.port, ix, 1000, 50, 100.0, 10**6)
            r_sp, _ = through_gateway(tmp, broker.port, ix, n_msgs, 500, None, 5 * 10**5,
                                      stores="embedded", sparkplug=True)
            n_long = args.rollup_samples // 500
            plain, roll = [], []
            for k in range(args.rollup_pairs):
                seq = (3 + 2 * k) * 10**5
                plain.append(through_gateway(tmp, broker.port, ix, n_long, 500, None, seq,
                                             stores="embedded", live=True)[0])
                roll.append(through_gateway(tmp, broker.port, ix, n_long, 500, None,
                                            seq + 10**5, stores="embedded",
                                            rollups=args.rollup_interval_s, live=True)[0])
    r_plain, r_roll = statistics.median(plain), statistics.median(roll)
    lat_ms = sorted(x / 1e6 for x in lat)
    p99 = lat_ms[int(len(lat_ms) * 0.99) - 1]
    print(f"\n{'path':<58}{'samples/s':>12}{'x naive':>10}")
    for name, r in (("embedded store (SqliteStore.write, 5k batches)", r_emb),
                    ("InfluxDB 1.6 (gateway writer: /write, 5k lines, gzip)", r_inf),
                    ("gateway end to end: MQTT -> decode -> embedded store", r_gwe),
                    ("gateway end to end: Sparkplug B -> host -> embedded store", r_sp),
                    ("gateway end to end: MQTT -> decode -> InfluxDB", r_gwi),
                    ("gateway end to end: MQTT -> decode -> InfluxDB + embedded", r_gw),
                    ("naive: influxdb-client Point + 1 sync HTTP per sample", r_naive)):
        print(f"{name:<58}{r:>12,.0f}{r / r_naive:>10.1f}")
    print(f"\nlatency sample made -> durable in both stores ({len(lat_ms)} samples, "
          f"100 msg/s x 50): median {statistics.median(lat_ms):.1f} ms, p99 {p99:.1f} ms")
    print(f"\ngateway -> embedded store, {n_long * 500:,} samples, median of "
          f"{args.rollup_pairs} runs each (without: {', '.join(f'{r:,.0f}' for r in plain)}; "
          f"with: {', '.join(f'{r:,.0f}' for r in roll)}): {r_plain:,.0f} samples/s without "
          f"roll-up maintenance, {r_roll:,.0f} with it (a round every "
          f"{args.rollup_interval_s:g} s): {(1 - r_roll / r_plain) * 100:+.1f} % cost")


if __name__ == "__main__":
    main()
