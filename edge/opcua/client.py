"""OPC UA session set-up shared by the driver and ``edge check``.

``opcua_client(device)`` is a configured, not yet connected asyncua ``Client``;
``connect(device)`` returns a connected asyncua ``Client`` with the device's security
policy, identity and trust list; ``resolve(client, tags)`` turns node ids (``ns=``,
``nsu=``) and browse paths into nodes; ``operation_limits`` reads the server's
OperationLimits; ``call_chunked``/``read_values`` keep every call within them (and halve
the chunk when a server refuses one with BadTooManyOperations).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from asyncua import Client, Node, ua
from asyncua.crypto import security_policies
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator
from asyncua.crypto.validator import CertificateValidatorOptions as Opt

from shopfloor.config import secret

from .config import DataChangeFilter, OpcUaDevice, OpcUaTag

log = logging.getLogger(__name__)

POLICIES: dict[str, type[security_policies.SecurityPolicy]] = {
    "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
    "Aes128_Sha256_RsaOaep": security_policies.SecurityPolicyAes128Sha256RsaOaep,
    "Aes256_Sha256_RsaPss": security_policies.SecurityPolicyAes256Sha256RsaPss,
}
T = TypeVar("T")


async def opcua_client(dev: OpcUaDevice) -> Client:
    """A configured, not yet connected client (security, identity, trust list)."""
    client = Client(dev.endpoint, timeout=dev.timeout_s)
    sec = dev.security
    if sec is not None:
        client.application_uri = sec.application_uri
        if sec.trust_dir is not None:
            if not any(Path(sec.trust_dir).glob("*")):
                raise ua.UaError(f"trust_dir {sec.trust_dir} holds no certificate: "
                                 "copy the server's certificate into it")
            store = TrustStore([Path(sec.trust_dir)], [])
            await store.load()
            # asyncua's default options check time and URI only, not the trust store.
            opts = (Opt.TIME_RANGE | Opt.URI | Opt.TRUSTED | Opt.REVOKED | Opt.PEER_SERVER)
            client.certificate_validator = CertificateValidator(opts, trust_store=store)
        await client.set_security(
            POLICIES[sec.policy], str(sec.certificate), str(sec.private_key),
            private_key_password=secret(sec.private_key_password),
            server_certificate=str(sec.server_certificate) if sec.server_certificate else None,
            mode=getattr(ua.MessageSecurityMode, sec.mode))
    if dev.username is not None:
        client.set_user(dev.username)
        client.set_password(secret(dev.password) or "")
    if dev.user_certificate is not None and dev.user_private_key is not None:
        await client.load_client_certificate(str(dev.user_certificate))
        await client.load_private_key(str(dev.user_private_key))
    return client


class NotTrusted(ua.UaError):
    """The server closed the secure channel while it was opened: it does not trust the
    agent's certificate (or takes neither its policy nor its mode)."""

    def __init__(self, dev: OpcUaDevice):
        sec = dev.security
        assert sec is not None
        super().__init__(
            f"{dev.endpoint} refused the secure channel ({sec.policy}, {sec.mode}): trust "
            f"this agent's certificate {sec.certificate} on the server (e.g. move it from "
            f"the server's rejected certificates to its trusted ones)")


async def open_session(client: Client, dev: OpcUaDevice) -> None:
    """``client.connect()`` within the device's timeout. With security, a connection the
    server accepted and then closed while the channel was opened is ``NotTrusted`` (one
    line naming the certificate to trust, not the library's traceback)."""
    try:
        await asyncio.wait_for(client.connect(), dev.timeout_s * 2)
    except (ConnectionError, AssertionError) as exc:  # not its subclasses: refused, reset
        if dev.security is None or type(exc) not in (ConnectionError, AssertionError):
            raise
        raise NotTrusted(dev) from None


async def connect(dev: OpcUaDevice) -> Client:
    """A connected client; raises on failure (and closes what it opened)."""
    client = await opcua_client(dev)
    try:
        await open_session(client, dev)
    except BaseException:
        with contextlib.suppress(Exception):
            client.disconnect_socket()
        raise
    return client


@dataclass
class Limits:
    nodes_per_read: int
    monitored_items_per_call: int


