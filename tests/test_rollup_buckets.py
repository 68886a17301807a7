"""The roll-up bucket store's contract, run against both backends (the embedded store's
tables and InfluxDB 1.6 measurements): upserts, sums per device and per bucket start,
machine and maintainer state, pruning; buckets of another definition are never seen."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pytest
import services
from hypothesis import given
from hypothesis import strategies as st

from shopfloor.server.rollup.buckets import (
    HOUR,
    MINUTE,
    BucketStore,
    DeviceState,
    MaintainerState,
    SqliteBuckets,
)
from shopfloor.server.rollup.influx_buckets import InfluxBuckets, pack, unpack
from shopfloor.server.rollup.quantities import FLOAT_FIELDS, INT_FIELDS, Quantities
from shopfloor.storage import InfluxConfig

T0 = 1_764_547_200 * 10**9  # a whole day, UTC
A, B = "acme/p1/w/l1/m1", "acme/p1/w/l1/m2"
_dbs = itertools.count()


@pytest.fixture(scope="module")
def influxd(tmp_path_factory) -> Iterator[services.InfluxDB1]:
    with services.influxdb1(tmp_path_factory.mktemp("influxdb")) as db:
        yield db


@pytest.fixture(params=["sqlite", "influxdb1"])
def open_store(request, tmp_path):
    """``open_store(definition)``: a bucket store on one database per test."""
    opened: list[BucketStore] = []
    cfg = None
    if request.param == "influxdb1":
        db, name = request.getfixturevalue("influxd"), f"r{next(_dbs)}"
        db.query(f'CREATE DATABASE "{name}"')
        cfg = InfluxConfig(version=1, url=db.url, database=name)

    def open_(definition: str = "d1") -> BucketStore:
        store: BucketStore = SqliteBuckets(tmp_path / "store.db", definition) if cfg is None \
            else InfluxBuckets(cfg, definition)
        opened.append(store)
        return store

    yield open_
    for s in opened:
        s.close()


def rows(n: int, seed: int) -> Quantities:
    rng = np.random.default_rng(seed)
    return Quantities(rng.integers(0, 10**12, size=(n, len(INT_FIELDS))),
                      rng.integers(0, 1000, size=(n, len(FLOAT_FIELDS))) / 4)


def test_buckets_sum_per_device_and_per_start(open_store):
    store = open_store()
    starts = T0 + np.arange(4, dtype=np.int64) * MINUTE
    qa, qb = rows(4, 1), rows(4, 2)
    store.put(A, MINUTE, starts, qa)
    store.put(B, MINUTE, starts, qb)
    store.put(A, MINUTE, starts[:1], rows(1, 3))  # an upsert: the bucket recomputed
    qa.ints[0], qa.floats[0] = rows(1, 3).ints[0], rows(1, 3).floats[0]
    by_dev = store.sums(MINUTE, T0, T0 + 3 * MINUTE, None, "device")
    assert set(by_dev) == {A, B}
    want = Quantities(qa.ints[:3], qa.floats[:3]).total()
    assert by_dev[A].ints.tolist() == want.ints.tolist()
    np.testing.assert_allclose(by_dev[A].floats, want.floats)
    by_start = store.sums(MINUTE, T0, T0 + 4 * MINUTE, [A, B], "start")
    assert sorted(by_start) == starts.tolist()
    both = Quantities(np.vstack([qa.ints[2:3], qb.ints[2:3]]),
                      np.vstack([qa.floats[2:3], qb.floats[2:3]])).total()
    assert by_start[int(starts[2])].ints.tolist() == both.ints.tolist()
    assert set(store.sums(MINUTE, T0, T0 + HOUR, [B], "device")) == {B}
    assert store.sums(HOUR, T0, T0 + HOUR, None, "device") == {}  # another resolution


def test_many_devices_some_wanted(open_store):
    """More devices than a query names (they are picked from all the rows instead)."""
    store = open_store()
    starts = T0 + np.arange(3, dtype=np.int64) * HOUR
    put = {f"acme/p1/w/l{i % 7}/m{i}": rows(3, 10 + i) for i in range(60)}
    for device, q in put.items():
        store.put(device, HOUR, starts, q)
    wanted = sorted(put)[:55]
    by_dev = store.sums(HOUR, T0, T0 + 2 * HOUR, wanted, "device")
    assert sorted(by_dev) == wanted
    for device in wanted:
        want = Quantities(put[device].ints[:2], put[device].floats[:2]).total()
        assert by_dev[device].ints.tolist() == want.ints.tolist()
        np.testing.assert_allclose(by_dev[device].floats, want.floats)
    by_start = store.sums(HOUR, T0, T0 + 3 * HOUR, wanted, "start")
    assert sorted(by_start) == starts.tolist()
    last = Quantities(np.vstack([put[d].ints[2:3] for d in wanted]),
                      np.vstack([put[d].floats[2:3] for d in wanted])).total()
    assert by_start[int(starts[2])].ints.tolist() == last.ints.tolist()
    np.testing.assert_allclose(by_start[int(starts[2])].floats, last.floats)


def test_state_and_definitions(open_store):
    store = open_store("d1")
    store.put(A, MINUTE, np.array([T0]), rows(1, 4))
    store.set_device(A, DeviceState("fp1", T0, T0 + HOUR))
    store.set_device(A, DeviceState("fp1", T0, T0 + 2 * HOUR))  # the newest counts
    store.set_maintainer(MaintainerState("s1", 5, T0))
    store.set_maintainer(MaintainerState("s1", 9, T0 + 1))
    assert store.devices() == {A: DeviceState("fp1", T0, T0 + 2 * HOUR)}
    assert store.maintainers() == [MaintainerState("s1", 9, T0 + 1)]
    other = open_store("d2")  # another definition: nothing of d1's
    assert other.devices() == {} and other.maintainers() == []
    assert other.sums(MINUTE, T0, T0 + HOUR, None, "device") == {}


def test_prune_drops_only_old_buckets_of_one_resolution(open_store):
    store = open_store()
    store.put(A, MINUTE, T0 + np.arange(3, dtype=np.int64) * MINUTE, rows(3, 5))
    store.put(A, HOUR, np.array([T0]), rows(1, 6))
    store.prune(MINUTE, T0 + 2 * MINUTE)
    assert sorted(store.sums(MINUTE, T0, T0 + HOUR, [A], "start")) == [T0 + 2 * MINUTE]
    assert set(store.sums(HOUR, T0, T0 + HOUR, [A], "device")) == {A}


_i64 = st.integers(-2**63, 2**63 - 1)
_f64 = st.floats(allow_nan=False)


@given(st.lists(st.tuples(st.lists(_i64, min_size=len(INT_FIELDS), max_size=len(INT_FIELDS)),
                          st.lists(_f64, min_size=len(FLOAT_FIELDS),
                                   max_size=len(FLOAT_FIELDS))), max_size=20))
def test_packed_buckets_read_back_exactly(rows):
    """InfluxDB keeps a bucket as one string field; every int64 and float64 comes back
    bit for bit (a float as text would round, an int64 as a float lose its low bits)."""
    q = Quantities(np.array([r[0] for r in rows], np.int64).reshape(-1, len(INT_FIELDS)),
                   np.array([r[1] for r in rows], np.float64).reshape(-1, len(FLOAT_FIELDS)))
    back = unpack(pack(q))
    assert back.ints.tolist() == q.ints.tolist()
    assert back.floats.tobytes() == q.floats.tobytes()


def test_packed_bucket_of_another_width_is_refused():
    text = pack(Quantities.zeros(1))[0]
    with pytest.raises(ValueError, match="values wide"):
        unpack([text[:-12]])
