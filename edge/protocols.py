"""The protocols the edge speaks: one driver class per ``protocol`` value of the config.

A new protocol is a folder beside ``modbus/`` and ``opcua/`` (its config model, codec
and driver), one entry in ``DRIVERS`` and one member of ``config.DeviceConfig``; a
protocol whose devices share something (Modbus: a serial line or gateway connection)
also has an entry in ``GROUPS``, building all its devices' drivers at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .config import DeviceConfig
from .driver import Driver, Sink
from .modbus.driver import ModbusDriver, modbus_drivers
from .opcua.driver import OpcUaDriver

# protocol -> driver class, called as (device config, sink, heartbeat_s)
DRIVERS: dict[str, Callable[[Any, Sink, float], Driver]] = {
    "modbus": ModbusDriver,
    "opcua": OpcUaDriver,
}
# protocol -> (its devices, sink, heartbeat_s) -> their drivers, in the devices' order
GROUPS: dict[str, Callable[[list[Any], Sink, float], Sequence[Driver]]] = {
    "modbus": modbus_drivers,
}


def driver_for(device: DeviceConfig, sink: Sink, heartbeat_s: float) -> Driver:
    """The driver of ``device`` alone (not yet running: ``await driver.run()``)."""
    return DRIVERS[device.protocol](device, sink, heartbeat_s)


def drivers_for(devices: Sequence[DeviceConfig], sink: Sink,
                heartbeat_s: float) -> dict[str, Driver]:
    """Every device's driver by device id, in the devices' order; the devices of one
    protocol built together where they share (``GROUPS``)."""
    built: dict[str, Driver] = {}
    for protocol in dict.fromkeys(d.protocol for d in devices):
        mine = [d for d in devices if d.protocol == protocol]
        group = GROUPS.get(protocol)
        drivers = (group(mine, sink, heartbeat_s) if group is not None
                   else [driver_for(d, sink, heartbeat_s) for d in mine])
        built.update(zip((d.id for d in mine), drivers, strict=True))
    return {d.id: built[d.id] for d in devices}
