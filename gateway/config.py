"""Gateway configuration (YAML, see ``gateway.sample.yaml``)."""

from __future__ import annotations

import re
from fnmatch import fnmatchcase

from pydantic import Field, field_validator

from shopfloor.config import MetricsEndpoint, Strict
from shopfloor.contract import MAX_CLOCK_SKEW_NS, DevicePath
from shopfloor.mqtt import MqttConfig
from shopfloor.storage import StoreConfig


class BatchConfig(Strict):
    max_samples: int = Field(5000, ge=1, le=1_000_000,
                             description="write once this many samples are waiting")
    max_interval_s: float = Field(0.2, gt=0, le=60,
                                  description="or once the oldest waiting message is this old")


class CompletenessConfig(Strict):
    enabled: bool = Field(True, description="ask edge agents to replay seq gaps")
    timeout_s: float = Field(10.0, gt=0, le=3600,
                             description="a gap open this long is asked for (then backs off)")
    max_attempts: int = Field(6, ge=1, le=100,
                              description="replay requests per gap before it counts as lost")
    max_request_seqs: int = Field(1000, ge=1, le=100_000, description="seqs per request")


_PATTERN_SEG = re.compile(r"^[A-Za-z0-9_.\-*?\[\]!+]{1,64}$")


def device_matches(pattern: str, device: DevicePath) -> bool:
    """Whether ``enterprise/site/area/line/device`` matches an ``accept`` pattern: five
    ``/``-separated segments, each a glob (``*``, ``?``, ``[..]``; ``+`` = any segment), or
    fewer segments ending in ``#`` (the rest of the path, MQTT-style)."""
    segs = pattern.split("/")
    path = device.asset_id.split("/")
    if segs[-1] == "#":
        segs = segs[:-1]
        path = path[:len(segs)]
    elif len(segs) != len(path):
        return False
    return all(s == "+" or fnmatchcase(p, s) for s, p in zip(segs, path, strict=True))


class GatewayConfig(Strict):
    mqtt: MqttConfig = MqttConfig()
    client_id: str = Field("shopfloor-gateway", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$",
                           description="MQTT client id = persistent session; unique per gateway")
    share_group: str | None = Field(
        "gateways", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$",
        description="shared subscription group (gateways in a group split the load); "
                    "null subscribes without sharing")
    batch: BatchConfig = BatchConfig()
    queue_max_messages: int = Field(1000, ge=1, le=1_000_000,
                                    description="decoded messages waiting to be written; when "
                                                "full the gateway stops reading (backpressure)")
    retry_max_s: float = Field(30.0, gt=0, description="cap of the write retry backoff")
    drain_timeout_s: float = Field(10.0, ge=0, description="on stop: time to flush what is queued")
    stats_interval_s: float = Field(60.0, gt=0, description="how often to log counters")
    completeness: CompletenessConfig = CompletenessConfig()
    metrics: MetricsEndpoint | None = Field(None, description="Prometheus endpoint; off if unset")
    accept: list[str] | None = Field(
        None, min_length=1, max_length=10_000,
        description="device allowlist: patterns over enterprise/site/area/line/device, e.g. "
                    "'acme/plant1/#', 'acme/+/machining/line1/cnc-*'; data from other devices "
                    "is rejected as unknown_device. Unset accepts every device")
    agents: dict[str, list[str]] | None = Field(
        None, max_length=10_000,
        description="which devices each edge agent may publish for: agent id -> patterns as "
                    "in accept, e.g. {edge-1: ['acme/plant1/machining/#']}; a batch whose "
                    "agent is not listed for its topic's device is rejected as "
                    "agent_not_allowed (its seq is not recorded: it did not come from that "
                    "agent). Unset: any agent for any device")
    clock_step_s: float = Field(
        60.0, gt=0, le=86_400,
        description="an edge clock this far off the gateway's (source time vs receive time) "
                    "is recorded as a clock_skew_s sample on the device, and the server "
                    "flags its windows clock_skew")
    max_clock_skew_s: float = Field(
        MAX_CLOCK_SKEW_NS / 1e9, gt=0, le=100 * 366 * 86_400,
        description="samples whose source ts is further than this from the gateway's clock "
                    "are rejected (bad_timestamp)")
    store: StoreConfig

    @field_validator("accept")
    @classmethod
    def _check_accept(cls, v: list[str] | None) -> list[str] | None:
        for p in v or []:
            _check_pattern(p, "accept")
        return v

    @field_validator("agents")
    @classmethod
    def _check_agents(cls, v: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        for agent, patterns in (v or {}).items():
            if not _PATTERN_SEG.fullmatch(agent) or not patterns:
                raise ValueError(f"agents: {agent!r}: an agent id with at least one pattern")
            for p in patterns:
                _check_pattern(p, f"agents.{agent}")
        return v

    def accepts(self, device: DevicePath) -> bool:
        return self.accept is None or any(device_matches(p, device) for p in self.accept)

    def agent_may(self, agent: str, device: DevicePath) -> bool:
        """Whether ``agents`` lets ``agent`` publish for ``device`` (always, when unset)."""
        return self.agents is None or any(
            device_matches(p, device) for p in self.agents.get(agent, ()))


def _check_pattern(p: str, key: str) -> None:
    segs = p.split("/")
    n = len(segs) - 1 if segs[-1] == "#" else len(segs)
    if not (0 <= n <= 5) or (segs[-1] != "#" and n != 5) or \
            not all(_PATTERN_SEG.fullmatch(s) for s in segs[:n]) or \
            any(s == "#" for s in segs[:n]):
        raise ValueError(
            f"{key} pattern {p!r}: give enterprise/site/area/line/device (globs "
            "'*', '?', '[..]', '+' for any segment), or a prefix ending in '/#'")
