"""The wire and store contracts shared by edge, gateway and server (version 1).

Topics: ``shopfloor/v1/{enterprise}/{site}/{area}/{line}/{device}/{kind}`` with
kind ``data`` (sample batches, QoS 1), ``status`` (retained birth/death) and
``meta`` (retained tag list).

A data message is one JSON batch from one edge agent for one device::

    {"v": 2, "agent": "edge-1", "seq": 17, "samples": [
        {"tag": "state", "ts": "1763779200123456789", "v": "PRODUCING", "q": "good"},
        {"tag": "energy_wh", "ts": "1763779200123456789", "vi": "17429726349691885448",
         "q": "good"}, ...]}

``ts`` is the source timestamp in nanoseconds since the Unix epoch (UTC), as a decimal
string (v1: a JSON integer), ``v`` a number, bool or short string (an integer beyond
+-(2^53 - 1) comes as a decimal string in ``vi`` instead), ``q`` the OPC UA status class.
Receivers accept v1 and v2 (``DATA_VERSIONS``). ``seq``
increases by one per batch and per agent, across all of its devices, so a
receiver can detect gaps and duplicates. ``decode_data`` is the receiver's whole check
of one data message (topic and payload): its ``DeviceSample`` list is what a store writes.
"""

from __future__ import annotations

import enum
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from shopfloor.errors import ShopfloorError

TOPIC_ROOT = "shopfloor"
VERSION = "v1"
KINDS = ("data", "status", "meta")
DEAD_LETTER_TOPIC = f"{TOPIC_ROOT}/{VERSION}/_deadletter"

MAX_PAYLOAD_BYTES = 1_000_000
MAX_STRING_VALUE = 256
MAX_TAG_LENGTH = 128
# Samples whose source time is further than this from the receiver's clock are rejected.
MAX_CLOCK_SKEW_NS = 366 * 24 * 3600 * 10**9

# A path segment: letters, digits, '-', '_', '.'; never MQTT wildcards or separators.
SEGMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/:]{0,127}$")


class State(enum.StrEnum):
    """Equipment states of the ISO 22400-2 time model (see ARCHITECTURE.md)."""

    PRODUCING = "PRODUCING"
    IDLE = "IDLE"
    DOWN = "DOWN"
    SETUP = "SETUP"
    PLANNED_STOP = "PLANNED_STOP"
    NO_SHIFT = "NO_SHIFT"
    OFFLINE = "OFFLINE"


# Stable integer codes used by the kernels and by the simulators' registers.
STATE_CODES: dict[State, int] = {s: i for i, s in enumerate(State)}
STATE_BY_CODE: dict[int, State] = {i: s for s, i in STATE_CODES.items()}


class Quality(enum.StrEnum):
    GOOD = "good"
    UNCERTAIN = "uncertain"
    BAD = "bad"


# Semantic signal names an equipment may carry (see ARCHITECTURE.md).
SIGNAL_STATE = "state"
SIGNAL_PART_COUNT = "part_count"
SIGNAL_REJECT_COUNT = "reject_count"
SIGNAL_PRODUCT = "product"  # product or program id, a string or a number
# the machine's reason code for the stop it is in (the edge's value map turns the PLC's
# code into a code of the reason tree); "" or NO_REASON: none given
SIGNAL_STOP_REASON = "stop_reason"
NO_REASON = "NONE"
SIGNALS = (SIGNAL_STATE, SIGNAL_PART_COUNT, SIGNAL_REJECT_COUNT, "ideal_cycle_time",
           "program", SIGNAL_PRODUCT, "alarm", SIGNAL_STOP_REASON)
# Written by the gateway, not an edge (gateway/clock.py): the device's clock offset from
# the gateway's in seconds, in force from its ts; 0 when back in step.
CLOCK_SKEW_TAG = "clock_skew_s"


