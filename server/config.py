"""The server's one typed config."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shopfloor.config import Strict
from shopfloor.server.auth import AuthConfig
from shopfloor.server.calendar import CalendarConfig
from shopfloor.storage import StoreConfig


class HttpConfig(Strict):
    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8000, ge=0, le=65535)


class OeeConfig(Strict):
    stale_after_s: float = Field(
        30.0, gt=0,
        description="a state sample older than this with no newer one means no data (OFFLINE)")
    small_stop_s: float = Field(
        120.0, ge=0, description="IDLE/DOWN right after PRODUCING and shorter than this "
                                 "is a small stop (performance loss); 0 = none")
    startup_s: float = Field(
        300.0, ge=0, description="rejects this long after a setup ends are start-up rejects")
    calendar: CalendarConfig | None = Field(
        None, description="shift calendar; without one every hour is planned time")


class DigitalizationConfig(Strict):
    networked_window_s: float = Field(
        24 * 3600.0, gt=0,
        description="equipment counts as networked if it published data this recently")


class RollupConfig(Strict):
    """Roll-ups: per machine, the metrics' additive quantities per minute, hour and day,
    kept equal to the raw computation (DESIGN.md "Roll-ups")."""

    enabled: bool = Field(True, description="answer from roll-ups where they hold")
    maintain: bool = Field(
        True, description="this server keeps them up to date (several servers may)")
    name: str = Field("server", min_length=1, max_length=64,
                      description="this maintainer's name (unique among the servers)")
    interval_s: float = Field(30.0, gt=0, le=3600, description="time between rounds")
    settle_s: float = Field(
        60.0, ge=0, le=86400,
        description="data arriving later than this after its time counts as late (it is "
                    "still applied: late data only costs a recompute)")
    minute_days: float = Field(
        35.0, gt=0, description="minute buckets are kept this long (hours and days forever)")
    backfill_days: float = Field(
        35.0, gt=0, description="a machine seen for the first time is built this far back; "
                                "older windows are answered from raw samples until "
                                "`shopfloor rollup rebuild`")


class ServerConfig(Strict):
    registry: Path = Field(description="asset registry YAML (relative to this file)")
    store: StoreConfig
    http: HttpConfig = HttpConfig()
    oee: OeeConfig = OeeConfig()
    digitalization: DigitalizationConfig = DigitalizationConfig()
    auth: AuthConfig = AuthConfig()
    rollup: RollupConfig = RollupConfig()
