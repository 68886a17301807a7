"""The protocols the edge speaks: one driver class per ``protocol`` value of the config.

A new protocol is a folder beside ``modbus/`` and ``opcua/`` (its config model, codec
and driver), one entry in ``DRIVERS`` and one member of ``config.DeviceConfig``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .config import DeviceConfig
from .driver import Driver, Sink
from .modbus.driver import ModbusDriver
from .opcua.driver import OpcUaDriver

# protocol -> driver class, called as (device config, sink, heartbeat_s)
DRIVERS: dict[str, Callable[[Any, Sink, float], Driver]] = {
    "modbus": ModbusDriver,
    "opcua": OpcUaDriver,
}


def driver_for(device: DeviceConfig, sink: Sink, heartbeat_s: float) -> Driver:
    """The driver of ``device`` (not yet running: ``await driver.run()``)."""
    return DRIVERS[device.protocol](device, sink, heartbeat_s)
