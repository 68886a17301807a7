"""``BucketStore`` in InfluxDB, written through the store's own writer, read with InfluxQL,
so several stateless servers share the roll-ups:

- ``rollup_buckets``: tags ``def`` (the hash of the definition and of the field layout),
  ``res`` (ns) and the device path; one string field ``packed_v1``, every quantity of the
  bucket packed (``pack``); time = the bucket's start, so a bucket written again overwrites
  itself;
- ``rollup_devices`` (fingerprint, built_from, settled) and ``rollup_maintainers``
  (cursor, heartbeat): one point per day (an update overwrites the day's point), the
  newest counts.

Old buckets live as long as the retention policy (v1: ``rollup.retention_policy``) keeps
them: give the roll-ups a longer one than the raw samples.
"""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

import numpy as np

from shopfloor.storage import InfluxConfig
from shopfloor.storage.influx import (
    PATH_TAGS,
    InfluxReader,
    open_influx_writer,
    point,
    quote_ident,
    quote_literal,
)

from .buckets import DAY, DeviceState, GroupBy, MaintainerState, short_hash
from .quantities import FLOAT_FIELDS, INT_FIELDS, INT_INDEX, Quantities

BUCKETS, DEVICES, MAINTAINERS = "rollup_buckets", "rollup_devices", "rollup_maintainers"
_FEW = 50  # up to this many devices are named in the query; more are picked afterwards
_SEEN = INT_INDEX["state_seen"]
_FLUSH_LINES = 20_000  # buffered bucket lines are written in requests of about this many
# One string field per bucket, not one per quantity: InfluxDB 1.6 reads each field of each
# series through a cursor of its own: a cluster's 30 day buckets read 5.6x faster packed and
# as MessagePack than one field per quantity as gzipped JSON (benchmarks/influx_buckets.py).
# The layout is part of the definition's hash, so buckets of another layout are never read.
PACKED = "packed_v1"
_LAYOUT = f"{PACKED}:{','.join(INT_FIELDS)}:{','.join(FLOAT_FIELDS)};"
_NI, _WIDTH = len(INT_FIELDS), len(INT_FIELDS) + len(FLOAT_FIELDS)


def pack(q: Quantities) -> list[str]:
    """Each row as base64 of its int64 then float64 values, little-endian: exact both ways."""
    raw = np.hstack([q.ints.astype("<i8"),
                     np.ascontiguousarray(q.floats, "<f8").view("<i8")]).tobytes()
    w = _WIDTH * 8
    return [base64.b64encode(raw[i:i + w]).decode() for i in range(0, len(raw), w)]


def unpack(texts: list[str]) -> Quantities:
    """The rows ``pack`` made (a row of another width raises, never misreads)."""
    rows = [base64.b64decode(t) for t in texts]
    if any(len(r) != _WIDTH * 8 for r in rows):
        raise ValueError(f"a {PACKED} bucket is not {_WIDTH} values wide")
    raw = np.frombuffer(b"".join(rows), "<i8").reshape(len(texts), _WIDTH)
    return Quantities(raw[:, :_NI].astype(np.int64),
                      np.ascontiguousarray(raw[:, _NI:]).view("<f8").astype(np.float64))


def _today() -> int:
    """The time of a state point: a round overwrites today's, so they do not pile up."""
    return time.time_ns() // DAY * DAY


def _path(device: str) -> dict[str, str]:
    return dict(zip(PATH_TAGS, device.split("/"), strict=True))


