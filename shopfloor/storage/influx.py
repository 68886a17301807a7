"""InfluxDB store: writers (1.x ``/write``, v2 write API; the line protocol is in
``line_protocol.py``) and an InfluxQL reader.

Measurement ``samples``; tags ``enterprise, site, area, line, device, tag``; fields
``value`` (float; bools 1.0/0.0, ints as floats), ``value_str`` (string samples) and
``quality``; time = source timestamp in ns. Same series + time overwrites, so a
duplicate delivery is a no-op.

Reads use InfluxQL over ``/query`` (served by InfluxDB 1.x, 2.x with a DBRP mapping,
and 3.x). Only values passed through ``quote_ident`` / ``quote_literal`` reach a
query string.
"""

from __future__ import annotations

import gzip
import logging
import secrets
import time
from collections.abc import Iterable
from typing import Any

import httpx
import msgpack
import numpy as np
import orjson

from shopfloor.config import secret
from shopfloor.contract import DevicePath, DeviceSample

from .base import (
    PermanentWriteError,
    SampleWriter,
    Series,
    write_spans,
)
from .config import InfluxConfig
from .influx_results import InfluxError, csv_series, reversed_series, series_of, values_of
from .line_protocol import (  # noqa: F401 (re-exported: the InfluxDB module's names)
    MEASUREMENT,
    PATH_TAGS,
    LineProtocolError,
    escape_key,
    escape_measurement,
    escape_string_field,
    format_float,
    point,
    to_line,
    to_lines,
)

log = logging.getLogger(__name__)

WRITES = "sample_writes"  # the write log (``WriteLog``): one point per device and write
LINES_PER_REQUEST = 5000  # InfluxDB's recommended batch size
GZIP_MIN_BYTES = 16 * 1024
READ_PAGE = 100_000  # rows per /query round trip when reading a window (10,000: 2x slower)
FIRST_PAGE = 500  # rows of a window read with the samples around it, as MessagePack


def _chunks(lines: list[str], n: int) -> Iterable[list[str]]:
    for i in range(0, len(lines), n):
        yield lines[i:i + n]


# --- writers ----------------------------------------------------------------------------


class _LoggedWrites:
    """``write``: the samples' lines, then one ``sample_writes`` point per device (after
    them, in the last request), so a write mark is never seen before its samples."""

    def __init__(self) -> None:
        self._writer_id = secrets.token_hex(4)  # tells apart marks of the same instant
        self._last_mark_ns = 0

    def write_lines(self, lines: list[str]) -> None:
        raise NotImplementedError

    def write(self, rows: list[DeviceSample]) -> None:
        now = max(time.time_ns(), self._last_mark_ns + 1)
        self._last_mark_ns = now
        marks = [point(WRITES, {**{k: getattr(d, k) for k in PATH_TAGS},
                                "writer": self._writer_id}, {"lo": lo, "hi": hi, "at": now},
                       now)
                 for d, (lo, hi) in write_spans(rows).items()]
        self.write_lines(to_lines(rows) + marks)


class InfluxV1Writer(_LoggedWrites):
    """InfluxDB 1.x: ``POST /write?db=..&rp=..&precision=ns`` (basic auth if configured)."""

    def __init__(self, cfg: InfluxConfig, *, transport: httpx.BaseTransport | None = None):
        assert cfg.version == 1
        super().__init__()
        self.cfg = cfg
        auth = (cfg.username, secret(cfg.password) or "") if cfg.username else None
        self._http = httpx.Client(base_url=cfg.url.rstrip("/"), auth=auth,
                                  timeout=cfg.timeout_s, transport=transport)
        self._params = {"db": cfg.database, "precision": "ns"}
        if cfg.retention_policy:
            self._params["rp"] = cfg.retention_policy

    def write_lines(self, lines: list[str]) -> None:
        for chunk in _chunks(lines, LINES_PER_REQUEST):
            body = "\n".join(chunk).encode()
            headers = {"Content-Type": "text/plain; charset=utf-8"}
            if len(body) >= GZIP_MIN_BYTES:
                body = gzip.compress(body, compresslevel=1)
                headers["Content-Encoding"] = "gzip"
            r = self._http.post("/write", params=self._params, content=body, headers=headers)
            if not r.is_success:
                raise _write_error(r.status_code, r.text)

    def close(self) -> None:
        self._http.close()


