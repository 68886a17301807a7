"""``BucketStore`` in InfluxDB, written through the store's own writer, read with InfluxQL,
so several stateless servers share the roll-ups:

- ``rollup_buckets``: tags ``def`` (the definition's hash), ``res`` (ns) and the device
  path; one field per quantity (integers as integers); time = the bucket's start, so a
  bucket written again overwrites itself;
- ``rollup_devices`` (fingerprint, built_from, settled) and ``rollup_maintainers``
  (cursor, heartbeat): one point per day (an update overwrites the day's point), the
  newest counts.

Old buckets live as long as the retention policy (v1: ``rollup.retention_policy``) keeps
them: give the roll-ups a longer one than the raw samples.
"""

from __future__ import annotations

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
from .quantities import FLOAT_FIELDS, INT_FIELDS, Quantities

BUCKETS, DEVICES, MAINTAINERS = "rollup_buckets", "rollup_devices", "rollup_maintainers"
_FEW = 50  # up to this many devices are named in the query; more are picked afterwards


def _today() -> int:
    """The time of a state point: a round overwrites today's, so they do not pile up."""
    return time.time_ns() // DAY * DAY


def _path(device: str) -> dict[str, str]:
    return dict(zip(PATH_TAGS, device.split("/"), strict=True))


class InfluxBuckets:
    def __init__(self, cfg: InfluxConfig, definition: str):
        self.definition = definition
        self._def = short_hash(definition)
        self._writer = open_influx_writer(cfg)
        self._reader = InfluxReader(cfg)

    def _where(self, *more: str) -> str:
        return " AND ".join((f"{quote_ident('def')}={quote_literal(self._def)}", *more))

    def _query(self, q: str) -> list[dict[str, Any]]:
        return self._reader.query(q)

    def put(self, device: str, res: int, starts: np.ndarray, q: Quantities) -> None:
        tags = {"def": self._def, "res": str(res), **_path(device)}
        lines = []
        for s, ints, floats in zip(starts.tolist(), q.ints.tolist(), q.floats.tolist(),
                                   strict=True):
            fields: dict[str, float | int | str] = dict(zip(INT_FIELDS, ints, strict=True))
            fields.update(zip(FLOAT_FIELDS, floats, strict=True))
            lines.append(point(BUCKETS, tags, fields, s))
        if lines:
            self._writer.write_lines(lines)

    def sums(self, res: int, start: int, end: int, devices: list[str] | None,
             by: GroupBy) -> dict[str | int, Quantities]:
        cols = ",".join(
            f"{'max' if c == 'state_seen' else 'sum'}({quote_ident(c)}) AS {quote_ident(c)}"
            for c in (*INT_FIELDS, *FLOAT_FIELDS))
        where = [f"{quote_ident('res')}={quote_literal(str(res))}",
                 f"time >= {int(start)}", f"time < {int(end)}"]
        named = devices is not None and len(devices) <= _FEW
        if named:
            assert devices is not None
            where.append("(" + " OR ".join(
                "(" + " AND ".join(f"{quote_ident(k)}={quote_literal(v)}"
                                   for k, v in _path(d).items()) + ")" for d in devices) + ")")
        group = ",".join(quote_ident(k) for k in PATH_TAGS)
        if by == "start":  # summed over the devices by InfluxDB when they are all wanted
            group = f"time({int(res)}ns)" if devices is None or named else \
                f"time({int(res)}ns),{group}"
        series = self._query(f"SELECT {cols} FROM {quote_ident(BUCKETS)} "  # noqa: S608
                             f"WHERE {self._where(*where)} GROUP BY {group} fill(none)")
        wanted = None if devices is None or named else set(devices)
        n = len(INT_FIELDS)
        out: dict[str | int, Quantities] = {}
        for s in series:
            tags = s.get("tags") or {}
            device = "/".join(tags.get(k, "") for k in PATH_TAGS)
            if wanted is not None and device not in wanted:
                continue
            for row in s.get("values") or []:
                key: str | int = device if by == "device" else int(row[0])
                q = Quantities(np.array([[int(v or 0) for v in row[1:1 + n]]], np.int64),
                               np.array([[float(v or 0) for v in row[1 + n:]]], np.float64))
                if key in out:
                    seen = max(out[key].ints[0, -1], q.ints[0, -1])
                    out[key].ints += q.ints
                    out[key].floats += q.floats
                    out[key].ints[0, -1] = seen
                else:
                    out[key] = q
        return out

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
        self._writer.write_lines([point(
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
        self._writer.write_lines([point(
            MAINTAINERS, {"def": self._def, "name": state.name},
            {"cursor": state.cursor, "heartbeat": state.heartbeat}, _today())])

    def prune(self, res: int, before: int) -> None:
        res_tag = f"{quote_ident('res')}={quote_literal(str(res))}"
        self._query(f"DELETE FROM {quote_ident(BUCKETS)} "  # noqa: S608
                    f"WHERE {self._where(res_tag)} AND time < {int(before)}")

    def close(self) -> None:
        self._writer.close()
        self._reader.close()
