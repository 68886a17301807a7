"""Edge clocks that step (NTP correction, a dead RTC battery): detected per agent and
device from source time against receive time, and recorded as samples.

Ordering never depends on it: batches are ordered and checked by seq. But a sample
stamped by a clock an hour off lands an hour off in every window, so the gateway
writes a marker sample ``contract.CLOCK_SKEW_TAG`` on the device (value: the clock's
offset from the gateway's in seconds, 0 when back in step), with the batch that shows
it; the server flags every window in which a nonzero marker is in force
(``clock_skew``), instead of shifting OEE silently.

``ClockWatch.observe`` sees each decoded batch on arrival. Delivery takes time >= 0, so
``newest ts - receive time`` is a lower bound of the clock's offset: above
``step_s`` the clock is ahead. A clock that steps back shows as source time going back
between two batches of the device that arrived close together (``drift``: the source
times' advance minus the receive times'), which a backlog delivered late never does.
A step forward counts only when it brings a clock known to be behind back. Only a
device's newest batches (by seq) are compared: a replayed or redelivered one is old.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from shopfloor.contract import CLOCK_SKEW_TAG, DevicePath, DeviceSample, Quality, Sample

log = logging.getLogger(__name__)


@dataclass
class _Device:
    seq: int  # the newest batch seen
    ts: int  # its newest source ts
    received: int  # its receive time (gateway clock, ns)
    offset: int = 0  # the clock's offset as last recorded (ns)
    good_until: int = 0  # newest ts stamped in step before the step
    skewed_from: int = 0  # oldest ts stamped while off
    skewed_until: int = 0  # newest ts stamped while off


class ClockWatch:
    def __init__(self, step_s: float):
        self.step = int(step_s * 1e9)
        self._devices: dict[tuple[str, str], _Device] = {}
        self._lock = threading.Lock()
        self.steps = 0  # offsets recorded (a step, or back in step)

    def observe(self, agent: str, seq: int, device: DevicePath, rows: list[DeviceSample],
                received_ns: int) -> list[DeviceSample]:
        """The marker rows to store with this batch (none while nothing changes). A batch
        older (by seq) than one already seen, a replay or a redelivery, tells nothing."""
        if not rows:
            return []
        newest = max(s.ts for _, s in rows)
        oldest = min(s.ts for _, s in rows)
        key = (agent, device.asset_id)
        with self._lock:
            prev = self._devices.get(key)
            if prev is not None and seq <= prev.seq:
                return []
            if prev is None:
                prev = self._devices[key] = _Device(seq, newest, received_ns)
                ahead = newest - received_ns
                return self._record(agent, device, prev, ahead if ahead > self.step else 0,
                                    oldest, oldest, newest)
            offset = prev.offset
            ahead = newest - received_ns
            gap = received_ns - prev.received
            drift = (newest - prev.ts) - gap
            if ahead > self.step:
                offset = ahead
            elif 0 <= gap <= self.step and drift < -self.step:
                offset += drift  # stepped back
            elif 0 <= gap <= self.step and drift > self.step and offset < -self.step:
                offset = min(0, offset + drift)  # a clock behind put right
            elif offset > self.step and ahead < self.step:
                offset = 0  # was ahead, is not now
            marker = self._record(agent, device, prev, offset, min(oldest, prev.ts + 1),
                                  oldest, newest)
            prev.seq, prev.ts, prev.received = seq, newest, received_ns
            return marker

    def _record(self, agent: str, device: DevicePath, d: _Device, offset: int, at: int,
                oldest: int, newest: int) -> list[DeviceSample]:
        """Markers if the offset changed. A step is in force from ``at`` (the batch's
        oldest sample, or just after the last good one when it jumped ahead). Back in step,
        two spans stay flagged: where the samples stamped while off landed, and the real
        time between the step and this batch (which has none of the device's samples)."""
        skewed = abs(offset) > self.step
        if skewed:
            d.skewed_until = max(d.skewed_until, newest)
        if skewed == (abs(d.offset) > self.step) and abs(offset - d.offset) <= self.step:
            return []
        was, value = d.offset, round(offset / 1e9, 3) if skewed else 0.0
        self.steps += 1
        if skewed:
            if not abs(was) > self.step:
                d.good_until, d.skewed_from, d.skewed_until = d.ts, oldest, newest
            d.offset = offset
            log.warning("agent %s: the clock of %s is %+.0f s off the gateway's (source "
                        "time vs receive time); its windows are flagged clock_skew",
                        agent, device.asset_id, offset / 1e9)
            return [(device, Sample(CLOCK_SKEW_TAG, at, value, Quality.UNCERTAIN))]
        d.offset = 0
        log.warning("agent %s: the clock of %s is back in step (it was %+.0f s off)",
                    agent, device.asset_id, was / 1e9)
        spans = sorted([(d.skewed_from, d.skewed_until + 1), (d.good_until + 1, oldest)])
        if spans[1][0] <= spans[0][1]:  # they overlap: one span
            spans = [(spans[0][0], max(spans[0][1], spans[1][1]))]
        off = round(was / 1e9, 3)
        return [(device, Sample(CLOCK_SKEW_TAG, ts, v, Quality.UNCERTAIN))
                for lo, hi in spans for ts, v in ((lo, off), (hi, 0.0)) if hi > lo]

    def offsets(self) -> dict[str, float]:
        """Agent -> the largest clock offset (s) of its devices now skewed."""
        out: dict[str, float] = {}
        with self._lock:
            for (agent, _), d in self._devices.items():
                if d.offset and abs(d.offset) > abs(out.get(agent, 0.0)) * 1e9:
                    out[agent] = d.offset / 1e9
        return out