class ContractError(ShopfloorError, ValueError):
    """A message or topic that breaks the contract; ``reason`` is a short counter key."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class DevicePath:
    """Where a device sits in the ISA-95 namespace."""

    enterprise: str
    site: str
    area: str
    line: str
    device: str

    def __post_init__(self) -> None:
        for name in ("enterprise", "site", "area", "line", "device"):
            value = getattr(self, name)
            if not isinstance(value, str) or not SEGMENT_RE.fullmatch(value):
                raise ContractError(
                    "bad_topic",
                    f"{name} {value!r} must match {SEGMENT_RE.pattern} "
                    "(letters, digits, '-', '_', '.')",
                )

    def topic(self, kind: str) -> str:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        return "/".join((TOPIC_ROOT, VERSION, self.enterprise, self.site, self.area,
                         self.line, self.device, kind))

    @property
    def asset_id(self) -> str:
        """The registry id of this device: its path from the enterprise."""
        return "/".join((self.enterprise, self.site, self.area, self.line, self.device))

    @classmethod
    def from_topic(cls, topic: str) -> tuple[DevicePath, str]:
        parts = topic.split("/")
        if len(parts) != 8 or parts[0] != TOPIC_ROOT or parts[1] != VERSION:
            raise ContractError("bad_topic", f"topic {topic!r} is not "
                                f"{TOPIC_ROOT}/{VERSION}/enterprise/site/area/line/device/kind")
        if parts[7] not in KINDS:
            raise ContractError("bad_topic", f"unknown kind {parts[7]!r} in {topic!r}")
        return cls(*parts[2:7]), parts[7]


def subscription(kind: str = "data", share_group: str | None = None) -> str:
    """Topic filter for every device's ``kind`` messages, optionally as a shared subscription."""
    topic = f"{TOPIC_ROOT}/{VERSION}/+/+/+/+/+/{kind}"
    return f"$share/{share_group}/{topic}" if share_group else topic


@dataclass(frozen=True, slots=True)
class Sample:
    tag: str
    ts: int  # source timestamp, ns since epoch, UTC
    value: float | int | bool | str
    quality: Quality = Quality.GOOD

    def to_json(self) -> dict[str, Any]:
        return {"tag": self.tag, "ts": self.ts, "v": self.value, "q": str(self.quality)}


@dataclass(frozen=True, slots=True)
class Batch:
    agent: str
    seq: int
    samples: tuple[Sample, ...]

    def encode(self, version: int | None = None) -> bytes:
        return encode_samples(self.agent, self.seq, [s.to_json() for s in self.samples],
                              version)


# Data message versions: v1, ``ts`` and integer ``v`` as JSON numbers (exact only for a
# parser with 64-bit integers); v2 (what edges send), ``ts`` as a decimal string and an
# integer beyond +-(2^53 - 1) as a decimal string in ``vi`` instead of ``v``, so a parser
# that reads numbers as doubles (JavaScript, most JSON tools) still gets every value
# exactly. Receivers accept both.
DATA_VERSION = 2
DATA_VERSIONS = (1, 2)
MAX_EXACT_DOUBLE_INT = 2**53 - 1


def _wire_sample(s: dict[str, Any]) -> dict[str, Any]:
    """A ``Sample.to_json`` dict in the v2 form."""
    v = s["v"]
    out = {"tag": s["tag"], "ts": str(s["ts"])}
    if type(v) is int and not -MAX_EXACT_DOUBLE_INT <= v <= MAX_EXACT_DOUBLE_INT:
        out["vi"] = str(v)
    else:
        out["v"] = v
    out["q"] = s["q"]
    return out


def encode_samples(agent: str, seq: int, samples: list[dict[str, Any]],
                   version: int | None = None) -> bytes:
    """Encode already-serialised samples (dicts as from ``Sample.to_json``) as a batch, in
    ``version`` (default ``DATA_VERSION``)."""
    version = DATA_VERSION if version is None else version
    if version == 2:
        samples = [_wire_sample(s) for s in samples]
    return json.dumps({"v": version, "agent": agent, "seq": seq, "samples": samples},
                      separators=(",", ":"), allow_nan=False).encode()


