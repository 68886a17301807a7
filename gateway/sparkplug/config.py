"""The gateway's ``sparkplug:`` section: host behaviour and the mapping of Sparkplug
group/node/device/metric to asset paths and semantic signals (see ``gateway.sample.yaml``).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from shopfloor.config import Strict
from shopfloor.contract import (
    SIGNAL_PART_COUNT,
    SIGNAL_PRODUCT,
    SIGNAL_REJECT_COUNT,
    SIGNAL_STATE,
    State,
)

MAPPED_SIGNALS = (SIGNAL_STATE, SIGNAL_PART_COUNT, SIGNAL_REJECT_COUNT, SIGNAL_PRODUCT)


def value_key(value: object) -> str:
    """How a raw value is looked up in a ``map``: integers (and integral floats) as decimal,
    booleans as ``true``/``false``, strings as they are."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class SignalSource(Strict):
    metric: str = Field(min_length=1, description="Sparkplug metric name (as in its birth)")
    map: dict[str, State] | None = Field(
        None, description="state only: raw value -> state name (keys: integers, booleans or "
                          "strings); unset: the values are state names already")

    @field_validator("map", mode="before")
    @classmethod
    def _string_keys(cls, v: object) -> object:
        return {value_key(k): s for k, s in v.items()} if isinstance(v, dict) else v


class DeviceMapping(Strict):
    """Which Sparkplug device (or edge node) is which asset, and which metrics are signals."""

    group: str = Field(description="group id (glob: * ? [..])")
    node: str = Field(description="edge node id (glob)")
    device: str | None = Field(None, description="device id (glob); unset: the node's own "
                                                 "metrics (NBIRTH/NDATA)")
    asset: str = Field(description="enterprise/site/area/line/device; {group}, {node}, "
                                   "{device} are replaced by the ids")
    signals: dict[str, SignalSource] = Field(
        default_factory=dict,
        description=f"semantic signal ({', '.join(MAPPED_SIGNALS)}) -> its metric; a metric "
                    "named like a signal is that signal unless mapped otherwise")
    unmapped: bool = Field(True, description="store the other metrics as plain tags (their "
                                             "names, characters outside the tag alphabet as _)")

    @field_validator("signals")
    @classmethod
    def _known(cls, v: dict[str, SignalSource]) -> dict[str, SignalSource]:
        for name, src in v.items():
            if name not in MAPPED_SIGNALS:
                raise ValueError(f"signal {name!r}: expected one of {', '.join(MAPPED_SIGNALS)}")
            if src.map is not None and name != SIGNAL_STATE:
                raise ValueError(f"signal {name!r}: only state takes a value map")
        return v

    @model_validator(mode="after")
    def _asset_shape(self) -> DeviceMapping:
        if len(self.asset.split("/")) != 5:
            raise ValueError(f"asset {self.asset!r}: give enterprise/site/area/line/device")
        return self

    def matches(self, group: str, node: str, device: str | None) -> bool:
        if (device is None) != (self.device is None):
            return False
        return fnmatchcase(group, self.group) and fnmatchcase(node, self.node) and \
            (device is None or fnmatchcase(device, self.device or ""))

    def asset_of(self, group: str, node: str, device: str | None) -> str:
        return self.asset.replace("{group}", group).replace("{node}", node) \
            .replace("{device}", device or "")


class SparkplugHostConfig(Strict):
    host_id: str | None = Field(
        None, pattern=r"^[^/+#]{1,128}$",
        description="publish STATE as this primary host application (spBv1.0/STATE/<id>, "
                    "retained; the death as the MQTT will); unset: a listening host only")
    rebirth_min_interval_s: float = Field(
        5.0, ge=0, le=3600, description="at most one rebirth request per edge node this often")
    state_path: Path | None = Field(
        None, description="SQLite file keeping the births (aliases, datatypes) across "
                          "restarts, so data redelivered after one is understood; unset: "
                          "in memory (data before the next birth is rejected, a rebirth asked)")
    devices: list[DeviceMapping] = Field(
        default_factory=list, description="the first mapping that matches a message's "
                                          "group/node/device decides; unmatched devices are "
                                          "rejected as unknown_device")
