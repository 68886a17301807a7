"""The embedded SQLite store: round trip, carry-in, idempotence, concurrency, durability."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from shopfloor.config import ConfigError, parse_config
from shopfloor.contract import DevicePath, Sample
from shopfloor.storage import (
    SampleReader,
    SampleWriter,
    StoreConfig,
    open_reader,
    open_writers,
)
from shopfloor.storage.sqlite import SqliteStore

M1 = DevicePath("acme", "plant1", "machining", "line1", "cnc-01")
M2 = DevicePath("acme", "plant1", "machining", "line1", "press-01")
T0 = 1_763_779_200_000_000_000
S = 10**9


@pytest.fixture
def store(tmp_path):
    with SqliteStore(tmp_path / "store.db") as s:
        yield s


def test_protocols(store):
    assert isinstance(store, SampleReader)
    assert isinstance(store, SampleWriter)


def test_failed_write_leaves_nothing(store):
    good = [(M2, Sample("new_tag", T0, 1.0))]
    with pytest.raises(AttributeError):  # a broken row fails the whole batch
        store.write(good + [(M1, None)])  # type: ignore[list-item]
    assert store.count() == 0
    assert len(store.read(M2, "new_tag", 0, T0 + 1)) == 0
    store.write(good)  # the series created in the failed transaction was not cached
    assert store.count(M2) == 1
    assert store.read(M2, "new_tag", 0, T0 + 1).value.tolist() == [1.0]


def test_second_connection_and_threads_see_writes(tmp_path):
    path = tmp_path / "store.db"
    writer = SqliteStore(path)
    reader = SqliteStore(path)  # as the server in another process would open it
    stop = threading.Event()
    errors: list[BaseException] = []
    seen: list[list[int]] = [[], []]

    def read_loop(k: int) -> None:
        try:
            while not stop.is_set():
                seen[k].append(reader.count(M1))
                reader.read(M1, "v", 0, T0 * 2)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=read_loop, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for b in range(20):
        writer.write([(M1, Sample("v", T0 + b * 100 + i, float(i))) for i in range(100)])
    stop.set()
    for t in threads:
        t.join(10)
    assert not errors
    for counts in seen:  # each reader sees whole batches, never going backwards
        assert counts == sorted(counts) and all(c % 100 == 0 for c in counts)
    assert reader.count(M1) == 2000
    assert len(reader.read(M1, "v", 0, T0 * 2)) == 2000
    writer.close()
    reader.close()


def test_durable_when_write_returns(tmp_path):
    """A writer SIGKILLed right after write() returns loses nothing."""
    path = tmp_path / "store.db"
    script = textwrap.dedent(f"""
        import sys, time
        from shopfloor.contract import DevicePath, Sample
        from shopfloor.storage.sqlite import SqliteStore
        store = SqliteStore({str(path)!r})
        d = DevicePath(*{tuple(M1.asset_id.split('/'))!r})
        for b in range(5):
            store.write([(d, Sample("v", {T0} + b * 1000 + i, float(i))) for i in range(1000)])
        print("written", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "written"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    with SqliteStore(path) as reopened:
        assert reopened.count() == 5000
        s = reopened.read(M1, "v", T0, T0 + 5000)
        assert s.ts.tolist() == list(range(T0, T0 + 5000))


def test_store_config(tmp_path):
    cfg = parse_config({"embedded": {"path": str(tmp_path / "s.db")}}, StoreConfig)
    writers = open_writers(cfg)
    assert len(writers) == 1
    writers[0].write([(M1, Sample("v", T0, 1.5))])
    writers[0].close()
    reader = open_reader(cfg)
    assert reader.read(M1, "v", T0, T0 + 1).value.tolist() == [1.5]
    with pytest.raises(ConfigError, match="at least one store"):
        parse_config({}, StoreConfig)
    with pytest.raises(ConfigError, match="embedded.pathx"):
        parse_config({"embedded": {"pathx": "x"}}, StoreConfig)


def test_retention_deletes_old_keeps_recent_and_newest(store):
    day = 86_400 * S
    cutoff = T0 - 30 * day
    old_a = [(M1, Sample("a", cutoff - 40 * day + i * S, float(i))) for i in range(2500)]
    at_cutoff = [(M1, Sample("a", cutoff, -1.0))]  # ts == cutoff: kept
    new_a = [(M1, Sample("a", T0 + i * S, float(i))) for i in range(10)]
    only_old = [(M1, Sample("b", cutoff - day - i * S, "IDLE")) for i in range(5)]
    recent = [(M2, Sample("c", T0 - i * S, 1.0)) for i in range(7)]
    store.write(old_a + at_cutoff + new_a + only_old + recent, seqs={"edge-1": [0, 1, 2]})
    store.write([], seqs={"edge-1": [5]})
    ranges = store.seq_ranges()
    assert store.count() == 2500 + 1 + 10 + 5 + 7

    done = [store.delete_expired(cutoff, 1000) for _ in range(4)]
    # bounded batches: 1000, 1000, then the last 500 of `a` and 4 of `b` (its newest stays)
    assert done == [1000, 1000, 504, 0]
    assert store.count() == 1 + 10 + 1 + 7
    assert store.count(M2) == 7
    a = store.read(M1, "a", 0, T0 * 2)
    assert a.ts.tolist() == [cutoff] + [T0 + i * S for i in range(10)]
    b = store.read(M1, "b", T0, T0 + 1)  # the carried-in value survives retention
    assert b.ts.tolist() == [cutoff - day] and b.text == ["IDLE"]
    assert store.seq_ranges() == ranges == {"edge-1": [(0, 2), (5, 5)]}  # no false gaps
    store.write(old_a[:3])  # a late (replayed) old sample is stored, and expires again
    assert store.delete_expired(cutoff, 1000) == 3 and store.count() == 19


def test_retention_config():
    cfg = parse_config({"embedded": {"path": "x.db", "retention_days": 30}}, StoreConfig)
    assert cfg.embedded is not None and cfg.embedded.retention_ns == 30 * 86_400 * S
    assert parse_config({"embedded": {"path": "x.db"}}, StoreConfig).embedded.retention_ns \
        is None
    with pytest.raises(ConfigError, match="retention_days"):
        parse_config({"embedded": {"path": "x.db", "retention_days": 0}}, StoreConfig)


def test_64_bit_integers_are_stored_exactly(store, tmp_path):
    """A 64-bit counter is kept as an INTEGER, not rounded to a double (issue 13)."""
    import sqlite3

    dev = DevicePath("e", "s", "a", "l", "m")
    big = 2**62 + 1  # a double would store 2**62
    store.write([(dev, Sample("energy", 1, big)), (dev, Sample("load", 2, 1.5))])
    with sqlite3.connect(tmp_path / "store.db") as conn:
        rows = dict(conn.execute("SELECT ts, value FROM samples").fetchall())
    assert rows == {1: big, 2: 1.5} and type(rows[1]) is int
    assert store.read(dev, "energy", 0, 10).value.tolist() == [float(big)]  # kernels: float64


def test_retention_records_where_raw_data_is_complete(tmp_path):
    from shopfloor.contract import DevicePath, Sample
    from shopfloor.storage.sqlite import SqliteStore

    dev = DevicePath("acme", "p", "a", "l", "m")
    with SqliteStore(tmp_path / "s.db") as store:
        store.write([(dev, Sample("state", t, "IDLE")) for t in (1, 2, 3, 10)])
        assert store.delete_expired(5, max_rows=1) == 1 and store.raw_from() is None
        assert store.delete_expired(5, max_rows=100) == 2  # the pass ends
        assert store.raw_from() == 5


def test_connections_of_ended_threads_are_closed(tmp_path):
    """A server's worker threads come and go (anyio ends idle ones after 10 s); each
    used to leave its connection open: two files per thread, for ever (found by
    benchmarks/soak.py, issue 17)."""
    import os
    import threading

    from shopfloor.contract import DevicePath, Sample

    dev = DevicePath("acme", "plant1", "machining", "line1", "cnc-01")
    store = SqliteStore(tmp_path / "s.db")
    store.write([(dev, Sample("state", 1, "IDLE"))])

    def read() -> None:
        assert len(store.read(dev, "state", 0, 10).ts) == 1

    def open_files() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_files()
    for _ in range(30):
        t = threading.Thread(target=read)
        t.start()
        t.join()
    assert open_files() - before <= 4  # the last thread's connection (database, WAL)
    store.close()
