"""``shopfloor history`` (issue 16: "a way to load a year of history"): past shifts of a
scenario's machines, written into a store, read back by the server as what they are:
each day's OEE as the loader's own truth, breaks as planned stops, no OFFLINE time in a
shift, and a plant that improves over the period."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import yaml
from fastapi.testclient import TestClient

from shopfloor.config import ConfigError
from shopfloor.demo import history
from shopfloor.demo.configs import registry_from_scenario
from shopfloor.demo.stacks import load_up_file
from shopfloor.server.app import create_app
from shopfloor.server.calendar import CalendarConfig
from shopfloor.server.config import ServerConfig
from shopfloor.storage.sqlite import SqliteStore
from shopfloor.times import NS, datetime_ns
from shopfloor.up import DEMO_SCENARIO

CALENDAR = {"timezone": "UTC", "weekly": {d: [
    {"name": "early", "start": "06:00", "end": "14:00",
     "breaks": [{"start": "10:00", "end": "10:30"}]}]
    for d in ("mon", "tue", "wed", "thu", "fri")}}
NOW = datetime_ns(datetime(2026, 11, 30, 12, tzinfo=UTC))  # a Monday, mid-shift


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("history")
    scenario = load_up_file(DEMO_SCENARIO).enterprises[0].scenario
    (tmp / "registry.yaml").write_text(yaml.safe_dump(registry_from_scenario(scenario)))
    cfg = ServerConfig.model_validate({
        "registry": "registry.yaml", "store": {"embedded": {"path": str(tmp / "store.db")}},
        "oee": {"calendar": CALENDAR}, "rollup": {"enabled": False}})
    with SqliteStore(tmp / "store.db") as store:
        truth = history.load_history(store, scenario, days=28, now_ns=NOW, improvement=2.0,
                                     calendar=CalendarConfig.model_validate(CALENDAR),
                                     heartbeat_s=0.8 * cfg.oee.stale_after_s)
    return tmp, cfg, scenario, truth


def day_window(label: str) -> tuple[str, str]:
    d = date.fromisoformat(label)
    start = datetime(d.year, d.month, d.day, tzinfo=UTC)
    return start.isoformat(), (start + timedelta(days=1)).isoformat()


def test_each_past_day_is_read_back_as_its_truth(loaded):
    tmp, cfg, scenario, truth = loaded
    days = sorted({label for _, label in truth})
    # weekdays only (the calendar), and none of today's shift (not over at NOW)
    assert all(date.fromisoformat(d).weekday() < 5 for d in days)
    assert len(days) == 19 and days[-1] == "2026-11-27"
    with TestClient(create_app(cfg, tmp)) as c:
        for label in (days[0], days[9], days[-1]):
            start, end = day_window(label)
            for m in scenario.machines():
                doc = c.get("/api/v1/oee", params={"scope": m.asset_id, "start": start,
                                                   "end": end}).json()
                want = truth[(m.asset_id, label)]
                assert doc["oee"] == pytest.approx(want.oee, abs=0.01), (label, m.id)
                assert doc["counts"]["total"] == want.total
                assert doc["counts"]["good"] == want.total - want.rejects
                assert doc["planned_busy_time_s"] == pytest.approx(want.planned_busy_s,
                                                                   abs=1)
                # a shift of 8 h less its 30 min break, all of it seen (none OFFLINE)
                assert doc["times_s"]["PLANNED_STOP"] >= 1800 - 1
                assert doc["times_s"]["OFFLINE"] == 0 and "data_gaps" not in doc["flags"]


def test_the_plant_improves_over_the_period(loaded):
    _, _, _, truth = loaded
    days = sorted({label for _, label in truth})

    def mean_oee(labels: list[str]) -> float:
        values = [t.oee for (_, d), t in truth.items() if d in labels]
        return sum(values) / len(values)

    # stops three times as long four weeks ago (improvement 2.0) as now
    assert mean_oee(days[:5]) < mean_oee(days[-5:]) - 0.05


def test_a_second_history_into_the_same_store_is_refused(loaded, tmp_path):
    tmp, cfg, _, _ = loaded
    (tmp_path / "server.yaml").write_text(yaml.safe_dump(
        {**cfg.model_dump(mode="json", exclude_none=True),
         "registry": str(tmp / "registry.yaml")}))
    with pytest.raises(ConfigError, match="already holds samples of acme/"):
        history.run(tmp_path / "server.yaml", DEMO_SCENARIO, 3, 0.3)


def test_without_a_calendar_history_is_whole_utc_days():
    windows = history.shift_windows(None, NOW - 3 * 86400 * NS, NOW)
    assert [(e - s) // NS for s, e, _ in windows] == [86400, 86400]
    assert datetime.fromtimestamp(windows[0][0] / NS, UTC) == datetime(2026, 11, 28,
                                                                        tzinfo=UTC)
