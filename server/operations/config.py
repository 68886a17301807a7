"""The ``operations`` section of the server config: the database, the reason tree, how
far back a stop may have begun, and alert evaluation and delivery."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from shopfloor.config import Strict
from shopfloor.mqtt import MqttConfig


class DatabaseConfig(Strict):
    url: SecretStr | None = Field(
        None, description="SQLAlchemy URL, e.g. postgresql+psycopg://user:password@host/db "
                          "(several servers may share it); default: the SQLite file "
                          "operations.db beside the embedded store (or this config)")
    migrate: bool = Field(True, description="bring the schema up to date at start "
                                            "(else run `shopfloor db upgrade`)")


class AlertsConfig(Strict):
    evaluate: bool = Field(True, description="this server evaluates the alert rules and "
                                             "delivers alerts (several servers may)")
    name: str = Field("server", min_length=1, max_length=64,
                      description="this evaluator's name (who claimed a delivery)")
    interval_s: float = Field(5.0, gt=0, le=3600, description="time between evaluations")
    webhooks: list[SecretStr] = Field(
        [], description="URLs each alert's opening and resolution is POSTed to (JSON)")
    mqtt: MqttConfig | None = Field(
        None, description="broker alerts are published to (shopfloor/v1/_alerts/{asset})")
    retry_s: float = Field(10.0, gt=0, le=3600,
                           description="a failed delivery is tried again after this")


class OperationsConfig(Strict):
    database: DatabaseConfig = DatabaseConfig()
    reasons: Path | None = Field(
        None, description="reason tree YAML (relative to this file) seeded into the database "
                          "at start; default: the built-in tree for every enterprise")
    stop_lookback_s: float = Field(
        43200.0, gt=0, le=7 * 86400,
        description="a stop that began this long before a window is found whole")
    alerts: AlertsConfig = AlertsConfig()
