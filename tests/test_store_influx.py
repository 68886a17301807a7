"""InfluxDB backend: line protocol and InfluxQL escaping (hostile input), real 1.x and v2 writes.

Reference parsers below follow InfluxDB 1.x's line protocol tokenizer (a backslash
pairs with the next byte; only ``\\,`` ``\\=`` ``\\ `` unescape in names, ``\\"`` and
``\\\\`` in string fields) and InfluxQL's string scanner; the round-trip tests check
the same inputs against a real server.
"""

from __future__ import annotations

import base64
import itertools
import json
import struct
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import services
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopfloor.config import ConfigError, parse_config
from shopfloor.contract import DevicePath, Quality, Sample
from shopfloor.storage import (
    InfluxConfig,
    PermanentWriteError,
    StoreConfig,
    open_reader,
    open_writers,
)
from shopfloor.storage.influx import (
    InfluxError,
    InfluxReader,
    InfluxV1Writer,
    InfluxV2Writer,
    LineProtocolError,
    escape_key,
    escape_measurement,
    point,
    quote_ident,
    quote_literal,
    to_line,
)

T0 = 1_763_779_200_000_000_000
DEV = DevicePath("acme", "plant1", "machining", "line1", "cnc-01")

# Names line protocol can carry: anything but backslashes and control characters.
names = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\\"),
                min_size=1, max_size=30)
hostile = st.lists(st.sampled_from(list(' ,="\'=\\#\n\t{}()[]*.$^|ü€😀') + ["ab", "x"]),
                   min_size=1, max_size=12).map("".join)
any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


# --- reference parsers --------------------------------------------------------------------


def _split(s: str, seps: str) -> list[str]:
    """Split on unescaped separators; a backslash always pairs with the next char."""
    parts, cur, i = [], "", 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s):
            cur += s[i:i + 2]
            i += 2
            continue
        if s[i] in seps:
            parts.append(cur)
            cur = ""
        else:
            cur += s[i]
        i += 1
    parts.append(cur)
    return parts


def _unescape_name(s: str) -> str:
    return s.replace("\\,", ",").replace("\\=", "=").replace("\\ ", " ")


def _parse_fields(s: str) -> tuple[dict[str, float | str], str]:
    """The field set (quotes count only in value position) and what follows it."""
    fields: dict[str, float | str] = {}
    i = 0
    while True:
        j = i  # the key runs to the first unescaped '='
        while s[j] != "=":
            j += 2 if s[j] == "\\" else 1
        key, j = _unescape_name(s[i:j]), j + 1
        if s[j] == '"':
            k, chars = j + 1, []
            while s[k] != '"':
                if s[k] == "\\" and s[k + 1] in '"\\':
                    k += 1
                chars.append(s[k])
                k += 1
            fields[key], j = "".join(chars), k + 1
        else:
            k = j
            while s[k] not in ", ":
                k += 1
            fields[key], j = float(s[j:k]), k
        if s[j] == " ":
            return fields, s[j + 1:]
        assert s[j] == ","
        i = j + 1


def parse_line(line: str) -> tuple[str, dict[str, str], dict[str, float | str], int]:
    head, rest = _split(line, " ")[0], line[len(_split(line, " ")[0]) + 1:]
    m, *tag_parts = _split(head, ",")
    tags = {}
    for t in tag_parts:
        k, v = _split(t, "=")
        tags[_unescape_name(k)] = _unescape_name(v)
    fields, ts = _parse_fields(rest)
    return _unescape_name(m), tags, fields, int(ts)


def scan_influxql_string(s: str) -> tuple[str, str]:
    """InfluxQL's ScanString: returns (value, rest); raises on a bad string or escape."""
    end, i, out = s[0], 1, []
    while True:
        if i >= len(s) or s[i] == "\n":
            raise ValueError("bad string")
        c = s[i]
        if c == end:
            return "".join(out), s[i + 1:]
        if c == "\\":
            nxt = s[i + 1] if i + 1 < len(s) else ""
            if nxt not in ("n", "\\", '"', "'"):
                raise ValueError("bad escape")
            out.append("\n" if nxt == "n" else nxt)
            i += 2
            continue
        out.append(c)
        i += 1


# --- line protocol ------------------------------------------------------------------------


@settings(max_examples=3000, deadline=None)
@given(tags=st.dictionaries(names, names, max_size=4), fkey=names, text=any_text,
       num=st.floats(allow_nan=False, allow_infinity=False), ts=st.integers(-2**63, 2**63 - 1),
       measurement=names)
def test_line_protocol_escaping_round_trips(tags, fkey, text, num, ts, measurement):
    if measurement.startswith("#"):
        measurement = "m" + measurement  # a line starting with '#' is a comment
    fields: dict[str, float | str] = {fkey: text, fkey + "_n": num}
    line = point(measurement, tags, fields, ts)
    assert parse_line(line) == (measurement, tags, fields, ts)


