"""Writes docs/CONFIG.md: every key of every config file, from the pydantic models.

    python scripts/config_reference.py           # rewrite docs/CONFIG.md
    python scripts/config_reference.py --check   # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import enum
import sys
import types
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from shopfloor.cli import HelpFormatter
from shopfloor.demo.stacks import ClusterPlan
from shopfloor.edge.config import EdgeConfig
from shopfloor.gateway.config import GatewayConfig
from shopfloor.server.config import ServerConfig
from shopfloor.server.federation.config import ClusterConfig
from shopfloor.server.registry import RegistryModel
from shopfloor.simulators.scenario import Scenario

OUT = Path(__file__).resolve().parents[1] / "docs" / "CONFIG.md"
FILES = [
    ("Scenario (`shopfloor simulate --scenario`)", Scenario, "shopfloor/demo/scenario.yaml"),
    ("Edge agent (`shopfloor edge --config`)", EdgeConfig, "edge/edge.sample.yaml"),
    ("Gateway (`shopfloor gateway --config`)", GatewayConfig, "gateway/gateway.sample.yaml"),
    ("Server (`shopfloor server --config`)", ServerConfig, "server/server.sample.yaml"),
    ("Registry (the server's `registry:` file)", RegistryModel, "server/registry.sample.yaml"),
    ("Cluster server (`shopfloor cluster --config`)", ClusterConfig,
     "server/federation/cluster.sample.yaml"),
    ("Cluster file (`shopfloor up --scenario`, several enterprises)", ClusterPlan,
     "shopfloor/demo/cluster.yaml"),
]
HEADER = """# Configuration reference

Generated from the config models by `python scripts/config_reference.py`; do not edit.

Every service reads one YAML file and stops at start on an unknown key or a wrong type,
naming the file and the key. A value `${NAME}` or `${NAME:-default}` is taken from the
environment. `key[]` is a list of items, `key.<name>` a mapping; keys without a default
are required. Annotated samples: the files named under each heading.
"""


def models_in(ann: typing.Any) -> list[type[BaseModel]]:
    """Models inside an annotation (through Optional, Union, Annotated, list, dict)."""
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return [ann]
    return [m for a in typing.get_args(ann) for m in models_in(a)]


def type_name(ann: typing.Any) -> str:
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is typing.Literal:
        return " \\| ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        names = list(dict.fromkeys(type_name(a) for a in args if a is not type(None)))
        return " \\| ".join(names) + (" \\| null" if type(None) in args else "")
    if origin is list:
        return f"list of {type_name(args[0])}"
    if origin is dict:
        return f"mapping of {type_name(args[1])}"
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return "mapping"
    if isinstance(ann, type) and issubclass(ann, enum.Enum):
        return " \\| ".join(repr(m.value) for m in ann)
    return getattr(ann, "__name__", str(ann)).replace("SecretStr", "secret string")


def default_of(field: typing.Any) -> str:
    if field.default is PydanticUndefined:
        return "" if field.default_factory is None else "(see below)"
    if isinstance(field.default, BaseModel):
        return "(see below)"
    if field.default is None:
        return "unset"
    value = field.default.value if isinstance(field.default, enum.Enum) else field.default
    return f"`{value!r}`".replace("|", "\\|")


def rows(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str, str]]:
    out = []
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        ann = field.annotation
        origin = typing.get_origin(ann)
        out.append((f"`{key}`", type_name(ann), default_of(field),
                    (field.description or "").replace("|", "\\|").replace("\n", " ")))
        subs = models_in(ann)
        if not subs:
            continue
        inner = typing.get_args(ann)
        container = origin if origin in (list, dict) else None
        if container is None and origin in (typing.Union, types.UnionType):
            container = next((typing.get_origin(a) for a in inner
                              if typing.get_origin(a) in (list, dict)), None)
        suffix = "[]." if container is list else ".<name>." if container is dict else "."
        if container is dict and typing.get_origin(typing.get_args(
                next(a for a in (ann, *inner) if typing.get_origin(a) is dict))[1]) is list:
            suffix = ".<name>[]."
        seen: set[str] = set()
        for sub in subs:
            if len(subs) > 1:  # a union of kinds: each kind's keys, named by its type
                out.append((f"{key}{suffix.rstrip('.')} *({sub.__name__})*", "", "", ""))
            for r in rows(sub, key + suffix):
                if len(subs) == 1 and r[0] in seen:
                    continue
                seen.add(r[0])
                out.append(r)
    return out


def render() -> str:
    parts = [HEADER]
    for title, model, sample in FILES:
        parts.append(f"\n## {title}\n\nSample: `{sample}`.\n\n"
                     "| key | type | default | what |\n|---|---|---|---|\n")
        parts.extend(f"| {k} | {t} | {d} | {w} |\n" for k, t, d, w in rows(model))
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python scripts/config_reference.py",
                                 description=__doc__.split("\n\n")[0],
                                 formatter_class=HelpFormatter)
    ap.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    ap.add_argument("--out", type=Path, default=OUT, help="file to write")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        if not args.out.exists() or args.out.read_text(encoding="utf-8") != text:
            print(f"{args.out} is out of date: run python scripts/config_reference.py",
                  file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
