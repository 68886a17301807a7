"""Sparkplug B topics, datatypes, metric values and properties, on the ``schema`` messages.

Topics are ``spBv1.0/{group}/{TYPE}/{node}[/{device}]`` (``Topic``) and the primary
host's ``spBv1.0/STATE/{host_id}`` (``state_topic``; Sparkplug 3.0 JSON payload
``{"online": bool, "timestamp": ms}``). Times on the wire are milliseconds since the
epoch; ours are nanoseconds (``to_ms`` / ``to_ns``). A metric's value lives in the oneof
field its datatype names, as Tahu's encoders put it (``set_value`` / ``get_value``: UInt32
in ``long_value``, signed integers as two's complement in the unsigned fields); its
quality in the ``Quality`` property (Int32: 192 GOOD, 0 BAD, 500 STALE for our uncertain;
absent = good) and its engineering unit in ``engUnit``.
Everything here is the protobuf package's encoding: no wire code of our own.
"""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

from shopfloor.contract import ContractError, Quality

from .schema import DATATYPES, Payload

NAMESPACE = "spBv1.0"
REBIRTH_METRIC = "Node Control/Rebirth"
REBIRTH_ALIAS = 0  # the alias our edge nodes give it
BDSEQ_METRIC = "bdSeq"
QUALITY_PROPERTY = "Quality"
UNIT_PROPERTY = "engUnit"
# Sparkplug's quality codes: 0 BAD, 192 GOOD, 500 STALE (ours: uncertain)
QUALITY_CODES = {Quality.GOOD: 192, Quality.UNCERTAIN: 500, Quality.BAD: 0}
MAX_PAYLOAD_BYTES = 1_000_000

Raw = bool | int | float | str


class MessageType(enum.StrEnum):
    NBIRTH = "NBIRTH"
    NDEATH = "NDEATH"
    NDATA = "NDATA"
    NCMD = "NCMD"
    DBIRTH = "DBIRTH"
    DDEATH = "DDEATH"
    DDATA = "DDATA"
    DCMD = "DCMD"


DEVICE_TYPES = frozenset({MessageType.DBIRTH, MessageType.DDEATH, MessageType.DDATA,
                          MessageType.DCMD})


class SparkplugError(ContractError):
    """A Sparkplug message that cannot be taken; ``reason`` is its counter key."""


def check_id(value: str, what: str) -> str:
    """A group, node, device or host id: non-empty, without ``/``, ``+`` or ``#``."""
    if not value or any(c in value for c in "/+#") or len(value) > 256:
        raise SparkplugError("sp_bad_topic", f"{what} {value[:80]!r} is not a Sparkplug id")
    return value


@dataclass(frozen=True, slots=True)
class Topic:
    group: str
    type: MessageType
    node: str
    device: str | None = None

    def __str__(self) -> str:
        tail = f"/{self.device}" if self.device is not None else ""
        return f"{NAMESPACE}/{self.group}/{self.type}/{self.node}{tail}"

    @classmethod
    def parse(cls, text: str) -> Topic:
        parts = text.split("/")
        if len(parts) not in (4, 5) or parts[0] != NAMESPACE:
            raise SparkplugError("sp_bad_topic", f"{text[:200]!r} is not a Sparkplug B topic")
        try:
            kind = MessageType(parts[2])
        except ValueError:
            raise SparkplugError("sp_bad_topic", f"unknown message type in {text[:200]!r}") \
                from None
        if (len(parts) == 5) != (kind in DEVICE_TYPES):
            raise SparkplugError("sp_bad_topic", f"{kind} with the wrong levels: {text[:200]!r}")
        for value, what in zip(parts[1:], ("group", "type", "node", "device"), strict=False):
            check_id(value, what)
        return cls(parts[1], kind, parts[3], parts[4] if len(parts) == 5 else None)


def state_topic(host_id: str) -> str:
    return f"{NAMESPACE}/STATE/{check_id(host_id, 'host id')}"


def to_ms(ns: int) -> int:
    return ns // 1_000_000


def to_ns(ms: int) -> int:
    return ms * 1_000_000


