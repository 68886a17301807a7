"""The two configs of federation: ``FederationConfig`` (the ``federation:`` section of an
enterprise's server config: what it shares, with whom) and ``ClusterConfig`` (the cluster
server's file: who may push, where aggregates are kept)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from shopfloor.config import Segment, Strict
from shopfloor.server.auth import AuthConfig, HashedSecret

PeriodKind = Literal["day", "month"]
Section = Literal["equipment", "oee", "completeness"]


class FederationConfig(Strict):
    """What this enterprise shares with a cluster server, pushed outbound only."""

    cluster_url: str = Field(
        description="the cluster server's base URL, e.g. https://cluster.example.org "
                    "(aggregates are POSTed to /api/v1/federation/aggregates)")
    enterprise: Segment = Field(description="this enterprise's id in the registry")
    token: SecretStr = Field(
        min_length=16, description="this enterprise's credential at the cluster server "
                                   "(e.g. ${SHOPFLOOR_FEDERATION_TOKEN}); never logged")
    periods: list[PeriodKind] = Field(["day", "month"], min_length=1,
                                      description="period kinds to share")
    share: list[Section] = Field(
        ["equipment", "oee", "completeness"], min_length=1,
        description="sections of each aggregate that leave the enterprise: equipment "
                    "counts by class, OEE totals (times and counts), data completeness")
    queue: Path = Field("federation-outbox.db", validate_default=True,
                        description="durable outbox (SQLite), relative to this file")
    interval_s: float = Field(60.0, gt=0, le=86400,
                              description="time between rounds (compute, then push)")
    recent_days: int = Field(
        2, ge=1, le=62, description="each round recomputes the periods touching this many "
                                    "last days (late data changes them: a new revision)")
    backfill_days: int = Field(
        62, ge=1, le=400, description="the first round after a start sends this far back")
    timeout_s: float = Field(10.0, gt=0, le=300, description="HTTP timeout per request")
    verify_tls: bool = Field(True, description="check the cluster's TLS certificate")


class EnterpriseAccount(HashedSecret):
    """An enterprise allowed to push, with its credential (as its SHA-256)."""

    id: Segment = Field(description="the enterprise id its aggregates carry")
    name: str | None = Field(None, description="display name (the id when unset)")


class ClusterHttp(Strict):
    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8100, ge=0, le=65535)


class ClusterConfig(Strict):
    """The cluster server (`shopfloor cluster --config FILE`)."""

    name: str = Field("cluster", min_length=1, description="the cluster's display name")
    database: Path = Field("cluster.db", validate_default=True,
                           description="aggregates (SQLite), relative to this file")
    http: ClusterHttp = ClusterHttp()
    enterprises: list[EnterpriseAccount] = Field(
        [], description="who may push; a push with another credential is refused (401/403)")
    auth: AuthConfig = Field(AuthConfig(), description="tokens for reading the cluster views")
    region: str = Field("Tianjin", description="the region whose published figures "
                                               "(reference/indicators.csv) are compared to")
    reference: Path | None = Field(
        None, description="published indicators CSV (default: the shared reference table)")