def _check_value(value: Any) -> float | int | bool | str:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -(2**63) <= value < 2**64:
            raise ContractError("bad_value", f"integer {value} out of 64-bit range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ContractError("bad_value", f"non-finite number {value!r}")
        return value
    if isinstance(value, str):
        if len(value) > MAX_STRING_VALUE:
            raise ContractError("bad_value", f"string longer than {MAX_STRING_VALUE}")
        return value
    raise ContractError("bad_value", f"value of type {type(value).__name__}")


def _reject_constant(name: str) -> Any:
    raise ContractError("bad_value", f"non-finite number {name}")


_QUALITIES = {q.value: q for q in Quality}
_VALID_TAGS: set[str] = set()  # tags already checked against TAG_RE (bounded)
_MAX_VALID_TAGS = 100_000


def _loads(payload: bytes) -> Any:
    """orjson on the hot path; the standard parser for what it refuses, so the reason
    stays precise (NaN -> bad_value) and anything it refuses is refused the same way."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(payload, parse_constant=_reject_constant)
    except ContractError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise ContractError("bad_json", str(exc)[:200]) from None


def _check_tag(tag: Any) -> str:
    if tag in _VALID_TAGS:
        return tag
    if not isinstance(tag, str) or not TAG_RE.fullmatch(tag):
        raise ContractError("bad_tag", f"tag {str(tag)[:80]!r} is not a valid tag name")
    if len(_VALID_TAGS) >= _MAX_VALID_TAGS:
        _VALID_TAGS.clear()
    _VALID_TAGS.add(tag)
    return tag


_DECIMAL = re.compile(r"-?[0-9]{1,20}")


def _decimal(text: Any, reason: str, detail: str) -> int:
    if not isinstance(text, str) or not _DECIMAL.fullmatch(text):
        raise ContractError(reason, detail)
    return int(text)


def decode_batch(payload: bytes, now_ns: int | None = None) -> Batch:
    """Decode and validate one data message; raises ContractError with a reason."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError("oversized", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    doc = _loads(payload)
    if not isinstance(doc, dict):
        raise ContractError("bad_schema", "batch must be a JSON object")
    version = doc.get("v")
    if version not in DATA_VERSIONS or isinstance(version, bool):
        raise ContractError("bad_version", f"unsupported version {version!r}")
    agent, seq, raw = doc.get("agent"), doc.get("seq"), doc.get("samples")
    if not isinstance(agent, str) or not SEGMENT_RE.fullmatch(agent):
        raise ContractError("bad_schema", "agent must be a short identifier")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise ContractError("bad_schema", "seq must be a non-negative integer")
    if not isinstance(raw, list) or not raw:
        raise ContractError("bad_schema", "samples must be a non-empty list")
    samples = []
    for item in raw:
        if not isinstance(item, dict):
            raise ContractError("bad_schema", "a sample must be an object")
        tag, ts, q = _check_tag(item.get("tag")), item.get("ts"), item.get("q", "good")
        if version == 2:
            ts = _decimal(ts, "bad_timestamp", "ts must be a decimal string of nanoseconds")
        elif type(ts) is not int:
            raise ContractError("bad_timestamp", "ts must be integer nanoseconds")
        if now_ns is not None and abs(ts - now_ns) > MAX_CLOCK_SKEW_NS:
            raise ContractError("bad_timestamp", f"ts {ts} too far from now")
        quality = _QUALITIES.get(q) if isinstance(q, str) else None
        if quality is None:
            raise ContractError("bad_quality", f"quality {str(q)[:20]!r}")
        if version == 2 and "vi" in item:
            if "v" in item:
                raise ContractError("bad_value", "a sample has v or vi, not both")
            value: Any = _decimal(item["vi"], "bad_value", "vi must be a decimal string")
        elif "v" not in item:
            raise ContractError("bad_value", "sample without v")
        else:
            value = item["v"]
        samples.append(Sample(tag, ts, _check_value(value), quality))
    return Batch(agent, seq, tuple(samples))


DeviceSample = tuple[DevicePath, Sample]  # one sample of one device, as stores write it


class BatchRejected(ContractError):
    """A well-formed batch (``agent``, ``seq`` known) rejected as a whole: its seq counts as
    handled, so the gateway does not ask for a replay that would be rejected again."""

    def __init__(self, reason: str, detail: str, agent: str, seq: int):
        super().__init__(reason, detail)
        self.agent = agent
        self.seq = seq


def decode_data(topic: str, payload: bytes, *, now_ns: int | None = None,
                max_skew_ns: int = MAX_CLOCK_SKEW_NS,
                accept: Callable[[DevicePath], bool] | None = None,
                ) -> tuple[str, int, list[DeviceSample]]:
    """``(agent, seq, samples)`` of one data message; raises ContractError with a reason.

    Samples further than ``max_skew_ns`` from ``now_ns`` (default: the clock) are
    ``bad_timestamp``; a device that ``accept`` refuses is ``unknown_device``. Both raise
    ``BatchRejected`` (the batch decoded, so its agent and seq are known)."""
    device, kind = DevicePath.from_topic(topic)
    if kind != "data":
        raise ContractError("bad_topic", f"kind {kind!r} where data was expected: {topic!r}")
    if topic.endswith("\n") or "\n/" in topic:  # the contract's `$` lets one "\n" through
        raise ContractError("bad_topic", f"line break in topic {topic[:200]!r}")
    batch = decode_batch(payload, now_ns=None)  # the skew limit is checked below
    for s in batch.samples:
        if s.tag.endswith("\n"):
            raise ContractError("bad_tag", f"line break in tag {s.tag[:80]!r}")
    if batch.agent.endswith("\n"):
        raise ContractError("bad_schema", "line break in agent")
    if accept is not None and not accept(device):
        raise BatchRejected("unknown_device", f"device {device.asset_id!r} is not in `accept`",
                            batch.agent, batch.seq)
    now = time.time_ns() if now_ns is None else now_ns
    for s in batch.samples:
        if abs(s.ts - now) > max_skew_ns:
            raise BatchRejected("bad_timestamp",
                                f"ts {s.ts} is {(s.ts - now) / 1e9:+.0f}s from the gateway's "
                                f"clock (limit {max_skew_ns / 1e9:.0f}s)", batch.agent, batch.seq)
    return batch.agent, batch.seq, [(device, s) for s in batch.samples]


def decode_message(topic: str, payload: bytes) -> list[DeviceSample]:
    """The samples of one data message; raises ContractError with a reason."""
    return decode_data(topic, payload)[2]


# --- alerts (server -> anyone) ----------------------------------------------------------
# ``shopfloor/v1/_alerts/{asset id}`` (QoS 1, not retained): each alert's opening and
# resolution as JSON (``server/operations/delivery.py`` says the fields).
ALERT_TOPIC_ROOT = f"{TOPIC_ROOT}/{VERSION}/_alerts"


def alert_topic(asset_id: str) -> str:
    """The topic an alert about ``asset_id`` (``enterprise/site/...``) is published on."""
    parts = asset_id.split("/")
    if not all(SEGMENT_RE.fullmatch(p) for p in parts):
        raise ContractError("bad_topic", f"asset {asset_id[:80]!r} is not an asset id")
    return f"{ALERT_TOPIC_ROOT}/{asset_id}"


def state_status_payload(online: bool, agent: str, ts_ns: int | None, *,
                         reason: str | None = None, connected_ts: int | None = None) -> bytes:
    """Retained birth/death message on the ``status`` topic: ``online`` (the agent is
    connected and reads the device), ``ts`` when the agent said so, ``reason`` why not
    online. A last will (``ts_ns`` None) has ``"will": true`` and ``connected_ts`` (when
    that connection began) instead of ``ts``: the broker sends it when the agent is gone,
    at a time the agent cannot know (the receiver's clock is the time of death)."""
    doc: dict[str, Any] = {"v": 1, "online": online, "agent": agent}
    if ts_ns is None:
        doc["will"] = True
        doc["connected_ts"] = connected_ts
    else:
        doc["ts"] = ts_ns
    if reason:
        doc["reason"] = reason
    return json.dumps(doc).encode()