@settings(max_examples=500, deadline=None)
@given(bad=st.text(min_size=1, max_size=10).filter(
    lambda s: "\\" in s or any(ord(c) < 0x20 or ord(c) == 0x7F for c in s)))
def test_unrepresentable_names_are_rejected(bad):
    for fn in (escape_key, escape_measurement):
        with pytest.raises(LineProtocolError):
            fn(bad)
    with pytest.raises(LineProtocolError):
        to_line(DEV, Sample(bad, T0, 1.0))


def test_line_shape():
    line = to_line(DEV, Sample("spindle load", T0, 3, Quality.UNCERTAIN))
    assert line == ("samples,area=machining,device=cnc-01,enterprise=acme,line=line1,"
                    f'site=plant1,tag=spindle\\ load value=3.0,quality="uncertain" {T0}')
    assert to_line(DEV, Sample("s", 1, 'say "hi"\\')).endswith(
        ' value_str="say \\"hi\\"\\\\",quality="good" 1')
    assert " value=1.0," in to_line(DEV, Sample("b", 1, True))
    assert " value=0.0," in to_line(DEV, Sample("b", 1, False))
    assert " value=1.8446744073709552e+19," in to_line(DEV, Sample("b", 1, 2**64 - 1))
    for bad in (float("nan"), float("inf")):
        with pytest.raises(LineProtocolError):
            to_line(DEV, Sample("x", 1, bad))
    with pytest.raises(LineProtocolError):
        to_line(DEV, Sample("", 1, 1.0))


# --- InfluxQL quoting ---------------------------------------------------------------------


@settings(max_examples=3000, deadline=None)
@given(s=any_text | hostile)
def test_influxql_quoting_round_trips(s):
    for quote, q in ((quote_literal, "'"), (quote_ident, '"')):
        quoted = quote(s)
        assert quoted[0] == quoted[-1] == q
        assert "\n" not in quoted
        assert scan_influxql_string(quoted + " AND x") == (s, " AND x")


def test_quoting_examples():
    assert quote_literal("it's") == r"'it\'s'"
    assert quote_ident('a"b') == r'"a\"b"'
    assert quote_literal("a\\' OR 1=1 --") == r"'a\\\' OR 1=1 --'"
    assert quote_literal("x\ny") == r"'x\ny'"


# --- real InfluxDB 1.x --------------------------------------------------------------------

_db_numbers = itertools.count()


@pytest.fixture(scope="module")
def influxd(tmp_path_factory) -> Iterator[services.InfluxDB1]:
    with services.influxdb1(tmp_path_factory.mktemp("influxdb")) as db:
        yield db


@pytest.fixture
def influx_cfg(influxd) -> InfluxConfig:
    name = f"t{next(_db_numbers)}"
    influxd.query(f'CREATE DATABASE "{name}"')
    return InfluxConfig(version=1, url=influxd.url, database=name)


_devices = itertools.count()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(hostile.filter(lambda s: "\\" not in s and "\n" not in s
                                      and "\t" not in s) | names,
                       min_size=1, max_size=15, unique=True),
       texts=st.lists(any_text | hostile, min_size=15, max_size=15))
def test_hostile_tags_and_strings_round_trip_through_influxdb(influx_cfg, values, texts):
    """What goes in as a tag (and a string value) comes back exactly, found by an
    InfluxQL query built with quote_literal."""
    dev = DevicePath("acme", "plant1", "hostile", "line1", f"d{next(_devices)}")
    writer, reader = InfluxV1Writer(influx_cfg), InfluxReader(influx_cfg)
    rows = [(dev, Sample(v, T0 + i, texts[i])) for i, v in enumerate(values)]
    writer.write(rows)
    for i, v in enumerate(values):
        got = reader.read(dev, v, T0, T0 + 100)
        assert got.ts.tolist() == [T0 + i] and got.text == [texts[i]], v
    series = reader.query(f"SHOW TAG VALUES FROM \"samples\" WITH KEY = \"tag\" "
                          f"WHERE \"device\" = {quote_literal(dev.device)}")
    assert sorted(v[1] for v in series[0]["values"]) == sorted(values)
    assert reader.count(dev) == len(values)
    writer.close()
    reader.close()


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.floats(allow_nan=False, allow_infinity=False) | any_text | hostile
                       | st.sampled_from(["", "NA", "null", "nan", "1.5", "error"]),
                       min_size=1, max_size=30),
       qualities=st.lists(st.sampled_from(list(Quality)), min_size=30, max_size=30),
       page=st.integers(1, 8))
