"""Sparkplug metrics -> our samples: which asset a group/node/device is, which metric is
which semantic signal (``state`` through its value map), the rest as plain tags.

``Mapper(mappings, accept).target(group, node, device)`` resolves (and caches) a device's
``Target``; ``Target.sample(name, value, quality, ts_ns)`` is one metric value as a
``Sample`` (or None when it is not stored).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from shopfloor.contract import (
    MAX_STRING_VALUE,
    MAX_TAG_LENGTH,
    SIGNAL_STATE,
    ContractError,
    DevicePath,
    Quality,
    Sample,
    State,
)
from shopfloor.sparkplug.payload import BDSEQ_METRIC, Raw, SparkplugError

from .config import MAPPED_SIGNALS, DeviceMapping, value_key

_NOT_TAG = re.compile(r"[^A-Za-z0-9_.\-/:]")
_STATE_NAMES = {s.value for s in State}


def tag_name(metric: str) -> str:
    """A metric name as a tag: characters outside the tag alphabet become ``_``."""
    name = _NOT_TAG.sub("_", metric)[:MAX_TAG_LENGTH]
    return name if name[:1] not in ("", ".", "-", "/", ":") else f"_{name}"[:MAX_TAG_LENGTH]


def is_control(metric: str) -> bool:
    """Node bookkeeping, never stored: bdSeq and the ``Node Control/...`` metrics."""
    return metric == BDSEQ_METRIC or metric.startswith("Node Control/")


@dataclass(frozen=True)
class Target:
    path: DevicePath
    signal_of: dict[str, str]  # metric name -> signal
    state_map: dict[str, State] | None
    unmapped: bool

    def sample(self, metric: str, value: Raw, quality: Quality, ts_ns: int) -> Sample | None:
        """One metric value as a sample; None for bookkeeping, unmapped metrics of a device
        that keeps none, and values no store takes (non-finite, over 64 bits)."""
        if is_control(metric):
            return None
        signal = self.signal_of.get(metric)
        if signal == SIGNAL_STATE:
            value, quality = self._state(value, quality)
        elif signal is None and not self.unmapped:
            return None
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, int) and not isinstance(value, bool) and \
                not -(2**63) <= value < 2**64:
            return None
        if isinstance(value, str):
            value = value[:MAX_STRING_VALUE]
        return Sample(signal or tag_name(metric), ts_ns, value, quality)

    def _state(self, value: Raw, quality: Quality) -> tuple[str, Quality]:
        if self.state_map is not None:
            state = self.state_map.get(value_key(value))
            if state is not None:
                return state.value, quality
        elif isinstance(value, str) and value in _STATE_NAMES:
            return value, quality
        return f"UNKNOWN:{value}"[:MAX_STRING_VALUE], Quality.UNCERTAIN


class Mapper:
    def __init__(self, mappings: list[DeviceMapping],
                 accept: Callable[[DevicePath], bool] | None = None):
        self._mappings = mappings
        self._accept = accept
        self._cache: dict[tuple[str, str, str | None], Target | SparkplugError] = {}

    def target(self, group: str, node: str, device: str | None) -> Target:
        """The device's target; SparkplugError ``unknown_device`` (no mapping, or refused by
        ``accept``) or ``sp_bad_asset`` (ids that make no asset path)."""
        key = (group, node, device)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._resolve(group, node, device)
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[key] = hit
        if isinstance(hit, SparkplugError):
            raise hit
        return hit

    def _resolve(self, group: str, node: str, device: str | None) -> Target | SparkplugError:
        where = f"{group}/{node}" + (f"/{device}" if device is not None else "")
        m = next((m for m in self._mappings if m.matches(group, node, device)), None)
        if m is None:
            return SparkplugError("unknown_device", f"no sparkplug mapping for {where!r}")
        try:
            path = DevicePath(*m.asset_of(group, node, device).split("/"))
        except (ContractError, TypeError) as exc:
            return SparkplugError("sp_bad_asset", f"{where!r} maps to no asset path: {exc}")
        if self._accept is not None and not self._accept(path):
            return SparkplugError("unknown_device", f"device {path.asset_id!r} is not in `accept`")
        signal_of = {src.metric: name for name, src in m.signals.items()}
        for name in MAPPED_SIGNALS:  # a metric named like a signal is that signal by default
            if name not in m.signals:
                signal_of.setdefault(name, name)
        state = m.signals.get(SIGNAL_STATE)
        return Target(path, signal_of, state.map if state else None, m.unmapped)