class InfluxV2Writer(_LoggedWrites):
    """v2 write API through influxdb-client (InfluxDB 2.x, 3.x, Cloud; VictoriaMetrics)."""

    def __init__(self, cfg: InfluxConfig):
        from influxdb_client import InfluxDBClient, WritePrecision
        from influxdb_client.client.write_api import SYNCHRONOUS

        assert cfg.version == 2
        super().__init__()
        self.cfg = cfg
        self._precision = WritePrecision.NS
        self._client = InfluxDBClient(url=cfg.url, token=secret(cfg.token), org=cfg.org,
                                      timeout=int(cfg.timeout_s * 1000), enable_gzip=True)
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def write_lines(self, lines: list[str]) -> None:
        from influxdb_client.rest import ApiException

        for chunk in _chunks(lines, LINES_PER_REQUEST):
            try:
                self._api.write(bucket=self.cfg.bucket, org=self.cfg.org, record=chunk,
                                write_precision=self._precision)
            except ApiException as exc:
                raise _write_error(exc.status or 0, str(exc.body)) from None

    def close(self) -> None:
        self._api.close()
        self._client.close()


def open_influx_writer(cfg: InfluxConfig) -> SampleWriter:
    return InfluxV1Writer(cfg) if cfg.version == 1 else InfluxV2Writer(cfg)


class InfluxRejected(InfluxError, PermanentWriteError):
    """InfluxDB refused the points themselves (HTTP 400/413/422): bad data, not an outage."""


def _write_error(status: int, body: str) -> InfluxError:
    # 401/403/404 (auth, missing database) are fixed by an operator: retry, don't drop
    cls = InfluxRejected if status in (400, 413, 422) else InfluxError
    return cls(f"InfluxDB write failed: HTTP {status} {body[:300].strip()}")


# --- InfluxQL reader ----------------------------------------------------------------------


def quote_ident(name: str) -> str:
    """A double-quoted InfluxQL identifier."""
    return '"' + _escape_influxql(name) + '"'


def quote_literal(value: str) -> str:
    """A single-quoted InfluxQL string literal."""
    return "'" + _escape_influxql(value) + "'"


def _escape_influxql(s: str) -> str:
    # InfluxQL's string scanner knows exactly \\ \' \" \n; a raw newline ends the token.
    return (s.replace("\\", "\\\\").replace("'", "\\'").replace('"', '\\"')
            .replace("\n", "\\n"))


def _device_where(device: DevicePath) -> str:
    return " AND ".join(f"{quote_ident(k)}={quote_literal(getattr(device, k))}"
                        for k in PATH_TAGS)


