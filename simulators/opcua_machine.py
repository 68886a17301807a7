"""One simulated CNC as an asyncua OPC UA server.

Namespace ``urn:shopfloor:sim`` (index 2); under Objects an object named after
the machine (``ns=2;s={machine}``) with the variables ``ns=2;s={machine}.State``
(Int32 device state code), ``.PartCount`` (UInt32), ``.RejectCount`` (UInt32) and
``.SpindleLoad`` (Double). Every write carries the event time as SourceTimestamp
and ServerTimestamp.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from asyncua import Server, ua

from .codes import DEVICE_STATE_CODES
from .machine import Event, Kind
from .scenario import MachineSpec

NAMESPACE_URI = "urn:shopfloor:sim"
NAMESPACE_INDEX = 2
VARIABLES: dict[str, ua.VariantType] = {
    "State": ua.VariantType.Int32,
    "PartCount": ua.VariantType.UInt32,
    "RejectCount": ua.VariantType.UInt32,
    "SpindleLoad": ua.VariantType.Double,
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)



class _QuietSecurityNotes(logging.Filter):
    """Drop asyncua's start-up notes about running without security (we mean to)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(("No signing policy", "No encrypting policy"))


logging.getLogger("asyncua").setLevel(logging.WARNING)
logging.getLogger("asyncua.server.server").addFilter(_QuietSecurityNotes())


def node_id(machine: str, variable: str) -> str:
    """The string node id of a machine variable, e.g. ``ns=2;s=cnc-01.State``."""
    return f"ns={NAMESPACE_INDEX};s={machine}.{variable}"


def ns_to_datetime(ts_ns: int) -> datetime:
    """Exact for microsecond-aligned ``ts_ns`` (OPC UA serves 100 ns, datetime holds 1 us)."""
    return _EPOCH + timedelta(microseconds=ts_ns // 1000)


class OpcUaMachine:
    """Serves one machine's variables; ``apply`` writes an event's changes."""

    def __init__(self, spec: MachineSpec):
        self.spec = spec
        self.url = f"opc.tcp://{spec.host}:{spec.port}"
        self._server = Server()
        self._nodes: dict[str, ua.NodeId] = {}

    async def start(self) -> None:
        """Build the address space and listen; returns once the port accepts clients."""
        server = self._server
        await server.init()
        server.set_endpoint(self.url + "/")
        server.set_server_name(f"shopfloor simulated machine {self.spec.id}")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace(NAMESPACE_URI)
        if idx != NAMESPACE_INDEX:
            raise RuntimeError(f"{NAMESPACE_URI} got namespace index {idx}, expected 2")
        machine = self.spec.id
        obj = await server.nodes.objects.add_object(
            ua.NodeId(machine, idx), ua.QualifiedName(machine, idx))
        for name, vtype in VARIABLES.items():
            var = await obj.add_variable(
                ua.NodeId(f"{machine}.{name}", idx), ua.QualifiedName(name, idx),
                ua.Variant(0.0 if vtype is ua.VariantType.Double else 0, vtype))
            self._nodes[name] = var.nodeid
        await server.start()

    async def _write(self, name: str, value: float | int, when: datetime) -> None:
        dv = ua.DataValue(ua.Variant(value, VARIABLES[name]),
                          SourceTimestamp=when, ServerTimestamp=when)
        await self._server.write_attribute_value(self._nodes[name], dv)

    async def apply(self, ev: Event, ts_ns: int) -> None:
        when = ns_to_datetime(ts_ns)
        if ev.kind is Kind.STATE:
            await self._write("State", DEVICE_STATE_CODES[ev.state], when)
            await self._write("SpindleLoad", ev.spindle_load, when)
        elif ev.kind is Kind.PART:
            await self._write("PartCount", ev.part_count, when)
            if ev.reject:
                await self._write("RejectCount", ev.reject_count, when)
        else:
            await self._write("SpindleLoad", ev.spindle_load, when)

    async def stop(self) -> None:
        await self._server.stop()
