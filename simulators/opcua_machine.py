"""One simulated CNC as an asyncua OPC UA server.

Namespace ``urn:shopfloor:sim`` (index 2); under Objects an object named after
the machine (``ns=2;s={machine}``) with the variables ``ns=2;s={machine}.State``
(Int32 device state code), ``.PartCount`` (UInt32), ``.RejectCount`` (UInt32) and
``.SpindleLoad`` (Double, an analog item: its ``EURange`` property is 0..100, so a client
can ask for a percent deadband). A machine with ``products`` also serves
``ns=2;s={machine}.Product`` (String, the product being made), and a machine with
``stop_reasons`` ``ns=2;s={machine}.StopReason`` (UInt16, the PLC's reason code of the
stop it is in, 0 for none; written with the state). Every write carries the event time
as SourceTimestamp and ServerTimestamp.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from asyncua import Node, Server, ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager

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
EU_RANGES: dict[str, tuple[float, float]] = {"SpindleLoad": (0.0, 100.0)}
PRODUCT = "Product"  # served only by machines with products
STOP_REASON = "StopReason"  # served only by machines with stop_reasons
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


@dataclass
class ServerOptions:
    """Server capabilities for tests; the defaults are the plain simulator.

    ``extra_variables``: Double variables ``ns=2;s={machine}.Var{i}`` (value i), with an
    ``EURange`` property ``extra_eu_range`` when that is set.
    ``max_items_per_call``: published as MaxMonitoredItemsPerCall / MaxNodesPerRead
    (unless ``publish_limits`` is False) and enforced (BadTooManyOperations);
    ``largest_call`` records the largest call seen.
    ``certificate``/``private_key``/``policies``: secure endpoints only (no None policy);
    ``application_uri``: the server's (it must match its certificate's).
    ``users``: user name -> password; ``user_certificates``: accepted X.509 user
    certificates (DER files); with either, anonymous sessions are refused.
    """

    extra_variables: int = 0
    extra_eu_range: tuple[float, float] | None = None
    max_items_per_call: int | None = None
    publish_limits: bool = True
    certificate: Path | None = None
    private_key: Path | None = None
    policies: list[ua.SecurityPolicyType] = field(default_factory=list)
    application_uri: str | None = None
    users: dict[str, str] = field(default_factory=dict)
    user_certificates: list[Path] = field(default_factory=list)
    largest_call: dict[str, int] = field(default_factory=dict)


class _Users(UserManager):
    def __init__(self, users: dict[str, str], certificates: list[Path]):
        self.users = users
        self.certificates = {Path(c).read_bytes() for c in certificates}

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        if username is not None and self.users.get(username) == password:
            return User(role=UserRole.User)
        if certificate is not None and bytes(certificate) in self.certificates:
            return User(role=UserRole.User)
        return None


async def _add_eu_range(var: Node, low_high: tuple[float, float]) -> None:
    """The analog item's EURange property (OPC UA Part 8), e.g. for percent deadbands."""
    nid = var.nodeid
    await var.add_property(ua.NodeId(f"{nid.Identifier}.EURange", nid.NamespaceIndex),
                           ua.QualifiedName("EURange", 0),
                           ua.Range(Low=low_high[0], High=low_high[1]),
                           datatype=ua.NodeId(ua.ObjectIds.Range))


