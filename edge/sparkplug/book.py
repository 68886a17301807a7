"""An edge node's metrics: one per configured tag (its published name), each with a fixed
alias (unique in the node: ``Node Control/Rebirth`` is 0, tags count from 1 in config
order), the datatype its device's last birth gave it, its unit, and its current value.

``Book(devices)`` builds the payloads: ``nbirth``, ``dbirth`` (every metric with name,
alias, datatype, ``engUnit`` and its current value or null), ``ddata`` (samples by alias
with their datatype, by which Tahu's decoders read each value; source timestamps,
``Quality`` when not good, ``is_historical`` for stored-and-forwarded data; None if a
sample needs a new birth first: a new tag, or a value its datatype cannot hold) and
``ndeath``. ``MsOutbox`` wraps the agent's outbox so what is stored is already in
Sparkplug's milliseconds (one tag's samples 1 ms apart at least) and noted as current.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shopfloor.contract import Quality, Sample
from shopfloor.sparkplug.payload import (
    BDSEQ_METRIC,
    DT,
    REBIRTH_ALIAS,
    REBIRTH_METRIC,
    datatype_for,
    fits,
    set_quality,
    set_unit,
    set_value,
    to_ms,
)
from shopfloor.sparkplug.schema import Payload

from ..device import DeviceBase
from ..mapping import tag_type


@dataclass
class MetricDef:
    name: str
    alias: int
    declared: str | None  # the config's value type (mapping.tag_type), if it names one
    unit: str | None
    datatype: int | None = None  # set by the device's birth


class Book:
    def __init__(self, devices: Sequence[DeviceBase]):
        self.metrics: dict[str, dict[str, MetricDef]] = {}
        self.current: dict[str, dict[str, Sample]] = {}
        self._next_alias = REBIRTH_ALIAS + 1
        for dev in devices:
            self.metrics[dev.id] = {}
            self.current[dev.id] = {}
            for tag in dev.tags:  # type: ignore[attr-defined]
                self._define(dev.id, tag.published_name, tag_type(tag), tag.unit)

    def _define(self, device: str, name: str, declared: str | None, unit: str | None) -> None:
        self.metrics[device][name] = MetricDef(name, self._next_alias, declared, unit)
        self._next_alias += 1

    def note(self, device: str, sample: Sample) -> None:
        """``sample`` is the newest value of its tag if no newer one is known."""
        cur = self.current[device].get(sample.tag)
        if cur is None or cur.ts <= sample.ts:
            self.current[device][sample.tag] = sample

    # --- payloads --------------------------------------------------------------------------
    def nbirth(self, bd_seq: int, now_ms: int) -> bytes:
        p = Payload(timestamp=now_ms, seq=0)
        p.metrics.add(name=BDSEQ_METRIC, timestamp=now_ms, datatype=DT.Int64, long_value=bd_seq)
        p.metrics.add(name=REBIRTH_METRIC, alias=REBIRTH_ALIAS, timestamp=now_ms,
                      datatype=DT.Boolean, boolean_value=False)
        return p.SerializeToString()

    def ndeath(self, bd_seq: int, now_ms: int | None = None) -> bytes:
        """The death; without a timestamp as the will (made at CONNECT, it would be wrong)."""
        p = Payload() if now_ms is None else Payload(timestamp=now_ms)
        p.metrics.add(name=BDSEQ_METRIC, datatype=DT.Int64, long_value=bd_seq)
        return p.SerializeToString()

    def dbirth(self, device: str, seq: int, now_ms: int,
               pending: Sequence[Sample] = ()) -> bytes:
        """Every metric of ``device`` with its current value; datatypes are chosen here
        (the declared type if it holds the current and ``pending`` values, else theirs)."""
        defs, current = self.metrics[device], self.current[device]
        for s in pending:
            if s.tag not in defs:
                self._define(device, s.tag, None, None)
        p = Payload(timestamp=now_ms, seq=seq)
        for d in defs.values():
            cur = current.get(d.name)
            values = [s.value for s in pending if s.tag == d.name] + \
                ([cur.value] if cur is not None else [])
            d.datatype = datatype_for(values[0] if values else None, d.declared)
            if any(not fits(d.datatype, v) for v in values):
                d.datatype = datatype_for(next(v for v in values if not fits(d.datatype, v)))
            m = p.metrics.add(name=d.name, alias=d.alias, datatype=d.datatype)
            set_unit(m, d.unit)
            if cur is None or not fits(d.datatype, cur.value):
                m.is_null = True
                m.timestamp = now_ms
            else:
                m.timestamp = to_ms(cur.ts)
                set_value(m, d.datatype, cur.value)
                set_quality(m, cur.quality)
        return p.SerializeToString()

    def ddata(self, device: str, samples: Sequence[Sample], seq: int, now_ms: int,
              historical: bool) -> bytes | None:
        defs = self.metrics[device]
        p = Payload(timestamp=now_ms, seq=seq)
        for s in samples:
            d = defs.get(s.tag)
            if d is None or d.datatype is None or not fits(d.datatype, s.value):
                return None
            m = p.metrics.add(alias=d.alias, timestamp=to_ms(s.ts), datatype=d.datatype)
            set_value(m, d.datatype, s.value)
            set_quality(m, s.quality)
            if historical:
                m.is_historical = True
        return p.SerializeToString()

    def ddeath(self, seq: int, ts_ms: int) -> bytes:
        return Payload(timestamp=ts_ms, seq=seq).SerializeToString()


class MsOutbox:
    """The agent's outbox, storing samples in whole milliseconds: a tag's sample in the same
    millisecond as its previous one goes 1 ms after it, so none overwrites another in a
    store keyed by time. Everything but ``append`` is the outbox's own."""

    def __init__(self, outbox: Any, book: Book):
        self._outbox = outbox
        self._book = book
        self._last_ms: dict[tuple[str, str], int] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._outbox, name)

    def append(self, device: str, topic: str, samples: list[dict[str, Any]]) -> Any:
        for s in samples:
            key = (device, s["tag"])
            ms = max(s["ts"] // 1_000_000, self._last_ms.get(key, -1) + 1)
            self._last_ms[key] = ms
            s["ts"] = ms * 1_000_000
            self._book.note(device, Sample(s["tag"], s["ts"], s["v"], Quality(s["q"])))
        return self._outbox.append(device, topic, samples)
