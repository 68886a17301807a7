"""Gateway configuration (YAML, see ``gateway.sample.yaml``)."""

from __future__ import annotations

from pydantic import Field

from shopfloor.config import Strict
from shopfloor.mqtt import MqttConfig

from .metrics import MetricsConfig
from .store import StoreConfig


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
    metrics: MetricsConfig | None = Field(None, description="Prometheus endpoint; off if unset")
    store: StoreConfig