def test_windows_read_as_csv_equal_what_was_written_and_the_msgpack_read(
        influx_cfg, monkeypatch, values, qualities, page):
    """The read of a window (its first rows with the sample before and the one after in one
    request, the rest in pages as CSV): floats bit for
    bit, text as text (``NA`` is not missing, ``1.5`` is not a number), qualities; and the
    same Series as the MessagePack decode of the same queries."""
    import shopfloor.storage.influx as influx

    monkeypatch.setattr(influx, "READ_PAGE", page)
    monkeypatch.setattr(influx, "FIRST_PAGE", max(1, page - 1))
    dev = DevicePath("acme", "plant1", "csv", "line1", f"d{next(_devices)}")
    writer, reader, packed = (InfluxV1Writer(influx_cfg), InfluxReader(influx_cfg),
                              InfluxReader(influx_cfg))
    packed._v1 = False  # as the v1 API of 2.x/3.x is read: JSON/MessagePack, a statement a request
    writer.write([(dev, Sample("t", T0 + 10 * i, v, qualities[i]))
                  for i, v in enumerate(values)])
    n = len(values)
    got = reader.read(dev, "t", T0 + 10, T0 + 10 * (n - 1), before=1, after=1)
    assert got.ts.tolist() == [T0 + 10 * i for i in range(n)]
    for i, v in enumerate(values):
        if isinstance(v, str):
            assert got.text[i] == v and np.isnan(got.value[i])
        else:
            assert got.text[i] is None and struct.pack("<d", got.value[i]) == struct.pack(
                "<d", v)
    assert got.good.tolist() == [q == Quality.GOOD for q in qualities[:n]]
    other = packed.read(dev, "t", T0 + 10, T0 + 10 * (n - 1), before=1, after=1)
    assert (other.ts.tolist(), other.text, other.good.tolist()) == (
        got.ts.tolist(), got.text, got.good.tolist())
    assert other.value.tobytes() == got.value.tobytes()
    for r in (writer, reader, packed):
        r.close()


def test_csv_errors_raise_never_read_as_rows():
    from shopfloor.storage.influx_results import csv_series

    with pytest.raises(InfluxError, match="boom"):
        csv_series(b'error\n"boom: a failed query"\n')
    head = b"name,tags,time,value,value_str,quality\nsamples,,1,2.5,,good\n"
    with pytest.raises(InfluxError, match="later chunk failed"):
        csv_series(head + b'error\n"later chunk failed"\n')
    assert len(csv_series(b"")) == 0
    assert csv_series(head).value.tolist() == [2.5]


def test_write_errors_raise(influxd):
    cfg = InfluxConfig(version=1, url=influxd.url, database="no_such_db")
    w = InfluxV1Writer(cfg)
    with pytest.raises(InfluxError, match="HTTP 404"):
        w.write([(DEV, Sample("x", T0, 1.0))])
    w.close()
    r = InfluxReader(cfg)
    with pytest.raises(InfluxError):
        r.query("SELEKT nonsense")
    r.close()
    dead = InfluxV1Writer(InfluxConfig(version=1, url="http://127.0.0.1:9", database="x",
                                       timeout_s=1))
    with pytest.raises(httpx.TransportError):
        dead.write([(DEV, Sample("x", T0, 1.0))])
    dead.close()


def test_large_write_is_gzipped_and_chunked(influx_cfg):
    w = InfluxV1Writer(influx_cfg)
    w.write([(DEV, Sample("v", T0 + i, float(i))) for i in range(12_000)])
    r = InfluxReader(influx_cfg)
    assert r.count(DEV) == 12_000
    assert r.read(DEV, "v", T0 + 11_000, T0 + 12_000).value[-1] == 11_999.0
    w.close()
    r.close()


def test_store_config_influx(influx_cfg):
    cfg = parse_config({"influxdb": influx_cfg.model_dump(), "embedded": None}, StoreConfig)
    (w,) = open_writers(cfg)
    w.write([(DEV, Sample("x", T0, 2.0))])
    assert open_reader(cfg).read(DEV, "x", T0, T0 + 1).value.tolist() == [2.0]
    for bad, msg in (({"version": 1, "url": "http://x"}, "needs `database`"),
                     ({"version": 2, "url": "http://x", "bucket": "b"}, "needs token, org"),
                     ({"version": 1, "url": "http://x", "database": "d", "token": "t"},
                      "for version 2"),
                     ({"version": 1, "url": "ftp://x", "database": "d"}, "influxdb.url"),
                     ({"version": 3, "url": "http://x"}, "influxdb.version")):
        with pytest.raises(ConfigError, match=msg):
            parse_config({"influxdb": bad}, StoreConfig)
    secret_cfg = InfluxConfig(version=2, url="http://x", token="s3cret", org="o", bucket="b")
    assert "s3cret" not in repr(secret_cfg) and "s3cret" not in str(secret_cfg.model_dump())


