"""The asset registry: cluster -> enterprise -> site -> workshop -> line -> equipment.

Every piece of production equipment is listed, networked or not (the
digitalization rates need the whole denominator). An asset's id is its path from
the enterprise (``acme/plant1/machining/line1/cnc-01``); the cluster's id is its
own name. Equipment ids equal the device paths the edge publishes under.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator

from shopfloor.config import ConfigError, Strict, load_config, parse_config
from shopfloor.contract import SEGMENT_RE, DevicePath

LEVELS = ("cluster", "enterprise", "site", "workshop", "line", "equipment")


class NodeModel(Strict):
    """What every level of the tree has: an id (one segment of the asset path) and a
    display name (the id when there is none)."""

    id: str
    name: str | None = None

    @field_validator("id")
    @classmethod
    def _id_is_a_segment(cls, v: str) -> str:
        if not SEGMENT_RE.fullmatch(v):
            raise ValueError(f"id {v!r} must be letters, digits, '-', '_' or '.', "
                             "starting with a letter or digit")
        return v


class EquipmentModel(NodeModel):
    ideal_cycle_time_s: float | None = Field(None, gt=0, description="seconds per part")
    ideal_cycle_times_s: dict[str, Annotated[float, Field(gt=0)]] = Field(
        {}, description="per product (the `product` signal); others use ideal_cycle_time_s")
    counter_bits: int = Field(32, ge=0, le=64, description="part/reject counter width; 0 = none")
    digital: bool = True
    numerically_controlled: bool = False
    key_process: bool = False


class LineModel(NodeModel):
    equipment: list[EquipmentModel] = []


class WorkshopModel(NodeModel):
    lines: list[LineModel] = []


class SiteModel(NodeModel):
    workshops: list[WorkshopModel] = []


class EnterpriseModel(NodeModel):
    sites: list[SiteModel] = []


class ClusterModel(NodeModel):
    pass


class RegistryModel(Strict):
    cluster: ClusterModel
    enterprises: list[EnterpriseModel]


@dataclass
class Asset:
    id: str
    name: str
    level: str
    children: list[Asset] = field(default_factory=list)
    equipment: EquipmentModel | None = None
    device: DevicePath | None = None

    def walk(self) -> Iterator[Asset]:
        yield self
        for c in self.children:
            yield from c.walk()

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"id": self.id, "name": self.name, "level": self.level}
        if self.equipment is not None:
            eq = self.equipment
            doc.update(ideal_cycle_time_s=eq.ideal_cycle_time_s, digital=eq.digital,
                       numerically_controlled=eq.numerically_controlled,
                       key_process=eq.key_process)
        else:
            doc["children"] = [c.to_json() for c in self.children]
        return doc


class Registry:
    def __init__(self, model: RegistryModel):
        self.model = model
        self.root = Asset(model.cluster.id, model.cluster.name or model.cluster.id, "cluster")
        self._by_id: dict[str, Asset] = {self.root.id: self.root}
        for ent in model.enterprises:
            e = self._add(self.root, ent.id, ent.name, "enterprise")
            for site in ent.sites:
                s = self._add(e, f"{e.id}/{site.id}", site.name, "site")
                for ws in site.workshops:
                    w = self._add(s, f"{s.id}/{ws.id}", ws.name, "workshop")
                    for line in ws.lines:
                        ln = self._add(w, f"{w.id}/{line.id}", line.name, "line")
                        for eq in line.equipment:
                            a = self._add(ln, f"{ln.id}/{eq.id}", eq.name, "equipment")
                            a.equipment = eq
                            a.device = DevicePath(ent.id, site.id, ws.id, line.id, eq.id)

    def _add(self, parent: Asset, asset_id: str, name: str | None, level: str) -> Asset:
        if asset_id in self._by_id:
            raise ConfigError(f"registry: duplicate asset id {asset_id!r}")
        asset = Asset(asset_id, name or asset_id.rsplit("/", 1)[-1], level)
        parent.children.append(asset)
        self._by_id[asset_id] = asset
        return asset

    def get(self, asset_id: str) -> Asset | None:
        return self._by_id.get(asset_id)

    def equipment_under(self, asset: Asset) -> list[Asset]:
        return [a for a in asset.walk() if a.level == "equipment"]

    def replace(self, other: Registry) -> None:
        """Take over another registry's content (a reload)."""
        self.model, self.root, self._by_id = other.model, other.root, other._by_id

    def enterprises(self) -> list[Asset]:
        return [c for c in self.root.children if c.level == "enterprise"]

    @classmethod
    def load(cls, path: Path | str) -> Registry:
        """From YAML (the nested tree) or CSV (one row per piece of equipment)."""
        if str(path).lower().endswith(".csv"):
            return cls(parse_config(registry_from_csv(path), RegistryModel, path))
        return cls(load_config(path, RegistryModel))


CSV_COLUMNS = ("cluster", "enterprise", "site", "workshop", "line", "equipment")
_TRUE, _FALSE = {"1", "true", "yes", "y"}, {"0", "false", "no", "n", ""}


def registry_from_csv(path: Path | str) -> dict[str, Any]:
    """A registry document from CSV with columns cluster, enterprise, site, workshop,
    line, equipment and optionally name, ideal_cycle_time_s, counter_bits, digital,
    numerically_controlled, key_process (booleans: true/false, yes/no, 1/0)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    rows = list(csv.DictReader(io.StringIO(text)))
    missing = [c for c in CSV_COLUMNS if rows and c not in rows[0]]
    if not rows or missing:
        raise ConfigError(f"{path}: expected a header with {', '.join(CSV_COLUMNS)} "
                          f"and one row per equipment (missing: {', '.join(missing) or 'rows'})")
    clusters = {r["cluster"] for r in rows}
    if len(clusters) != 1:
        raise ConfigError(f"{path}: one cluster per registry, found {sorted(clusters)}")
    tree: dict[str, dict[str, dict[str, dict[str, list[dict[str, Any]]]]]] = {}
    for no, r in enumerate(rows, 2):
        eq: dict[str, Any] = {"id": r["equipment"]}
        for key, val in r.items():
            if key in CSV_COLUMNS or key is None or val in (None, ""):
                continue
            if key in ("digital", "numerically_controlled", "key_process"):
                if val.strip().lower() not in _TRUE | _FALSE:
                    raise ConfigError(f"{path}:{no}: {key}={val!r}, expected true or false")
                eq[key] = val.strip().lower() in _TRUE
            else:
                eq[key] = val
        (tree.setdefault(r["enterprise"], {}).setdefault(r["site"], {})
         .setdefault(r["workshop"], {}).setdefault(r["line"], []).append(eq))
    return {"cluster": {"id": clusters.pop()}, "enterprises": [
        {"id": e, "sites": [
            {"id": s, "workshops": [
                {"id": w, "lines": [{"id": ln, "equipment": eqs} for ln, eqs in lines.items()]}
                for w, lines in wss.items()]}
            for s, wss in sites.items()]}
        for e, sites in tree.items()]}
