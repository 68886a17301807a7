"""The gateway as a Sparkplug B host application: births, aliases and seqs per edge node,
data -> samples, deaths -> OFFLINE, rebirth requests.

``SparkplugHost(cfg, accept).handle(topic, payload, now_ns)`` is one message: the
``DeviceSample`` rows to store (births' values, data, OFFLINE for deaths), or a
``SparkplugError`` whose reason is the reject's counter key. A message that shows the host
lacks something (data before a birth, an unknown alias, a ``seq`` gap: a lost message)
queues a ``Node Control/Rebirth`` NCMD (at most one per node per
``rebirth_min_interval_s``), taken with ``take_rebirths``. One thread (paho's) calls it.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from shopfloor.contract import (
    MAX_CLOCK_SKEW_NS,
    SIGNAL_STATE,
    DevicePath,
    DeviceSample,
    Quality,
    Sample,
    State,
)
from shopfloor.sparkplug.payload import (
    BDSEQ_METRIC,
    DT,
    NAMESPACE,
    MessageType,
    SparkplugError,
    Topic,
    decode,
    get_quality,
    get_value,
    rebirth_request,
    to_ms,
    to_ns,
)

from .config import SparkplugHostConfig
from .mapping import Mapper, Target
from .sessions import NODE, NodeSession, Sessions

SUBSCRIPTIONS = [f"{NAMESPACE}/+/{t}/+" for t in ("NBIRTH", "NDEATH", "NDATA")] + \
    [f"{NAMESPACE}/+/{t}/+/+" for t in ("DBIRTH", "DDEATH", "DDATA")]
Birth = list[tuple[str, int | None, int]]  # (name, alias, datatype) per metric


class SparkplugHost:
    def __init__(self, cfg: SparkplugHostConfig, accept: Any = None,
                 max_skew_ns: int = MAX_CLOCK_SKEW_NS):
        self.cfg = cfg
        self.max_skew_ns = max_skew_ns
        self.mapper = Mapper(cfg.devices, accept)
        self.sessions = Sessions(cfg.state_path)
        self.counts: Counter[str] = Counter()  # births, deaths, seq_gaps, rebirth_requests, ...
        self._rebirths: list[tuple[str, bytes]] = []
        self._asked: dict[tuple[str, str], float] = {}  # node -> monotonic time of its request

    def take_rebirths(self) -> list[tuple[str, bytes]]:
        """NCMD (topic, payload) pairs to publish (QoS 0), oldest first."""
        out, self._rebirths = self._rebirths, []
        return out

    def handle(self, topic: str, payload: bytes, now_ns: int) -> list[DeviceSample]:
        t = Topic.parse(topic)
        p = decode(payload)
        if t.type in (MessageType.NCMD, MessageType.DCMD):
            self.counts["commands_ignored"] += 1
            return []
        if t.type == MessageType.NBIRTH:
            return self._nbirth(t, p, now_ns)
        session = self.sessions.get(t.group, t.node)
        if t.type == MessageType.NDEATH:
            return self._ndeath(t, p, session, now_ns)
        if session is None:
            self._ask_rebirth(t)
            raise SparkplugError("sp_no_birth", f"{t.type} of {t.group}/{t.node} before an "
                                                "NBIRTH")
        self._check_seq(t, p, session)
        if p.HasField("timestamp"):
            session.last_ms = max(session.last_ms, p.timestamp)
        device = t.device or NODE
        if t.type == MessageType.DBIRTH:
            session.add(device, _declared(p))
            self.sessions.save(t.group, t.node)
            self.counts["births"] += 1
            return self._rows(t, p, session, device, now_ns)
        if t.type == MessageType.DDEATH:
            return self._ddeath(t, p, session, device, now_ns)
        if device not in session.metrics:
            self._ask_rebirth(t)
            raise SparkplugError("sp_no_birth", f"DDATA of {t.group}/{t.node}/{t.device} "
                                                "before its DBIRTH")
        return self._rows(t, p, session, device, now_ns)

    # --- births and deaths ---------------------------------------------------------------
    def _nbirth(self, t: Topic, p: Any, now_ns: int) -> list[DeviceSample]:
        declared = _declared(p)
        bd_seq = next((_int(m) for m in p.metrics if m.name == BDSEQ_METRIC), None)
        session = self.sessions.start(t.group, t.node, bd_seq)
        try:
            session.add(NODE, declared)
        except SparkplugError:
            self.sessions.end(t.group, t.node)  # no half-born node: its data asks again
            raise
        session.seq = p.seq if p.HasField("seq") else None
        session.last_ms = p.timestamp if p.HasField("timestamp") else to_ms(now_ns)
        self.sessions.save(t.group, t.node)
        self.counts["births"] += 1
        try:
            return self._rows(t, p, session, NODE, now_ns)
        except SparkplugError as exc:
            if exc.reason == "unknown_device":
                return []  # a node without a mapping of its own metrics: its devices may have
            raise

    def _ndeath(self, t: Topic, p: Any, session: NodeSession | None,
                now_ns: int) -> list[DeviceSample]:
        bd_seq = next((_int(m) for m in p.metrics if m.name == BDSEQ_METRIC), None)
        if session is None or (session.bd_seq is not None and bd_seq != session.bd_seq):
            self.counts["stale_deaths"] += 1  # of an earlier session, or one we never saw
            return []
        self.counts["deaths"] += 1
        ts = self._death_ns(p, session, now_ns)
        rows = [row for device in session.metrics
                for row in self._offline(t, session, device, ts)]
        self.sessions.end(t.group, t.node)
        return rows

    def _ddeath(self, t: Topic, p: Any, session: NodeSession, device: str,
                now_ns: int) -> list[DeviceSample]:
        self.counts["deaths"] += 1
        rows = self._offline(t, session, device, self._death_ns(p, session, now_ns))
        session.drop(device)
        self.sessions.save(t.group, t.node)
        return rows

    @staticmethod
    def _death_ns(p: Any, session: NodeSession, now_ns: int) -> int:
        """The death's time: its timestamp, unless that is older than the session's last
        message (a will stamped when it connected) or in the future: then the time it arrived."""
        if p.HasField("timestamp") and session.last_ms <= p.timestamp <= to_ms(now_ns):
            return to_ns(p.timestamp)
        return now_ns

    def _offline(self, t: Topic, session: NodeSession, device: str,
                 ts: int) -> list[DeviceSample]:
        """OFFLINE (bad) for a dead device whose births named its state metric."""
        try:
            target = self.mapper.target(t.group, t.node, device or None)
        except SparkplugError:
            return []
        if not any(target.signal_of.get(m) == SIGNAL_STATE for m in session.metrics.get(
                device, {})):
            return []
        return [(target.path, Sample(SIGNAL_STATE, ts, State.OFFLINE.value, Quality.BAD))]

    # --- data ------------------------------------------------------------------------------
    def _rows(self, t: Topic, p: Any, session: NodeSession, device: str,
              now_ns: int) -> list[DeviceSample]:
        born = session.metrics.get(device, {})
        named = []
        for m in p.metrics:
            name = m.name
            if not name:
                owner = session.aliases.get(m.alias) if m.HasField("alias") else None
                if owner is None or owner[0] != device:
                    self._ask_rebirth(t)
                    raise SparkplugError("sp_unknown_alias", f"{t}: alias "
                                         f"{m.alias if m.HasField('alias') else '(none)'} "
                                         "is in no birth of this device")
                name = owner[1]
            named.append((name, m))
        target: Target = self.mapper.target(t.group, t.node, device or None)
        default_ms = p.timestamp if p.HasField("timestamp") else to_ms(now_ns)
        path: DevicePath = target.path
        rows: list[DeviceSample] = []
        for name, m in named:
            value = get_value(m, m.datatype or born.get(name, DT.Unknown))
            if value is None:
                continue
            if m.is_historical:
                self.counts["historical"] += 1
            ts = to_ns(m.timestamp if m.HasField("timestamp") else default_ms)
            if abs(ts - now_ns) > self.max_skew_ns:
                raise SparkplugError("bad_timestamp", f"{t}: {name!r} at {ts} is "
                                     f"{(ts - now_ns) / 1e9:+.0f}s from the gateway's clock")
            sample = target.sample(name, value, get_quality(m), ts)
            if sample is not None:
                rows.append((path, sample))
        return rows

    def _check_seq(self, t: Topic, p: Any, session: NodeSession) -> None:
        if not p.HasField("seq"):
            return
        if session.seq is not None and p.seq != (session.seq + 1) % 256:
            self.counts["seq_gaps"] += 1  # a message was lost (one connection: in order)
            self._ask_rebirth(t)
        session.seq = p.seq

    def _ask_rebirth(self, t: Topic) -> None:
        key = (t.group, t.node)
        now = time.monotonic()
        last = self._asked.get(key)
        if last is not None and now - last < self.cfg.rebirth_min_interval_s:
            return
        self._asked[key] = now
        self.counts["rebirth_requests"] += 1
        ncmd = Topic(t.group, MessageType.NCMD, t.node)
        self._rebirths.append((str(ncmd), rebirth_request(to_ms(time.time_ns()))))

    def close(self) -> None:
        self.sessions.close()


def _declared(p: Any) -> Birth:
    out: Birth = []
    for m in p.metrics:
        if not m.name:
            raise SparkplugError("sp_bad_birth", "a birth metric without a name")
        out.append((m.name, m.alias if m.HasField("alias") else None, m.datatype))
    return out


def _int(metric: Any) -> int | None:
    value = get_value(metric, metric.datatype or DT.Int64)
    return value if isinstance(value, int) and not isinstance(value, bool) else None
