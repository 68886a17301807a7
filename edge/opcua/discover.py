"""``shopfloor edge discover opc.tcp://HOST:PORT``: browse a server, print a config skeleton.

``run_discover(url, username=, password=, max_nodes=, security=) -> int`` connects as the
agent would (``security``: the config's ``security`` block, so a secure-only server can be
browsed), browses from Objects (skipping namespace 0, the standard Server/Aliases objects,
properties such as EURange, and variables the client may not read), collects every
Variable with its node id (``nsu=<namespace URI>;...``, which survives a change of the
server's namespace table), browse path and data type, and prints a whole edge config the
engineer edits (ids, path, broker, signals); as printed it passes ``shopfloor edge check``
once the broker is right. Browsing stops after ``max_nodes`` nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from dataclasses import dataclass
from typing import Any

import yaml
from asyncua import Client, Node, ua
from pydantic import ValidationError

from shopfloor.contract import TAG_RE

from ..driver import quiet_libraries, short_error
from .client import connect
from .config import OpcUaDevice

PASSWORD_ENV = "SHOPFLOOR_OPCUA_PASSWORD"  # noqa: S105 - the variable's name, not a secret


_HAS_PROPERTY = ua.NodeId(ua.ObjectIds.HasProperty)


@dataclass
class Variable:
    node_id: str
    browse_path: str
    data_type: str


def nsu_id(nid: ua.NodeId, uris: list[str]) -> str:
    """``nsu=<URI>;s=...``: the node id by namespace URI, not by index."""
    text = nid.to_string()
    if nid.NamespaceIndex == 0 or nid.NamespaceIndex >= len(uris):
        return text
    return f"nsu={uris[nid.NamespaceIndex]};{text.split(';', 1)[1]}"


async def _readable(node: Node) -> bool:
    try:
        access = await node.read_attribute(ua.AttributeIds.UserAccessLevel)
        return bool(access.Value.Value & ua.AccessLevel.CurrentRead.mask)
    except (ua.UaError, AttributeError, TypeError):
        return True  # not told otherwise: let `edge check` try it


async def browse(client: Client, max_nodes: int) -> tuple[list[Variable], bool]:
    """Readable variables under Objects (breadth first); True if ``max_nodes`` cut the
    browse short."""
    uris = await client.get_namespace_array()
    out: list[Variable] = []
    queue: list[tuple[Node, str]] = [(client.nodes.objects, "")]
    seen = {client.nodes.objects.nodeid}
    visited = 0
    while queue:
        node, path = queue.pop(0)
        for ref in await node.get_children_descriptions():
            nid = ref.NodeId
            if nid in seen or nid.NamespaceIndex == 0:  # ns 0: the standard address space
                continue
            if ref.ReferenceTypeId == _HAS_PROPERTY:  # metadata (EURange, ...), not a tag
                continue
            visited += 1
            if visited > max_nodes:
                return out, True
            seen.add(nid)
            bn = ref.BrowseName
            child_path = f"{path}/{bn.NamespaceIndex}:{bn.Name}".lstrip("/")
            child = client.get_node(nid)
            if ref.NodeClass == ua.NodeClass.Variable and await _readable(child):
                out.append(Variable(nsu_id(nid, uris), child_path, await _type_name(child)))
            if ref.NodeClass in (ua.NodeClass.Object, ua.NodeClass.Variable):
                queue.append((child, child_path))
    return out, False


async def _type_name(node: Node) -> str:
    try:
        vt = await node.read_data_type_as_variant_type()
        return vt.name
    except (ua.UaError, ValueError):
        return "unknown"


def tag_name(browse_path: str, taken: set[str]) -> str:
    """A valid, unique tag name from the browse path's last elements."""
    parts = [p.split(":", 1)[-1] for p in browse_path.split("/")]
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", ".".join(parts[-2:]))[:120] or "tag"
    if not TAG_RE.match(name):
        name = "_" + name
    base, i = name, 2
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


def skeleton(url: str, variables: list[Variable], truncated: bool,
             security: dict[str, Any] | None = None) -> str:
    taken: set[str] = set()
    device: dict[str, Any] = {
        "id": "CHANGE-ME", "protocol": "opcua", "endpoint": url,
        "path": {"enterprise": "CHANGE-ME", "site": "CHANGE-ME", "area": "CHANGE-ME",
                 "line": "CHANGE-ME"},
        "sampling_interval_ms": 100,
    }
    if security:
        device["security"] = security
    device["tags"] = [{"name": tag_name(v.browse_path, taken), "node": v.node_id}
                      for v in variables]
    doc = {"agent_id": "CHANGE-ME", "mqtt": {"host": "127.0.0.1", "port": 1883},
           "outbox": {"path": "outbox.db"}, "devices": [device]}
    body = yaml.safe_dump(doc, sort_keys=False, width=100)
    lines = body.splitlines()
    # annotate each tag with its browse path and type (as comments, so the YAML stays valid)
    out, k = [], 0
    for line in lines:
        out.append(line)
        if line.lstrip().startswith("node: ") and k < len(variables):
            v = variables[k]
            out.append(f"      # browse_path: {v.browse_path}  type: {v.data_type}")
            k += 1
    head = [f"# discovered on {url}: {len(variables)} variables"
            + (" (browse stopped at --max-nodes)" if truncated else ""),
            "# set agent_id, the broker, the device's id and path; add signal/map/bits/unit"
            " where they apply"]
    return "\n".join(head + out) + "\n"


async def discover(url: str, username: str | None, password: str | None, max_nodes: int,
                   security: dict[str, Any] | None = None) -> str:
    dev = OpcUaDevice.model_validate({
        "id": "discover", "protocol": "opcua", "endpoint": url, "timeout_s": 10,
        "path": {"enterprise": "x", "site": "x", "area": "x", "line": "x"},
        "security": security, "username": username or None,
        "password": (password or os.environ.get(PASSWORD_ENV, "")) if username else None,
        "tags": [{"name": "x", "node": "i=2256"}]})
    client = await connect(dev)
    try:
        variables, truncated = await browse(client, max_nodes)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(), 2)
    return skeleton(url, variables, truncated, security)


def run_discover(url: str, *, username: str | None, password: str | None,
                 max_nodes: int, security: dict[str, Any] | None = None) -> int:
    quiet_libraries()
    try:
        text = asyncio.run(discover(url, username, password, max_nodes, security))
    except (OSError, TimeoutError, ua.UaError, ValidationError) as exc:
        print(f"shopfloor edge discover: {url}: {short_error(exc, ua.UaStatusCodeError)}")
        return 1
    print(text, end="")
    return 0