class OpcUaMachine:
    """Serves one machine's variables; ``apply`` writes an event's changes."""

    def __init__(self, spec: MachineSpec, options: ServerOptions | None = None):
        self.spec = spec
        self.url = f"opc.tcp://{spec.host}:{spec.port}"
        self.options = options or ServerOptions()
        self._server = self._new_server()
        self._nodes: dict[str, ua.NodeId] = {}
        # the machine's current values, kept while the server is down (outage)
        self._values: dict[str, ua.DataValue] = {}
        self._built = False  # self._server has the address space (it may not listen yet)
        self._up = False  # ... and listens
        self._spare: Server | None = None  # built, not listening: answers after an outage
        self._outage_ready = False

    def _new_server(self) -> Server:
        opts = self.options
        return (Server(user_manager=_Users(opts.users, opts.user_certificates))
                if opts.users or opts.user_certificates else Server())

    async def start(self) -> None:
        """Build the address space (unless built) and listen; returns once the port accepts
        clients. The variables hold the machine's current values from the first read on."""
        if not self._built:
            await self._build(self._server)
            self._built = True
        await self._server.start()
        self._up = True
        if self.spec.outage is not None and not self._outage_ready:
            # the server that answers after the outage, built before the clock starts:
            # building takes seconds of CPU that would stall the other machines mid-run
            self._spare, self._outage_ready = self._new_server(), True
            await self._build(self._spare)

    async def _build(self, server: Server) -> None:
        await server.init()
        server.set_endpoint(self.url + "/")
        server.set_server_name(f"shopfloor simulated machine {self.spec.id}")
        await self._configure(server)
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
            if name in EU_RANGES:
                await _add_eu_range(var, EU_RANGES[name])
        if self.spec.products:
            var = await obj.add_variable(
                ua.NodeId(f"{machine}.{PRODUCT}", idx), ua.QualifiedName(PRODUCT, idx),
                ua.Variant(self.spec.products[0].id, ua.VariantType.String))
            self._nodes[PRODUCT] = var.nodeid
        if self.spec.stop_reasons is not None:
            var = await obj.add_variable(
                ua.NodeId(f"{machine}.{STOP_REASON}", idx), ua.QualifiedName(STOP_REASON, idx),
                ua.Variant(0, ua.VariantType.UInt16))
            self._nodes[STOP_REASON] = var.nodeid
        for i in range(self.options.extra_variables):
            var = await obj.add_variable(ua.NodeId(f"{machine}.Var{i}", idx),
                                         ua.QualifiedName(f"Var{i}", idx), float(i))
            if self.options.extra_eu_range is not None:
                await _add_eu_range(var, self.options.extra_eu_range)

    async def _configure(self, server: Server) -> None:
        opts = self.options
        if opts.application_uri is not None:
            await server.set_application_uri(opts.application_uri)
        if opts.certificate is not None and opts.private_key is not None:
            await server.load_certificate(str(opts.certificate))
            await server.load_private_key(str(opts.private_key))
            server.set_security_policy(opts.policies)
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        tokens = ([ua.UserNameIdentityToken] if opts.users else []) + (
            [ua.X509IdentityToken] if opts.user_certificates else [])
        if tokens:
            server.set_identity_tokens(tokens)
        if opts.max_items_per_call is not None:
            await self._limit(server, opts.max_items_per_call)

    async def _limit(self, server: Server, limit: int) -> None:
        caps = ua.ObjectIds
        for nid in (caps.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall,
                    caps.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead):
            published = limit if self.options.publish_limits else 0  # 0: no limit published
            await server.get_node(ua.NodeId(nid)).write_value(
                ua.Variant(published, ua.VariantType.UInt32))
        iserver, seen = server.iserver, self.options.largest_call
        create = iserver.subscription_service.create_monitored_items
        read = iserver.attribute_service.read

        def check(kind: str, n: int) -> None:
            seen[kind] = max(seen.get(kind, 0), n)
            if n > limit:
                raise ua.UaStatusCodeError(ua.StatusCodes.BadTooManyOperations)

        async def limited_create(params: ua.CreateMonitoredItemsParameters) -> Any:
            check("create_monitored_items", len(params.ItemsToCreate))
            return await create(params)

        def limited_read(params: ua.ReadParameters) -> Any:
            check("read", len(params.NodesToRead))
            return read(params)

        iserver.subscription_service.create_monitored_items = limited_create  # type: ignore[method-assign]
        iserver.attribute_service.read = limited_read  # type: ignore[method-assign]

    async def _write(self, name: str, value: float | int | str, when: datetime) -> None:
        vtype = {PRODUCT: ua.VariantType.String, STOP_REASON: ua.VariantType.UInt16}.get(
            name) or VARIABLES[name]
        dv = ua.DataValue(ua.Variant(value, vtype),
                          SourceTimestamp=when, ServerTimestamp=when)
        self._values[name] = dv
        if self._built:
            await self._server.write_attribute_value(self._nodes[name], dv)

    async def apply(self, ev: Event, ts_ns: int) -> None:
        when = ns_to_datetime(ts_ns)
        if ev.kind is Kind.STATE:
            if ev.product is not None and PRODUCT in self._nodes:  # before the state
                await self._write(PRODUCT, ev.product, when)
            if STOP_REASON in self._nodes:  # the same source time as the state
                await self._write(STOP_REASON, ev.stop_reason, when)
            await self._write("State", DEVICE_STATE_CODES[ev.state], when)
            await self._write("SpindleLoad", ev.spindle_load, when)
        elif ev.kind is Kind.PART:
            await self._write("PartCount", ev.part_count, when)
            if ev.reject:
                await self._write("RejectCount", ev.reject_count, when)
        else:
            await self._write("SpindleLoad", ev.spindle_load, when)

    async def write_extra(self, i: int, value: float) -> None:
        """Set ``{machine}.Var{i}`` (``ServerOptions.extra_variables``), stamped now."""
        now = datetime.now(UTC)
        dv = ua.DataValue(ua.Variant(float(value), ua.VariantType.Double),
                          SourceTimestamp=now, ServerTimestamp=now)
        await self._server.write_attribute_value(
            ua.NodeId(f"{self.spec.id}.Var{i}", NAMESPACE_INDEX), dv)

    async def stop(self) -> None:
        if self._up:
            self._up = False
            self._built = False
            await self._server.stop()

    async def go_offline(self) -> None:
        """Outage: stop answering (clients lose their sessions); the spare server takes
        the machine's values now and is kept current by ``apply``."""
        await self.stop()
        server, self._spare = self._spare, None
        if server is None:  # no spare built at start
            server = self._new_server()
            await self._build(server)
        self._server, self._built = server, True
        for name, dv in self._values.items():  # what the machine has now
            await server.write_attribute_value(self._nodes[name], dv)

    async def go_online(self) -> None:
        """After an outage: the server prepared in ``go_offline`` listens, serving the
        machine's current values from the first read."""
        await self.start()