class InfluxReader:
    """``SampleReader`` over InfluxQL ``/query`` (v2: token auth, the bucket as db)."""

    def __init__(self, cfg: InfluxConfig, *, transport: httpx.BaseTransport | None = None):
        self.cfg = cfg
        # MessagePack from InfluxDB 1.x: half the bytes and a C decoder. 1.x compares the
        # Accept header whole (a list with q-values gets JSON), and the v1-compatible /query
        # of 2.x/3.x and VictoriaMetrics speak JSON only. Results are not gzipped unless
        # asked for: on a LAN the compression costs more than the bytes it saves.
        headers = {"Accept": "application/x-msgpack" if cfg.version == 1 else "application/json",
                   "Accept-Encoding": "gzip" if cfg.gzip_results else "identity"}
        auth = None
        if cfg.version == 2:
            headers["Authorization"] = f"Token {secret(cfg.token)}"
        elif cfg.username:
            auth = (cfg.username, secret(cfg.password) or "")
        self._http = httpx.Client(base_url=cfg.url.rstrip("/"), headers=headers, auth=auth,
                                  timeout=cfg.timeout_s, transport=transport)
        self._params: dict[str, str] = {"db": cfg.db, "epoch": "ns"}
        # 1.x: raw windows as CSV, several statements a request; the v1 API of 2.x/3.x is
        # known to do neither, so it gets JSON, one statement a request
        self._v1 = cfg.version == 1
        self._rp: tuple[float, int] | None = None  # (when asked, retention ns; 0 = forever)
        if cfg.retention_policy:
            self._params["rp"] = cfg.retention_policy

    def query(self, q: str) -> list[dict[str, Any]]:
        """Run one InfluxQL statement; returns its series (``[]`` when none)."""
        return self.statements([q])[0]

    def statements(self, qs: list[str]) -> list[list[dict[str, Any]]]:
        """Run InfluxQL statements in one request (1.x); returns each one's series."""
        if len(qs) > 1 and not self._v1:
            return [self.statements([q])[0] for q in qs]
        r = self._http.post("/query", params=self._params, data={"q": ";".join(qs)})
        if not r.is_success:
            raise InfluxError(f"InfluxQL query failed: HTTP {r.status_code} {r.text[:300]}")
        if "msgpack" in r.headers.get("content-type", ""):
            doc = msgpack.unpackb(r.content)
        else:
            doc = orjson.loads(r.content)
        out: list[list[dict[str, Any]]] = [[] for _ in qs]
        for res in doc.get("results") or [{}]:
            if "error" in res:
                raise InfluxError(f"InfluxQL error: {res['error']}")
            if res.get("partial"):  # never an answer from part of the rows
                raise InfluxError("InfluxDB cut the result short: set [http] max-row-limit = 0 "
                                  "(its default) in influxdb.conf")
            out[int(res.get("statement_id", 0))].extend(res.get("series") or [])
        return out

    def read(self, device: DevicePath, tag: str, start_ns: int, end_ns: int, *,
             before: int = 1, after: int = 0, good_context: bool = False) -> Series:
        where = f"{_device_where(device)} AND {quote_ident('tag')}={quote_literal(tag)}"
        select = (f"SELECT {quote_ident('value')},{quote_ident('value_str')},"  # noqa: S608
                  f"{quote_ident('quality')} "
                  f"FROM {quote_ident(MEASUREMENT)} WHERE {where}")
        good = f" AND {quote_ident('quality')}={quote_literal('good')}" if good_context else ""

        def window(since: int, limit: int) -> str:
            return (f"{select} AND time >= {since} AND time < {int(end_ns)} "
                    f"ORDER BY time ASC LIMIT {limit}")

        # One round trip for the samples around the window and its first rows (InfluxDB's
        # cost per query is about 1.5 ms); the rest of a long window in pages, as CSV.
        qs = [window(int(start_ns), FIRST_PAGE)]
        if before:
            qs.append(f"{select} AND time < {int(start_ns)}{good} "
                      f"ORDER BY time DESC LIMIT {int(before)}")
        if after:
            qs.append(f"{select} AND time >= {max(int(start_ns), int(end_ns))}{good} "
                      f"ORDER BY time ASC LIMIT {int(after)}")
        got = [series_of([v for s in res for v in values_of(s)]) for res in self.statements(qs)]
        first = got[0]
        parts = [reversed_series(got[1])] if before else []
        parts.append(first)
        page, size = first, FIRST_PAGE
        while len(page) == size and (cursor := int(page.ts[-1]) + 1) < end_ns:
            page, size = self._series(window(cursor, READ_PAGE)), READ_PAGE
            parts.append(page)
        if after:
            parts.append(got[-1])
        parts = [p for p in parts if len(p)]
        if len(parts) <= 1:
            return parts[0] if parts else Series.empty()
        return Series(np.concatenate([p.ts for p in parts]),
                      np.concatenate([p.value for p in parts]),
                      [t for p in parts for t in p.text],
                      np.concatenate([p.good for p in parts]))

    def _series(self, q: str) -> Series:
        """One ``SELECT value, value_str, quality`` statement's rows as a Series. From 1.x
        as CSV: pandas' C parser makes the columns without a Python object per value,
        a 400,000-row window 0.49 s against 1.87 s as MessagePack (DESIGN, Raw windows)."""
        if not self._v1:
            return series_of([v for s in self.query(q) for v in values_of(s)])
        # chunked: InfluxDB applies max-row-limit to unchunked queries only, and CSV has
        # no "partial" flag to say it cut a result short
        r = self._http.post("/query", params={**self._params, "chunked": "true"},
                            data={"q": q}, headers={"Accept": "application/csv"})
        if not r.is_success:
            raise InfluxError(f"InfluxQL query failed: HTTP {r.status_code} {r.text[:300]}")
        return csv_series(r.content)

    def markers(self, tag: str, start_ns: int, end_ns: int) -> dict[str, Series]:
        group = ",".join(quote_ident(k) for k in PATH_TAGS)
        select = (f"SELECT {quote_ident('value')},{quote_ident('value_str')},"  # noqa: S608
                  f"{quote_ident('quality')} FROM {quote_ident(MEASUREMENT)} "
                  f"WHERE {quote_ident('tag')}={quote_literal(tag)}")
        rows: dict[str, list[list[Any]]] = {}
        for q in (f"{select} AND time < {int(start_ns)} GROUP BY {group} "
                  f"ORDER BY time DESC LIMIT 1",
                  f"{select} AND time >= {int(start_ns)} AND time < {int(end_ns)} "
                  f"GROUP BY {group} ORDER BY time ASC"):
            for s in self.query(q):
                tags = s.get("tags") or {}
                asset = "/".join(tags.get(k, "") for k in PATH_TAGS)
                rows.setdefault(asset, []).extend(values_of(s))
        out = {}
        for asset, got in rows.items():
            out[asset] = series_of(got)
        return out

    def count(self, device: DevicePath | None = None) -> int:
        where = f" WHERE {_device_where(device)}" if device is not None else ""
        series = self.query(f"SELECT count({quote_ident('quality')}) "  # noqa: S608
                            f"FROM {quote_ident(MEASUREMENT)}{where}")
        return sum(int(v[1]) for s in series for v in s.get("values") or [])

    def last_seen(self) -> dict[str, int]:
        return self._seen("last")

    def first_seen(self) -> dict[str, int]:
        return self._seen("first")

    def _seen(self, selector: str) -> dict[str, int]:
        # last()/first() are selectors: their time is the newest/oldest point's in a group
        group = ",".join(quote_ident(k) for k in PATH_TAGS)
        series = self.query(f"SELECT {selector}({quote_ident('quality')}) "  # noqa: S608
                            f"FROM {quote_ident(MEASUREMENT)} GROUP BY {group}")
        pick = max if selector == "last" else min
        out: dict[str, int] = {}
        for s in series:
            tags = s.get("tags") or {}
            if not all(tags.get(k) for k in PATH_TAGS):
                continue
            asset = "/".join(tags[k] for k in PATH_TAGS)
            for v in s.get("values") or []:
                out[asset] = pick(out.get(asset, int(v[0])), int(v[0]))
        return out

    def raw_from(self) -> int | None:
        """From the retention policy's duration (``INF``: None), asked once a minute."""
        now = time.monotonic()
        if self._rp is None or now - self._rp[0] > 60:
            self._rp = (now, self._retention_ns())
        ns = self._rp[1]
        return time.time_ns() - ns if ns else None

    def _retention_ns(self) -> int:
        rows = self.query(f"SHOW RETENTION POLICIES ON {quote_ident(self.cfg.db)}")
        for s in rows:
            cols = s.get("columns") or []
            for v in s.get("values") or []:
                doc = dict(zip(cols, v, strict=False))
                wanted = self.cfg.retention_policy
                if (doc.get("name") == wanted) if wanted else doc.get("default"):
                    # shard groups go whole once they end before now - duration, so
                    # everything after that is still there
                    return _duration_ns(str(doc.get("duration", "0s")))
        return 0

    def written_since(self, after: int) -> tuple[int, dict[str, tuple[int, int]]]:
        """The cursor is the writers' clock (ns): give ``after`` some slack for clocks that
        differ between gateways."""
        group = ",".join(quote_ident(k) for k in PATH_TAGS)
        lo, hi, at = (quote_ident(c) for c in ("lo", "hi", "at"))
        series = self.query(f"SELECT min({lo}),max({hi}),max({at}) "  # noqa: S608
                            f"FROM {quote_ident(WRITES)} WHERE time > {int(after)} "
                            f"GROUP BY {group}")
        cursor, out = after, {}
        for s in series:
            tags = s.get("tags") or {}
            for _t, mn, mx, last in s.get("values") or []:
                out["/".join(tags[k] for k in PATH_TAGS)] = (int(mn), int(mx))
                cursor = max(cursor, int(last))
        return cursor, out

    def prune_write_log(self, upto: int) -> None:
        self.query(f"DELETE FROM {quote_ident(WRITES)} WHERE time <= {int(upto)}")  # noqa: S608

    def close(self) -> None:
        self._http.close()


_UNITS_NS = {"h": 3600 * 10**9, "m": 60 * 10**9, "s": 10**9}


def _duration_ns(text: str) -> int:
    """InfluxDB's ``168h0m0s`` as ns (0 means infinite)."""
    total, num = 0, ""
    for ch in text:
        if ch.isdigit():
            num += ch
        elif ch in _UNITS_NS and num:
            total, num = total + int(num) * _UNITS_NS[ch], ""
    return total