class InfluxBuckets:
    def __init__(self, cfg: InfluxConfig, definition: str):
        self.definition = definition
        self._def = short_hash(_LAYOUT + definition)
        self._writer = open_influx_writer(cfg)
        self._reader = InfluxReader(cfg)
        # Writes are buffered (a round over 1,000 machines is a few requests, not 2,000 of
        # ~30 ms each) and go out before any read: buckets first, then the machine states
        # that vouch for them, in a later request, so no reader sees a state before its
        # buckets. What a crash loses was not vouched for by the maintainer's cursor.
        self._buckets: list[str] = []
        self._states: list[str] = []
        self._lock = threading.Lock()  # the maintainer's thread and the requests' share it

    def flush(self) -> None:
        with self._lock:  # held while writing: states never overtake their buckets
            for pending in (self._buckets, self._states):
                if pending:
                    self._writer.write_lines(pending)
                    pending.clear()

    def _add(self, pending: list[str], lines: list[str]) -> None:
        with self._lock:
            pending.extend(lines)
            full = len(pending) >= _FLUSH_LINES
        if full:
            self.flush()

    def _where(self, *more: str) -> str:
        return " AND ".join((f"{quote_ident('def')}={quote_literal(self._def)}", *more))

    def _query(self, q: str) -> list[dict[str, Any]]:
        self.flush()  # a reader in this process sees its own writes
        return self._reader.query(q)

    def put(self, device: str, res: int, starts: np.ndarray, q: Quantities) -> None:
        tags = {"def": self._def, "res": str(res), **_path(device)}
        self._add(self._buckets, [point(BUCKETS, tags, {PACKED: text}, s) for s, text
                                  in zip(starts.tolist(), pack(q), strict=True)])

    def sums(self, res: int, start: int, end: int, devices: list[str] | None,
             by: GroupBy) -> dict[str | int, Quantities]:
        where = [f"{quote_ident('res')}={quote_literal(str(res))}",
                 f"time >= {int(start)}", f"time < {int(end)}"]
        named = devices is not None and len(devices) <= _FEW
        if named:
            assert devices is not None
            where.append("(" + " OR ".join(
                "(" + " AND ".join(f"{quote_ident(k)}={quote_literal(v)}"
                                   for k, v in _path(d).items()) + ")" for d in devices) + ")")
        # The buckets are selected and summed here: InfluxDB 1.6 aggregates slowly per
        # series (30 days of 1,000 machines' day buckets: 11 s as sum() GROUP BY the
        # device, 1 s selected).
        cols = ",".join(quote_ident(c) for c in (*PATH_TAGS, PACKED))
        series = self._query(f"SELECT {cols} FROM {quote_ident(BUCKETS)} "  # noqa: S608
                             f"WHERE {self._where(*where)}")
        rows = [row for s in series for row in s.get("values") or []]
        nt = len(PATH_TAGS)
        names = ["/".join(row[1:1 + nt]) for row in rows]
        if devices is not None and not named:
            wanted = set(devices)
            keep = [i for i, d in enumerate(names) if d in wanted]
            rows, names = [rows[i] for i in keep], [names[i] for i in keep]
        if not rows:
            return {}
        keys = np.array(names) if by == "device" else np.array([r[0] for r in rows], np.int64)
        uniq, inverse = np.unique(keys, return_inverse=True)
        q = unpack([r[1 + nt] for r in rows])
        ints, floats = q.ints, q.floats
        sum_i = np.zeros((len(uniq), _NI), np.int64)
        sum_f = np.zeros((len(uniq), floats.shape[1]), np.float64)
        np.add.at(sum_i, inverse, ints)
        np.add.at(sum_f, inverse, floats)
        seen = np.zeros(len(uniq), np.int64)  # state_seen is "any", not a count
        np.maximum.at(seen, inverse, ints[:, _SEEN])
        sum_i[:, _SEEN] = seen
        return {(str(k) if by == "device" else int(k)): Quantities(sum_i[j:j + 1], sum_f[j:j + 1])
                for j, k in enumerate(uniq.tolist())}

    def devices(self) -> dict[str, DeviceState]:
        group = ",".join(quote_ident(k) for k in PATH_TAGS)
        out = {}
        cols = ",".join(f"last({quote_ident(c)})" for c in ("fingerprint", "built_from",
                                                             "settled"))
        q = (f"SELECT {cols} FROM {quote_ident(DEVICES)} "  # noqa: S608
             f"WHERE {self._where()} GROUP BY {group}")
        for s in self._query(q):
            for _t, fp, built, settled in s.get("values") or []:
                out["/".join(s["tags"][k] for k in PATH_TAGS)] = \
                    DeviceState(str(fp), int(built), int(settled))
        return out

    def set_device(self, device: str, state: DeviceState) -> None:
        self._add(self._states, [point(
            DEVICES, {"def": self._def, **_path(device)},
            {"fingerprint": state.fingerprint, "built_from": state.built_from,
             "settled": state.settled}, _today())])

    def maintainers(self) -> list[MaintainerState]:
        out = []
        cols = f"last({quote_ident('cursor')}),last({quote_ident('heartbeat')})"
        q = (f"SELECT {cols} FROM {quote_ident(MAINTAINERS)} "  # noqa: S608
             f"WHERE {self._where()} GROUP BY {quote_ident('name')}")
        for s in self._query(q):
            for _t, cursor, heartbeat in s.get("values") or []:
                out.append(MaintainerState(s["tags"]["name"], int(cursor), int(heartbeat)))
        return out

    def set_maintainer(self, state: MaintainerState) -> None:
        self.flush()  # the cursor vouches for everything before it
        self._writer.write_lines([point(
            MAINTAINERS, {"def": self._def, "name": state.name},
            {"cursor": state.cursor, "heartbeat": state.heartbeat}, _today())])

    def prune(self, res: int, before: int) -> None:
        res_tag = f"{quote_ident('res')}={quote_literal(str(res))}"
        self._query(f"DELETE FROM {quote_ident(BUCKETS)} "  # noqa: S608
                    f"WHERE {self._where(res_tag)} AND time < {int(before)}")

    def close(self) -> None:
        self.flush()
        self._writer.close()
        self._reader.close()
