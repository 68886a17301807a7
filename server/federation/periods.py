"""Periods of the federation: a day (``2026-12-01``), a month (``2026-12``) or a quarter
(``2026-Q4``), each a half-open span [start, end) of local midnights in one time zone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from shopfloor.times import datetime_ns

_MONTH = re.compile(r"(\d{4})-(\d{2})")
_QUARTER = re.compile(r"(\d{4})-Q([1-4])")


class PeriodError(ValueError):
    """A period label that is not a day, a month or a quarter."""


@dataclass(frozen=True)
class Period:
    kind: str  # day, month, quarter
    label: str
    first: date  # its first day
    after: date  # the day after its last

    def bounds(self, tz: ZoneInfo) -> tuple[int, int]:
        """[start, end) in ns: the local midnights of ``first`` and ``after``."""
        return (datetime_ns(datetime.combine(self.first, time(), tz)),
                datetime_ns(datetime.combine(self.after, time(), tz)))

    def months(self) -> list[Period]:
        """The months it spans (a quarter's three, a month itself)."""
        out, d = [], self.first
        while d < self.after:
            out.append(month_of(d))
            d = out[-1].after
        return out


def _next_month(d: date) -> date:
    return date(d.year + d.month // 12, d.month % 12 + 1, 1)


def day_of(d: date) -> Period:
    return Period("day", d.isoformat(), d, d + timedelta(days=1))


def month_of(d: date) -> Period:
    first = d.replace(day=1)
    return Period("month", f"{d.year:04d}-{d.month:02d}", first, _next_month(first))


def quarter_of(d: date) -> Period:
    q = (d.month - 1) // 3
    first = date(d.year, 3 * q + 1, 1)
    return Period("quarter", f"{d.year:04d}-Q{q + 1}", first,
                  _next_month(_next_month(_next_month(first))))


OF = {"day": day_of, "month": month_of, "quarter": quarter_of}


def parse(label: str) -> Period:
    """The period a label names: ``2026-12-01``, ``2026-12`` or ``2026-Q4``."""
    if m := _QUARTER.fullmatch(label):
        return quarter_of(date(int(m[1]), 3 * int(m[2]) - 2, 1))
    if (m := _MONTH.fullmatch(label)) and 1 <= int(m[2]) <= 12:
        return month_of(date(int(m[1]), int(m[2]), 1))
    try:
        return day_of(date.fromisoformat(label))
    except ValueError:
        raise PeriodError(f"period {label!r}: give a day (2026-12-01), a month (2026-12) "
                          "or a quarter (2026-Q4)") from None


def local_date(ns: int, tz: ZoneInfo) -> date:
    return datetime.fromtimestamp(ns / 1e9, tz).date()


def between(kind: str, first: Period, last: Period) -> list[Period]:
    """Every period of ``kind`` from the one holding ``first.first`` to the one holding
    ``last.first``, in order."""
    out, d = [], OF[kind](first.first)
    while d.first <= last.first:
        out.append(d)
        d = OF[kind](d.after)
    return out


def covering(kind: str, t0: int, t1: int, tz: ZoneInfo) -> list[Period]:
    """The periods of ``kind`` that overlap [t0, t1)."""
    return between(kind, day_of(local_date(t0, tz)), day_of(local_date(max(t1 - 1, t0), tz)))