# --- datatypes and values ---------------------------------------------------------------
DT = enum.IntEnum("DT", {name: number for name, number in DATATYPES.items()})  # type: ignore[misc]
_INT_RANGES = {DT.Int8: (-(2**7), 2**7), DT.Int16: (-(2**15), 2**15),
               DT.Int32: (-(2**31), 2**31), DT.Int64: (-(2**63), 2**63),
               DT.UInt8: (0, 2**8), DT.UInt16: (0, 2**16), DT.UInt32: (0, 2**32),
               DT.UInt64: (0, 2**64), DT.DateTime: (0, 2**64)}
_NARROW = {DT.Int8: 8, DT.Int16: 16, DT.Int32: 32}
_LONG = {DT.UInt32, DT.Int64, DT.UInt64, DT.DateTime}  # as Tahu's encoders do
_TEXT = {DT.String, DT.Text, DT.UUID}
# the edge's declared value types (mapping.tag_type) -> datatype
DECLARED = {"bool": DT.Boolean, "bit": DT.Boolean, "string": DT.String,
            "int16": DT.Int16, "uint16": DT.UInt16, "int32": DT.Int32, "uint32": DT.UInt32,
            "int64": DT.Int64, "uint64": DT.UInt64, "float32": DT.Float, "float64": DT.Double,
            **{f"uint{b}": DT.UInt32 for b in range(1, 32) if b != 16},
            **{f"uint{b}": DT.UInt64 for b in range(33, 65) if b != 64}}


def datatype_for(value: Raw, declared: str | None = None) -> int:
    """The datatype a metric is born with: the declared type if it holds ``value`` (or no
    value is known yet), else the one ``value`` has."""
    dt = DECLARED.get(declared or "")
    if dt is not None and (value is None or fits(dt, value)):
        return dt
    if value is None:
        return DT.String
    if isinstance(value, bool):
        return DT.Boolean
    if isinstance(value, int):
        return DT.Int64 if value < 2**63 else DT.UInt64
    if isinstance(value, float):
        return DT.Double
    return DT.String


def fits(datatype: int, value: Raw) -> bool:
    """Whether ``value`` can be sent as ``datatype`` without changing it."""
    if datatype == DT.Boolean:
        return isinstance(value, bool)
    if datatype in _TEXT:
        return isinstance(value, str)
    if isinstance(value, bool) or isinstance(value, str):
        return False
    if datatype in (DT.Float, DT.Double):
        return isinstance(value, int | float) and math.isfinite(value)
    lo_hi = _INT_RANGES.get(datatype)
    return lo_hi is not None and isinstance(value, int) and lo_hi[0] <= value < lo_hi[1]


def set_value(metric: Any, datatype: int, value: Raw) -> None:
    """Put ``value`` in the field of ``datatype`` (the caller checked ``fits``)."""
    if datatype == DT.Boolean:
        metric.boolean_value = bool(value)
    elif datatype in _TEXT:
        metric.string_value = str(value)
    elif datatype == DT.Float:
        metric.float_value = float(value)
    elif datatype == DT.Double:
        metric.double_value = float(value)
    elif datatype in _LONG:
        metric.long_value = int(value) % 2**64
    else:
        metric.int_value = int(value) % 2**32


def get_value(metric: Any, datatype: int) -> Raw | None:
    """The value of ``metric`` read as ``datatype`` (its own or its birth's), or None for a
    null or a type we do not store (data sets, templates, bytes, arrays, files)."""
    if metric.is_null:
        return None
    field = metric.WhichOneof("value")
    if field is None or field in ("bytes_value", "dataset_value", "template_value",
                                  "extension_value"):
        return None
    raw = getattr(metric, field)
    if field in ("int_value", "long_value"):
        if datatype == DT.Boolean:
            return bool(raw)
        if datatype in _NARROW or datatype == DT.Int64:
            width = 64 if field == "long_value" else 32
            if raw >= 2 ** (width - 1):
                raw -= 2**width
            bits = _NARROW.get(datatype)
            if bits is not None and bits < 32 and 2 ** (bits - 1) <= raw < 2**bits:
                raw -= 2**bits  # a narrow value sign-extended by its sender to 8/16 bits only
        return int(raw)
    if field in ("float_value", "double_value"):
        return float(raw) if math.isfinite(raw) else None
    return raw  # bool or str