# --- v2 write API against VictoriaMetrics ---------------------------------------------------


def test_v2_write_through_influxdb_client(victoria):
    cfg = InfluxConfig(version=2, url=victoria.url, token="t0ken", org="acme", bucket="shop")
    w = InfluxV2Writer(cfg)
    # VictoriaMetrics drops samples older than its retention (1 month): use recent times
    t = (time.time_ns() // 10**9 - 120) * 10**9
    devs = [DEV, DevicePath("acme", "plant1", "machining", "line1", "press-01")]
    rows = [(d, Sample("part_count", t + i * 10**6, i + k * 1000))
            for k, d in enumerate(devs) for i in range(6000)]  # > one request, gzipped
    rows.append((DEV, Sample("state", t, "PRODUCING")))
    w.write(rows)
    w.close()
    httpx.get(f"{victoria.url}/internal/force_flush", timeout=10).raise_for_status()
    # VictoriaMetrics names an InfluxDB field `{measurement}_{field}`; tags become labels
    r = httpx.post(f"{victoria.url}/api/v1/export", timeout=10,
                   data={"match[]": '{__name__="samples_value",tag="part_count"}'})
    r.raise_for_status()
    got = {}
    for line in r.text.splitlines():
        doc = json.loads(line)
        m = doc["metric"]
        got[(m["enterprise"], m["site"], m["area"], m["line"], m["device"])] = doc
    assert set(got) == {(d.enterprise, d.site, d.area, d.line, d.device) for d in devs}
    for k, d in enumerate(devs):
        doc = got[(d.enterprise, d.site, d.area, d.line, d.device)]
        assert doc["values"] == [float(i + k * 1000) for i in range(6000)]
        assert doc["timestamps"] == [(t + i * 10**6) // 10**6 for i in range(6000)]
    r = httpx.post(f"{victoria.url}/api/v1/series", timeout=10,
                   data={"match[]": '{__name__="samples_quality",tag="state"}'})
    assert r.json()["data"] == [{"__name__": "samples_quality", **{
        "enterprise": "acme", "site": "plant1", "area": "machining", "line": "line1",
        "device": "cnc-01", "tag": "state"}}]


def test_v2_write_error_raises():
    cfg = InfluxConfig(version=2, url="http://127.0.0.1:9", token="t", org="o", bucket="b",
                       timeout_s=1)
    w = InfluxV2Writer(cfg)
    with pytest.raises(Exception):  # noqa: B017 - connection refused, whatever the client raises
        w.write([(DEV, Sample("x", T0, 1.0))])
    w.close()


# --- what goes over the wire ----------------------------------------------------------------


def test_auth_and_parameters_on_the_wire():
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        if req.url.path == "/write":
            return httpx.Response(204)
        return httpx.Response(200, json={"results": [{"statement_id": 0}]})

    mock = httpx.MockTransport(handler)
    v2 = InfluxConfig(version=2, url="http://db:8086/", token="tok-9", org="o", bucket="plant")
    r = InfluxReader(v2, transport=mock)
    assert r.count(DEV) == 0 and r.last_seen() == {} and len(r.read(DEV, "x", 0, 10)) == 0
    q = seen[0]
    assert q.headers["authorization"] == "Token tok-9"
    assert q.url.params["db"] == "plant" and q.url.params["epoch"] == "ns"
    assert "\"device\"='cnc-01'" in httpx.QueryParams(q.content.decode())["q"]

    seen.clear()
    v1 = InfluxConfig(version=1, url="http://db:8086", database="shop", retention_policy="rp1",
                      username="gw", password="pw-7")
    w = InfluxV1Writer(v1, transport=mock)
    w.write([(DEV, Sample("x", T0, 1.0))])
    assert seen[0].url.params["db"] == "shop" and seen[0].url.params["rp"] == "rp1"
    assert seen[0].url.params["precision"] == "ns"
    assert seen[0].headers["authorization"] == "Basic " + base64.b64encode(b"gw:pw-7").decode()
    sample_line, mark = seen[0].content.decode().split("\n")
    assert sample_line == to_line(DEV, Sample("x", T0, 1.0))
    assert mark.startswith("sample_writes,area=machining,device=cnc-01,")  # the write log
    assert f" lo={T0}i,hi={T0}i,at=" in mark  # "at": the time it was written, a field

    def reject(req: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": "partial write: field type conflict"})

    w = InfluxV1Writer(v1, transport=httpx.MockTransport(reject))
    with pytest.raises(PermanentWriteError, match="field type conflict"):
        w.write([(DEV, Sample("x", T0, 1.0))])
