"""Shift calendars: weekly patterns, breaks, night shifts, holidays, time zones."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from shopfloor.server import calendar as c


def ns(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 10**9


CAL = c.CalendarConfig.model_validate({
    "timezone": "Asia/Shanghai",
    "weekly": {d: [{"name": "day", "start": "08:00", "end": "17:00",
                    "breaks": [{"start": "12:00", "end": "13:00"}]},
                   {"name": "night", "start": "22:00", "end": "06:00",
                    "breaks": [{"start": "02:00", "end": "02:30"}]}]
               for d in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": ["2026-01-01"]})


def test_shifts_in_local_time_with_night_shift_and_holiday():
    # Wed 2025-12-31 .. Fri 2026-01-02 (local); Jan 1 is a holiday
    got = c.shifts(CAL, ns(2025, 12, 31, 0), ns(2026, 1, 2, 0))
    names = [(n, datetime.fromtimestamp(s / 1e9, UTC).isoformat()[:16]) for n, s, _, _ in got]
    # Tuesday's night shift ends 2025-12-30T22:00Z, before the window; none on Jan 1;
    # Friday's day shift starts at the window's end
    assert names == [("day", "2025-12-31T00:00"), ("night", "2025-12-31T14:00")]
    _, s, e, breaks = got[1]
    assert (e - s) // 10**9 == 8 * 3600
    assert breaks == [(ns(2025, 12, 31, 18), ns(2025, 12, 31, 18, 30))]  # 02:00 local


def test_steps_make_breaks_planned_stops_and_the_rest_no_shift():
    ts, codes = c.steps(CAL, ns(2025, 12, 31, 0), ns(2025, 12, 31, 10))
    day = {int(t): int(k) for t, k in zip(ts, codes, strict=True)}
    assert day[ns(2025, 12, 31, 0)] == c.MACHINE        # 08:00 local
    assert day[ns(2025, 12, 31, 4)] == c.PLANNED_STOP   # 12:00 local
    assert day[ns(2025, 12, 31, 5)] == c.MACHINE
    assert day[ns(2025, 12, 31, 9)] == c.NO_SHIFT       # 17:00 local
    assert (ts[1:] > ts[:-1]).all()


def test_unknown_zone_is_a_clear_error():
    with pytest.raises(ValidationError, match="IANA"):
        c.CalendarConfig.model_validate({"timezone": "Mars/Olympus", "weekly": {}})
