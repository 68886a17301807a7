"""The shape of the code (issue 11): which package may import which, and small modules.

- ``server/`` reads the store through ``shopfloor.storage``: nothing from the gateway, the
  edge or the simulators (the demo's generators live in ``shopfloor.demo``);
- ``edge/`` nothing from the server or the gateway; ``gateway/`` nothing from the server or
  the edge; ``shopfloor/storage/`` nothing from any service;
- the edge picks drivers by protocol (``edge/protocols.py``), never by ``isinstance``;
- no module is much over 400 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"server": "shopfloor.server", "edge": "shopfloor.edge",
            "gateway": "shopfloor.gateway", "simulators": "shopfloor.simulators",
            "shopfloor/storage": "shopfloor.storage"}
FORBIDDEN = {
    "server": ("shopfloor.gateway", "shopfloor.edge", "shopfloor.simulators"),
    "edge": ("shopfloor.server", "shopfloor.gateway"),
    "gateway": ("shopfloor.server", "shopfloor.edge", "shopfloor.simulators"),
    "shopfloor/storage": ("shopfloor.server", "shopfloor.gateway", "shopfloor.edge",
                          "shopfloor.simulators"),
}
MAX_LINES = 420


def modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def imported(source: str, here: list[str]) -> set[str]:
    """Every module ``source`` imports, at any depth (lazy imports in functions too), with
    relative imports resolved against the package ``here`` (its dotted parts)."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(here[:len(here) - node.level + 1]) if node.level else ""
            out.add(".".join(x for x in (base, node.module) if x))
    return out


def imports_of(path: Path, folder: str) -> set[str]:
    parts = PACKAGES[folder].split(".") + list(path.relative_to(ROOT / folder).parent.parts)
    return imported(path.read_text(encoding="utf-8"), parts)


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_packages_import_only_what_their_role_allows(folder):
    bad = {(str(p.relative_to(ROOT)), m) for p in modules(folder)
           for m in imports_of(p, folder)
           if any(m == f or m.startswith(f + ".") for f in FORBIDDEN[folder])}
    assert not bad, f"{folder}/ imports what its role must not: {sorted(bad)}"


def test_the_edge_never_picks_a_driver_by_class():
    for p in modules("edge"):
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "isinstance":
                names = ast.dump(node.args[1])
                assert "Driver" not in names, f"{p.relative_to(ROOT)}: isinstance on a driver"


def test_no_module_is_long():
    long = {str(p.relative_to(ROOT)): n for folder in ("shopfloor", "edge", "gateway", "server",
                                                        "simulators", "dashboards", "benchmarks")
            for p in modules(folder) if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules: {long}"


def test_the_checker_reads_lazy_and_relative_imports():
    source = ("from . import oee\nfrom .api.deps import Window\n"
              "def f():\n    from shopfloor.gateway import service\n")
    assert imported(source, ["shopfloor", "server"]) == {
        "shopfloor.server", "shopfloor.server.api.deps", "shopfloor.gateway"}
    assert imported("from ..storage import base", ["shopfloor", "server", "api"]) == {
        "shopfloor.server.storage"}
