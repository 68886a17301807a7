"""``shopfloor edge discover opc.tcp://HOST:PORT``: browse a server, print a config skeleton.

``run_discover(url, username=, password=, max_nodes=) -> int`` browses from Objects
(skipping namespace 0, the standard Server/Aliases objects, and properties such as
EURange), collects every Variable with its node id, browse path and data type, and
prints a YAML device entry the engineer edits (id, path, signals). Browsing stops after
``max_nodes`` nodes.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass

import yaml
from asyncua import Client, Node, ua

from shopfloor.contract import TAG_RE

PASSWORD_ENV = "SHOPFLOOR_OPCUA_PASSWORD"  # noqa: S105 - the variable's name, not a secret


_HAS_PROPERTY = ua.NodeId(ua.ObjectIds.HasProperty)


@dataclass
class Variable:
    node_id: str
    browse_path: str
    data_type: str


async def browse(client: Client, max_nodes: int) -> tuple[list[Variable], bool]:
    """Variables under Objects (breadth first); True if ``max_nodes`` cut the browse short."""
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
            if ref.NodeClass == ua.NodeClass.Variable:
                out.append(Variable(nid.to_string(), child_path, await _type_name(child)))
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


def skeleton(url: str, variables: list[Variable], truncated: bool) -> str:
    taken: set[str] = set()
    device = {
        "id": "CHANGE-ME", "protocol": "opcua", "endpoint": url,
        "path": {"enterprise": "CHANGE-ME", "site": "CHANGE-ME", "area": "CHANGE-ME",
                 "line": "CHANGE-ME"},
        "sampling_interval_ms": 100,
        "tags": [{"name": tag_name(v.browse_path, taken), "node": v.node_id}
                 for v in variables],
    }
    body = yaml.safe_dump({"devices": [device]}, sort_keys=False, width=100)
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
            "# set id and path; add signal/map/bits/unit where they apply"]
    return "\n".join(head + out) + "\n"


async def discover(url: str, username: str | None, password: str | None,
                   max_nodes: int) -> str:
    client = Client(url, timeout=10)
    if username:
        client.set_user(username)
        client.set_password(password or os.environ.get(PASSWORD_ENV, ""))
    async with client:
        variables, truncated = await browse(client, max_nodes)
    return skeleton(url, variables, truncated)


def run_discover(url: str, *, username: str | None, password: str | None,
                 max_nodes: int) -> int:
    try:
        text = asyncio.run(discover(url, username, password, max_nodes))
    except (OSError, TimeoutError, ua.UaError) as exc:
        print(f"shopfloor edge discover: {url}: {type(exc).__name__}: {exc}")
        return 1
    print(text, end="")
    return 0
