"""Shift calendars: weekly shift patterns with breaks, holidays, a time zone.

A calendar becomes a step function over time (``steps``): outside shifts the
time is NO_SHIFT, in breaks PLANNED_STOP, otherwise the machine's own state
(-1). ``kernels.overlay`` lays it over a state series, so planned stops and
no-shift time leave planned busy time in every kernel alike.

A shift whose end is not after its start ends the next day; a break belongs to
the shift it falls in. A holiday removes the shifts starting on that date.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from pydantic import Field, field_validator

from shopfloor.config import Strict
from shopfloor.contract import STATE_CODES, State
from shopfloor.times import NS, datetime_ns

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MACHINE = -1
NO_SHIFT = STATE_CODES[State.NO_SHIFT]
PLANNED_STOP = STATE_CODES[State.PLANNED_STOP]


class Period(Strict):
    start: time = Field(description="local time of day, HH:MM[:SS]")
    end: time = Field(description="local time of day; not after start = next day")


class Shift(Period):
    name: str = Field("shift", min_length=1, max_length=32)
    breaks: list[Period] = []


class CalendarConfig(Strict):
    timezone: str = Field("UTC", description="IANA zone, e.g. Europe/Berlin")
    weekly: dict[Weekday, list[Shift]] = Field(description="shifts per weekday (mon..sun)")
    holidays: list[date] = []

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}; use an IANA name such as "
                             "Europe/Berlin or Asia/Shanghai") from None
        return v


def shifts(cal: CalendarConfig, t0: int, t1: int) -> list[tuple[str, int, int, list]]:
    """(name, start, end, [(break_start, break_end)]) of shifts overlapping [t0, t1)."""
    tz = ZoneInfo(cal.timezone)
    holidays = set(cal.holidays)
    first = datetime.fromtimestamp(t0 / 1e9, tz).date() - timedelta(days=1)
    last = datetime.fromtimestamp(t1 / 1e9, tz).date()
    out = []
    day = first
    while day <= last:
        for sh in cal.weekly.get(WEEKDAYS[day.weekday()], []) if day not in holidays else []:
            def at(t: time, sh: Shift = sh, day: date = day) -> int:
                d = day + timedelta(days=1) if t < sh.start else day
                return datetime_ns(datetime.combine(d, t, tz))
            s = datetime_ns(datetime.combine(day, sh.start, tz))
            e = at(sh.end) if sh.end != sh.start else s + 86400 * NS
            if e > t0 and s < t1:
                out.append((sh.name, s, e, [(at(b.start), at(b.end)) for b in sh.breaks]))
        day += timedelta(days=1)
    return out


def shift_at(cal: CalendarConfig, t: int) -> tuple[str, int, int] | None:
    """(label, start, end) of the shift holding ``t``; None outside every shift."""
    for name, s, e, _ in shifts(cal, t - 1, t + 1):
        if s <= t < e:
            return name, s, e
    return None


def current_shift(cal: CalendarConfig | None, now: int) -> tuple[str, int]:
    """(label, start) of the shift holding ``now``; without a calendar the UTC day."""
    if cal is not None:
        found = shift_at(cal, now)
        return (found[0], found[1]) if found else ("no shift", now)
    day = now - now % (86400 * NS)
    return "day", day


def steps(cal: CalendarConfig, t0: int, t1: int) -> tuple[np.ndarray, np.ndarray]:
    """The calendar over [t0, t1) as a step function (ts ascending, codes)."""
    pts: list[tuple[int, int]] = [(min(t0, 0), NO_SHIFT)]
    for _, s, e, breaks in sorted(shifts(cal, t0, t1), key=lambda x: x[1]):
        pts.append((s, MACHINE))
        for bs, be in sorted(breaks):
            pts += [(max(bs, s), PLANNED_STOP), (min(be, e), MACHINE)]
        pts.append((e, NO_SHIFT))
    ts = np.array([p[0] for p in pts], dtype=np.int64)
    codes = np.array([p[1] for p in pts], dtype=np.int64)
    keep = np.append(ts[1:] > ts[:-1], True)  # a later point at the same time wins
    return ts[keep], codes[keep]
