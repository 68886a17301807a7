"""The read/write contract of DESIGN.md "Store schema", run against every backend."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pytest
import services

from shopfloor.contract import DevicePath, Quality, Sample
from shopfloor.storage import InfluxConfig, SampleReader, SampleWriter, influx
from shopfloor.storage.influx import InfluxReader, InfluxV1Writer
from shopfloor.storage.sqlite import SqliteStore

T0 = 1_763_779_200_000_000_000
S = 10**9
_db_numbers = itertools.count()


@pytest.fixture(scope="module")
def influxd(tmp_path_factory) -> Iterator[services.InfluxDB1]:
    with services.influxdb1(tmp_path_factory.mktemp("influxdb")) as db:
        yield db


class Backend:
    def __init__(self, writer: SampleWriter, reader: SampleReader):
        self.writer, self.reader = writer, reader


@pytest.fixture(params=["sqlite", "influxdb1"])
def backend(request, tmp_path) -> Iterator[Backend]:
    if request.param == "sqlite":
        store = SqliteStore(tmp_path / "store.db")
        yield Backend(store, store)
        store.close()
        return
    db: services.InfluxDB1 = request.getfixturevalue("influxd")
    name = f"t{next(_db_numbers)}"  # a fresh database per test on the shared server
    db.query(f'CREATE DATABASE "{name}"')
    cfg = InfluxConfig(version=1, url=db.url, database=name, timeout_s=10)
    writer, reader = InfluxV1Writer(cfg), InfluxReader(cfg)
    yield Backend(writer, reader)
    writer.close()
    reader.close()


M1 = DevicePath("acme", "plant1", "machining", "line1", "cnc-01")
M2 = DevicePath("acme", "plant1", "machining", "line1", "press-01")
M3 = DevicePath("acme", "plant2", "assembly", "line9", "robot-1")


def test_round_trip_with_carry_in(backend):
    w, r = backend.writer, backend.reader
    w.write([
        (M1, Sample("state", T0, "IDLE")),
        (M1, Sample("state", T0 + 5 * S, "PRODUCING", Quality.UNCERTAIN)),
        (M1, Sample("state", T0 + 9 * S, "DOWN", Quality.BAD)),
        (M1, Sample("part_count", T0 + 6 * S, 41)),
        (M1, Sample("part_count", T0 + 7 * S, 2**32 - 1)),
        (M1, Sample("load", T0 + 7 * S, -12.75)),
        (M1, Sample("running", T0 + 7 * S, True)),
        (M1, Sample("running", T0 + 8 * S, False)),
        (M2, Sample("state", T0 + 1 * S, "SETUP")),
    ])
    s = r.read(M1, "state", T0 + 6 * S, T0 + 10 * S)
    assert s.ts.dtype == np.int64 and s.value.dtype == np.float64
    assert s.ts.tolist() == [T0 + 5 * S, T0 + 9 * S]  # the carried-in sample first
    assert s.text == ["PRODUCING", "DOWN"]
    assert np.isnan(s.value).all()
    # a sample exactly at the start is in the window; end is exclusive
    assert r.read(M1, "state", T0 + 5 * S, T0 + 9 * S).ts.tolist() == [T0, T0 + 5 * S]
    assert r.read(M1, "state", T0 - S, T0 + 5 * S).text == ["IDLE"]  # nothing to carry in
    assert r.read(M1, "state", T0 + 20 * S, T0 + 30 * S).text == ["DOWN"]  # only carry-in
    assert len(r.read(M1, "state", T0 - 9 * S, T0 - S)) == 0

    c = r.read(M1, "part_count", T0, T0 + 100 * S)
    assert c.value.tolist() == [41.0, float(2**32 - 1)] and c.text == [None, None]
    assert r.read(M1, "load", T0, T0 + 100 * S).value.tolist() == [-12.75]
    assert r.read(M1, "running", T0, T0 + 100 * S).value.tolist() == [1.0, 0.0]
    assert len(r.read(M1, "nope", 0, T0 + 100 * S)) == 0
    assert len(r.read(M3, "state", 0, T0 + 100 * S)) == 0

    assert r.count() == 9
    assert r.count(M1) == 8
    assert r.count(M2) == 1
    assert r.count(M3) == 0
    assert r.last_seen() == {M1.asset_id: T0 + 9 * S, M2.asset_id: T0 + S}


def test_duplicates_are_no_ops(backend):
    w, r = backend.writer, backend.reader
    rows = [(M1, Sample("part_count", T0 + i * 1000, i)) for i in range(200)]
    rows += [(M3, Sample("state", T0 + i * 1000, "PRODUCING")) for i in range(50)]
    w.write(rows)
    w.write(rows)
    w.write(rows[10:20] + rows[10:20])
    assert r.count() == 250
    assert r.count(M1) == 200
    got = r.read(M1, "part_count", T0, T0 + 200 * 1000)
    assert got.value.tolist() == [float(i) for i in range(200)]
    assert got.ts.tolist() == [T0 + i * 1000 for i in range(200)]
    # same series + time: the newest write wins, still one sample
    w.write([(M1, Sample("part_count", T0, 7))])
    assert r.count() == 250
    assert r.read(M1, "part_count", T0, T0 + 1).value.tolist() == [7.0]
    assert r.last_seen() == {M1.asset_id: T0 + 199_000, M3.asset_id: T0 + 49_000}


def test_large_window_pages(backend, monkeypatch):
    monkeypatch.setattr(influx, "READ_PAGE", 97)  # InfluxDB reads page through the window
    w, r = backend.writer, backend.reader
    n = 1234
    w.write([(M2, Sample("v", T0 + i, float(i))) for i in range(n)])
    s = r.read(M2, "v", T0 + 100, T0 + n)
    assert s.ts.tolist() == list(range(T0 + 99, T0 + n))
    assert s.value.tolist() == [float(i) for i in range(99, n)]
    assert r.count(M2) == n


def test_read_with_context(backend):
    # a counter: good, bad, good, good | window | good, bad, good
    w, r = backend.writer, backend.reader
    quality = [Quality.GOOD, Quality.BAD, Quality.GOOD, Quality.GOOD, Quality.GOOD,
               Quality.GOOD, Quality.BAD, Quality.GOOD]
    w.write([(M2, Sample("part_count", T0 + i * S, float(i), q))
             for i, q in enumerate(quality)])
    lo, hi = T0 + 4 * S, T0 + 5 * S  # holds sample 4
    assert r.read(M2, "part_count", lo, hi).value.tolist() == [3, 4]  # the default: 1 before
    got = r.read(M2, "part_count", lo, hi, before=3, after=2)
    assert got.value.tolist() == [1, 2, 3, 4, 5, 6]
    got = r.read(M2, "part_count", lo, hi, before=3, after=2, good_context=True)
    assert got.value.tolist() == [0, 2, 3, 4, 5, 7]  # bad context samples passed over
    assert got.good.tolist() == [True] * 6
    assert r.read(M2, "part_count", lo, hi, before=0, after=0).value.tolist() == [4]
    assert r.read(M2, "part_count", T0 + 20 * S, T0 + 30 * S, before=2, after=1,
                  good_context=True).value.tolist() == [5, 7]


def test_every_write_is_logged_per_device(backend):
    w, r = backend.writer, backend.reader
    w.write([(M1, Sample("state", T0 + 5 * S, "IDLE")), (M1, Sample("part_count", T0, 1.0)),
             (M2, Sample("state", T0 + 2 * S, "DOWN"))])
    first, spans = r.written_since(0)
    assert spans == {M1.asset_id: (T0, T0 + 5 * S), M2.asset_id: (T0 + 2 * S, T0 + 2 * S)}
    assert r.written_since(first) == (first, {})
    w.write([(M1, Sample("state", T0 - 9 * S, "IDLE"))])  # late data
    second, spans = r.written_since(first)
    assert second > first and spans == {M1.asset_id: (T0 - 9 * S, T0 - 9 * S)}
    assert r.written_since(0)[1][M1.asset_id] == (T0 - 9 * S, T0 + 5 * S)
    r.prune_write_log(first)
    assert r.written_since(0) == (second, {M1.asset_id: (T0 - 9 * S, T0 - 9 * S)})


def test_first_seen_and_raw_from(backend):
    w, r = backend.writer, backend.reader
    w.write([(M1, Sample("state", T0 + 5 * S, "IDLE")), (M1, Sample("part_count", T0, 1.0)),
             (M2, Sample("state", T0 + 2 * S, "DOWN"))])
    assert r.first_seen() == {M1.asset_id: T0, M2.asset_id: T0 + 2 * S}
    assert r.raw_from() is None  # nothing deleted (InfluxDB: an infinite retention policy)


def test_markers_of_every_device_at_once(backend):
    w, r = backend.writer, backend.reader
    w.write([(M1, Sample("clock_skew_s", T0, 3600.0)),
             (M1, Sample("clock_skew_s", T0 + 9 * S, 0.0)),
             (M1, Sample("clock_skew_s", T0 + 20 * S, -5.0)), (M1, Sample("state", T0, "IDLE")),
             (M2, Sample("clock_skew_s", T0 + 12 * S, 2.0)), (M3, Sample("state", T0, "IDLE"))])
    got = r.markers("clock_skew_s", T0 + 10 * S, T0 + 20 * S)
    assert sorted(got) == [M1.asset_id, M2.asset_id]  # M3 has none
    assert got[M1.asset_id].ts.tolist() == [T0 + 9 * S]  # the one in force at the start
    assert got[M1.asset_id].value.tolist() == [0.0]
    assert got[M2.asset_id].ts.tolist() == [T0 + 12 * S]
    assert got[M2.asset_id].value.tolist() == [2.0]
    assert r.markers("clock_skew_s", T0 - 10 * S, T0) == {}
    assert r.markers("no_such_tag", T0, T0 + 60 * S) == {}
