"""InfluxQL results as ``Series``: 1.x's CSV (``csv_series``, the raw windows) and the rows
of MessagePack / JSON results (``series_of``), for ``SELECT value, value_str, quality``."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from shopfloor.errors import ShopfloorError

from .base import Series, good_quality

COLUMNS = ["time", "value", "value_str", "quality"]


class InfluxError(ShopfloorError, RuntimeError):
    """An InfluxDB request failed, or its answer is not what was asked for."""


def csv_series(body: bytes) -> Series:
    """A Series from InfluxDB 1.x's CSV of ``SELECT value, value_str, quality``: columns
    ``name,tags,time,value,value_str,quality``, a row per point, no header when empty; an
    error is a row ``error`` then its message (also after rows, from a later chunk).

    A point has ``value`` or ``value_str``, never both (``to_lines``): an empty ``value``
    is a string sample, whose text may be empty. Text is never guessed at (a string sample
    ``NA`` stays ``NA``). pandas >= 3 parses floats correctly rounded, so exactly: InfluxDB
    writes the shortest round-trip digits (tests/test_store_influx.py holds it to that)."""
    import pandas as pd  # here: the edge and the gateway never read

    if not body.strip():
        return Series.empty()
    try:
        df = pd.read_csv(io.BytesIO(body), engine="c", keep_default_na=False,
                         na_values={"value": [""]},
                         dtype={"name": str, "tags": str, "time": "int64", "value": "float64",
                                "value_str": str, "quality": str})
    except ValueError:  # an error row after the data: no time there
        df = None
    if df is None or list(df.columns) != ["name", "tags", *COLUMNS]:
        rows = body.decode(errors="replace").splitlines()
        at = rows.index("error") if "error" in rows else -1
        raise InfluxError(f"InfluxQL error: {' '.join(rows[at + 1:at + 2])[:300]}"
                          if at >= 0 else f"unexpected InfluxDB CSV: {rows[0][:200]}")
    value = df["value"].to_numpy(np.float64)
    numeric = ~np.isnan(value)
    quality = df["quality"].to_numpy(dtype=object)
    return Series(df["time"].to_numpy(np.int64), value,
                  np.where(numeric, None, df["value_str"].to_numpy(dtype=object)).tolist(),
                  good_quality(np.where(quality == "", None, quality)))


def series_of(rows: list[list[Any]]) -> Series:
    """``[time, value, value_str, quality]`` rows as InfluxDB sends them, as a Series."""
    if not rows:
        return Series.empty()
    a = np.array(rows, dtype=object)  # columns at C speed, no loop over the rows
    return Series(a[:, 0].astype(np.int64), a[:, 1].astype(np.float64), a[:, 2].tolist(),
                  good_quality(a[:, 3]))


def reversed_series(s: Series) -> Series:
    return Series(s.ts[::-1], s.value[::-1], s.text[::-1],
                  None if s.good is None else s.good[::-1])


def values_of(series: dict[str, Any]) -> list[list[Any]]:
    if series.get("columns") != COLUMNS:
        raise InfluxError(f"unexpected InfluxQL columns {series.get('columns')!r}")
    return series.get("values") or []