# --- properties ---------------------------------------------------------------------------
def _property(metric: Any, key: str) -> Any | None:
    props = metric.properties
    for k, v in zip(props.keys, props.values, strict=False):
        if k.lower() == key.lower():
            return v
    return None


def _add_property(metric: Any, key: str, datatype: int, value: Raw) -> None:
    props = metric.properties
    props.keys.append(key)
    pv = props.values.add()
    pv.type = datatype
    if datatype == DT.String:
        pv.string_value = str(value)
    else:
        pv.int_value = int(value) % 2**32


def set_quality(metric: Any, quality: Quality) -> None:
    """``Quality`` property for anything but good (absent means good)."""
    if quality != Quality.GOOD:
        _add_property(metric, QUALITY_PROPERTY, DT.Int32, QUALITY_CODES[quality])


def get_quality(metric: Any) -> Quality:
    """The ``Quality`` property as ours: 192 (and OPC DA's good range up to 255) good, 500
    (STALE) and OPC DA's 64-191 uncertain, anything else bad; a name as it says; absent or
    unreadable: good."""
    pv = _property(metric, QUALITY_PROPERTY) if metric.HasField("properties") else None
    if pv is None:
        return Quality.GOOD
    field = pv.WhichOneof("value")
    if field in ("int_value", "long_value"):
        code = getattr(pv, field)
        if field == "int_value" and code >= 2**31:
            code -= 2**32  # Int32 -1 (Ignition's "unknown") and the like: bad
        if 192 <= code <= 255:
            return Quality.GOOD
        return Quality.UNCERTAIN if code == 500 or 64 <= code < 192 else Quality.BAD
    if field == "string_value":
        text = pv.string_value.lower()
        for q in Quality:
            if text.startswith(q.value):
                return q
        return Quality.BAD
    return Quality.GOOD


def set_unit(metric: Any, unit: str | None) -> None:
    if unit:
        _add_property(metric, UNIT_PROPERTY, DT.String, unit)


def get_unit(metric: Any) -> str | None:
    pv = _property(metric, UNIT_PROPERTY) if metric.HasField("properties") else None
    return pv.string_value if pv is not None and pv.WhichOneof("value") == "string_value" \
        else None


# --- whole payloads ---------------------------------------------------------------------
def decode(payload: bytes) -> Any:
    """A ``Payload`` from bytes; SparkplugError ``sp_bad_payload`` for what protobuf refuses."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise SparkplugError("oversized", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    try:
        return Payload.FromString(payload)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise SparkplugError("sp_bad_payload", f"not a Sparkplug B payload: {exc}"[:200]) \
            from None


def rebirth_request(now_ms: int) -> bytes:
    """An NCMD asking an edge node for its births again."""
    p = Payload(timestamp=now_ms)
    m = p.metrics.add(name=REBIRTH_METRIC, timestamp=now_ms, datatype=DT.Boolean)
    m.boolean_value = True
    return p.SerializeToString()


def wants_rebirth(payload: Any) -> bool:
    """Whether an NCMD ``Payload`` asks for a rebirth (by name; an NCMD may not use aliases
    for it, but a host that does uses the alias we gave it, ``REBIRTH_ALIAS``)."""
    return any((m.name == REBIRTH_METRIC or (not m.name and m.alias == REBIRTH_ALIAS))
               and m.WhichOneof("value") == "boolean_value" and m.boolean_value
               for m in payload.metrics)



def state_payload(online: bool, ts_ms: int) -> bytes:
    """Sparkplug 3.0 STATE: ``{"online": ..., "timestamp": ms}`` (retained, QoS 1)."""
    return json.dumps({"online": online, "timestamp": ts_ms}).encode()


def decode_state(payload: bytes) -> tuple[bool, int]:
    """``(online, timestamp ms)`` of a STATE message; 2.x payloads (ONLINE / OFFLINE) have
    timestamp 0. Raises SparkplugError."""
    text = payload.decode("utf-8", "replace").strip()
    if text in ("ONLINE", "OFFLINE"):
        return text == "ONLINE", 0
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("online"), bool) or \
            type(doc.get("timestamp")) is not int:
        raise SparkplugError("sp_bad_state", f"not a STATE payload: {text[:80]!r}")
    return doc["online"], doc["timestamp"]