async def operation_limits(client: Client, fallback: int) -> Limits:
    """The server's MaxNodesPerRead / MaxMonitoredItemsPerCall; 0 or unreadable -> fallback."""
    ids = ua.ObjectIds
    nodes = [client.get_node(ua.NodeId(i)) for i in (
        ids.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead,
        ids.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall)]
    got = [fallback, fallback]
    try:
        values = await client.read_attributes(nodes, ua.AttributeIds.Value)
        for i, dv in enumerate(values):
            v = dv.Value.Value if dv.StatusCode is None or dv.StatusCode.is_good() else None
            if isinstance(v, int) and v > 0:
                got[i] = v
    except (ua.UaError, TimeoutError) as exc:
        log.info("OperationLimits not readable (%r); using %d per call", exc, fallback)
    return Limits(*got)


async def resolve(client: Client, tags: Sequence[OpcUaTag]) -> list[Node | str]:
    """Each tag's node, or an error text (unknown namespace URI, browse path not found)."""
    ns_cache: dict[str, int] = {}
    out: list[Node | str] = []
    for tag in tags:
        try:
            out.append(await _resolve_one(client, tag, ns_cache))
        except ua.UaStatusCodeError as exc:
            out.append(f"{tag.address}: {ua.StatusCode(exc.code).name}")
        except (ua.UaError, ValueError) as exc:
            out.append(f"{tag.address}: {exc}")
    return out


async def _resolve_one(client: Client, tag: OpcUaTag, ns_cache: dict[str, int]) -> Node:
    if tag.browse_path is not None:
        return await client.nodes.objects.get_child(tag.browse_path.split("/"))
    assert tag.node is not None
    nid = ua.NodeId.from_string(tag.node)
    uri = getattr(nid, "NamespaceUri", None)
    if uri:
        if uri not in ns_cache:
            ns_cache[uri] = await client.get_namespace_index(uri)
        nid = ua.NodeId(nid.Identifier, ns_cache[uri], nid.NodeIdType)
    return client.get_node(nid)


R = TypeVar("R")


async def call_chunked(call: Callable[[list[T]], Awaitable[list[R]]], items: Sequence[T],
                       per_call: int, sizes: list[int] | None = None) -> list[R]:
    """``call`` on consecutive chunks of at most ``per_call`` items. A server that refuses
    a chunk with BadTooManyOperations (its published limit was wrong, or it publishes
    none) gets half as many per call from then on. ``sizes`` records each call's size."""
    out: list[R] = []
    i, size = 0, max(1, per_call)
    while i < len(items):
        part = list(items[i:i + size])
        try:
            out.extend(await call(part))
        except ua.UaStatusCodeError as exc:
            if exc.code != ua.StatusCodes.BadTooManyOperations or size == 1:
                raise
            size = max(1, len(part) // 2)
            log.info("server refused %d items per call; trying %d", len(part), size)
            continue
        if sizes is not None:
            sizes.append(len(part))
        i += len(part)
    return out


async def read_values(client: Client, nodes: Sequence[Node], per_call: int,
                      sizes: list[int] | None = None) -> list[ua.DataValue]:
    """Value attributes of ``nodes``, at most ``per_call`` per Read request."""
    async def read(part: list[Node]) -> list[ua.DataValue]:
        return await client.read_attributes(part, ua.AttributeIds.Value)

    return await call_chunked(read, nodes, per_call, sizes)


def monitoring_filter(f: DataChangeFilter | None,
                      eu_range: tuple[float, float] | None = None) -> ua.DataChangeFilter | None:
    """The ua filter of a config filter (None: the server's default, StatusValue).

    A percent deadband is sent as what OPC UA defines it to be (Part 8, PercentDeadband):
    an absolute deadband of ``deadband_value`` % of the node's ``eu_range`` (high - low).
    So servers that take no Percent filter (asyncua accepts one and ignores it) filter
    too. Raises ValueError without ``eu_range``.
    """
    if f is None:
        return None
    mf = ua.DataChangeFilter()
    mf.Trigger = getattr(ua.DataChangeTrigger, f.trigger)
    mf.DeadbandType = {"none": ua.DeadbandType.None_, "absolute": ua.DeadbandType.Absolute,
                       "percent": ua.DeadbandType.Absolute}[f.deadband_type]
    mf.DeadbandValue = f.deadband_value
    if f.deadband_type == "percent":
        if eu_range is None:
            raise ValueError("a percent deadband needs the node's EURange property")
        mf.DeadbandValue = f.deadband_value / 100 * abs(eu_range[1] - eu_range[0])
    return mf


async def eu_range(node: Node) -> tuple[float, float] | None:
    """The node's EURange property (analog items: low, high), None when it has none."""
    try:
        prop = await node.get_child("0:EURange")
        value = await prop.read_value()
        return float(value.Low), float(value.High)
    except (ua.UaError, AttributeError, TypeError):
        return None
