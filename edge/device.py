"""What every device config has, whatever its protocol: an id, a topic path and tags.

``DeviceBase`` and ``TagBase`` are the bases of each protocol's models
(``modbus/config.py``, ``opcua/config.py``); ``config.DeviceConfig`` is their union.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from shopfloor.config import Segment, Strict
from shopfloor.contract import SIGNALS, TAG_RE, DevicePath


class TagBase(Strict):
    name: str = Field(pattern=TAG_RE.pattern, description="tag name on the device side")
    signal: str | None = Field(None, description=f"semantic signal, one of {SIGNALS}")
    map: dict[int, str] | None = Field(None, description="raw code -> published string")
    bits: int | None = Field(None, ge=1, le=64, description="counter width (rollover)")
    unit: str | None = None

    @field_validator("signal")
    @classmethod
    def _known_signal(cls, v: str | None) -> str | None:
        if v is not None and v not in SIGNALS:
            raise ValueError(f"unknown signal {v!r}; expected one of {', '.join(SIGNALS)}")
        return v

    @property
    def published_name(self) -> str:
        return self.signal or self.name

    @property
    def value_type(self) -> str | None:
        """The value's type as the device config declares it (None: as it comes)."""
        return None


class DevicePathConfig(Strict):
    enterprise: Segment
    site: Segment
    area: Segment
    line: Segment


class DeviceBase(Strict):
    id: Segment = Field(description="device segment of the topic")
    path: DevicePathConfig

    @model_validator(mode="after")
    def _unique_names(self) -> DeviceBase:
        seen: set[str] = set()
        for tag in self.tags:  # type: ignore[attr-defined]
            if tag.published_name in seen:
                raise ValueError(f"two tags publish as {tag.published_name!r}")
            seen.add(tag.published_name)
        return self

    @property
    def device_path(self) -> DevicePath:
        p = self.path
        return DevicePath(p.enterprise, p.site, p.area, p.line, self.id)

    @property
    def where(self) -> str:
        """Where the device is reached, for logs and the check table (no secrets)."""
        raise NotImplementedError
