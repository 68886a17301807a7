"""Test data of the federation tests: a registry of two enterprises (one with a legacy
machine) and machine histories written straight into an embedded store."""

from __future__ import annotations

import numpy as np

from shopfloor.contract import DevicePath, Sample
from shopfloor.storage.sqlite import SqliteStore

S = 10**9
DAY = 86400 * S


def registry(enterprises: tuple[str, ...] = ("acme", "bolt")) -> dict:
    """acme: a CNC (key process), a press (key process, not NC) and a legacy machine;
    bolt: one CNC; others: like bolt."""
    def ent(eid: str, equipment: list[dict]) -> dict:
        return {"id": eid, "name": eid.title(), "sites": [{"id": "p1", "workshops": [
            {"id": "w", "lines": [{"id": "l1", "equipment": equipment}]}]}]}
    acme = [{"id": "cnc-01", "ideal_cycle_time_s": 2, "numerically_controlled": True,
             "key_process": True},
            {"id": "press", "ideal_cycle_time_s": 4, "key_process": True},
            {"id": "old", "digital": False}]
    other = [{"id": "m1", "ideal_cycle_time_s": 3, "numerically_controlled": True,
              "key_process": True}]
    return {"cluster": {"id": "park"},
            "enterprises": [ent(e, acme if e == "acme" else other) for e in enterprises]}


def machines(enterprises: tuple[str, ...] = ("acme", "bolt")) -> dict[str, int]:
    """Asset id -> random seed of every machine that publishes."""
    out = {}
    for k, e in enumerate(enterprises):
        ids = ("cnc-01", "press") if e == "acme" else ("m1",)
        out |= {f"{e}/p1/w/l1/{m}": 10 * k + j for j, m in enumerate(ids, 1)}
    return out


def fill(store: SqliteStore, day0: int, days: int, assets: dict[str, int],
         down_share: float = 0.25) -> None:
    """Each machine runs PRODUCING / DOWN / IDLE episodes with parts and rejects; more
    ``down_share`` is less availability."""
    rows = []
    p = [(1 - down_share) * 0.8, down_share, (1 - down_share) * 0.2]
    for asset, seed in assets.items():
        dev = DevicePath(*asset.split("/"))
        rng = np.random.default_rng(seed + day0 // DAY)
        t, parts, rejects = day0, 0, 0
        while t < day0 + days * DAY:
            state = rng.choice(["PRODUCING", "DOWN", "IDLE"], p=p)
            rows.append((dev, Sample("state", t, str(state))))
            if state == "PRODUCING":
                parts += int(rng.integers(100, 600))
                rejects += int(rng.integers(0, 5))
            rows.append((dev, Sample("part_count", t, parts)))
            rows.append((dev, Sample("reject_count", t, rejects)))
            t += int(rng.integers(20, 3000)) * S
    store.write(rows)
