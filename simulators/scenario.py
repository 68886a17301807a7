"""The plant scenario file (see DESIGN.md, "Scenario file") as typed models.

``load_scenario(path)`` returns a validated ``Scenario`` or raises ``ConfigError``
naming the file and the key. ``Scenario.machines()`` resolves each machine's
parameters (machine keys override ``defaults``) and its place in the plant.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from shopfloor.config import Segment, Strict, load_config
from shopfloor.contract import DevicePath, State

Seconds = Annotated[float, Field(ge=0)]
Range = tuple[float, float]

DEFAULT_IDEAL_CYCLE_TIME_S = 0.5  # where neither the machine nor ``defaults`` sets one
# Used where neither the machine nor ``defaults`` sets a duration range.
DEFAULT_DURATIONS: dict[State, Range] = {
    State.PRODUCING: (4.0, 9.0),
    State.IDLE: (1.0, 3.0),
    State.DOWN: (1.5, 4.0),
    State.SETUP: (1.0, 3.0),
    State.PLANNED_STOP: (1.0, 3.0),
}


class Durations(Strict):
    """Seeded uniform [min, max] seconds per shift state; unset ranges fall back."""

    PRODUCING: Range | None = None
    IDLE: Range | None = None
    DOWN: Range | None = None
    SETUP: Range | None = None
    PLANNED_STOP: Range | None = None

    @field_validator("*")
    @classmethod
    def _range(cls, v: Range | None) -> Range | None:
        if v is not None and not 0 < v[0] <= v[1]:
            raise ValueError(f"expected [min, max] with 0 < min <= max, got {list(v)}")
        return v


class Product(Strict):
    """A product the machine makes; its id is served as an 8-character string."""

    id: str = Field(pattern=r"^[!-~]{1,8}$", description="1-8 printable ASCII characters")
    ideal_cycle_time_s: float = Field(gt=0, description="seconds per part at rated speed")


class Outage(Strict):
    """A network outage of the device: its server is down, the machine keeps running."""

    at_s: Seconds
    duration_s: Annotated[float, Field(gt=0)]

    @property
    def end_s(self) -> float:
        return self.at_s + self.duration_s


class StopReason(Strict):
    """A reason the machine's PLC gives for a stop: the code it serves and the reason
    code (of the server's reason tree) the edge's value map turns it into."""

    code: int = Field(ge=1, le=65535, description="PLC code (0 means no reason)")
    reason: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="reason code")


class StopReasons(Strict):
    """Per stop state, the reasons its stops are given (one drawn per stop, seeded)."""

    IDLE: list[StopReason] = []
    DOWN: list[StopReason] = []
    SETUP: list[StopReason] = []
    PLANNED_STOP: list[StopReason] = []

    def of(self, state: State) -> list[StopReason]:
        return getattr(self, state.value, [])

    def codes(self) -> dict[int, str]:
        """PLC code -> reason code, over every state."""
        return {r.code: r.reason for s in ("IDLE", "DOWN", "SETUP", "PLANNED_STOP")
                for r in getattr(self, s)}


class Params(Strict):
    """Machine parameters; every one may be set in ``defaults`` or per machine."""

    ideal_cycle_time_s: Annotated[float, Field(gt=0)] | None = None
    speed_factor: Annotated[float, Field(gt=0)] | None = None  # actual cycle = ICT x this
    reject_rate: Annotated[float, Field(ge=0, lt=1)] | None = None
    durations_s: Durations | None = None
    # optional: the PLC's counters restart from zero at this time (s since t0)
    counter_reset_at_s: Annotated[float, Field(ge=0)] | None = None
    # optional: the device stops answering on the network for this window (s since t0)
    outage: Outage | None = None
    products: list[Product] | None = Field(
        None, min_length=1, description="changeover order: each SETUP's end switches to the "
        "next (cyclically); replaces ideal_cycle_time_s for the cycle")
    stop_reasons: StopReasons | None = Field(
        None, description="the PLC serves a reason code per stop (a StopReason register or "
        "variable); without it the machine gives none")

    @field_validator("products")
    @classmethod
    def _unique_products(cls, v: list[Product] | None) -> list[Product] | None:
        ids = [p.id for p in v or []]
        if len(set(ids)) != len(ids):
            raise ValueError(f"product ids must be unique, got {ids}")
        return v


class Machine(Params):
    id: Segment
    name: str | None = None
    protocol: Literal["opcua", "modbus"]
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)]


class Line(Strict):
    id: Segment
    name: str | None = None
    machines: list[Machine] = []


class Area(Strict):
    id: Segment
    name: str | None = None
    lines: list[Line] = []


class Named(Strict):
    id: Segment
    name: str | None = None


class Timeline(Strict):
    lead_in_s: Seconds = 3.0
    duration_s: Annotated[float, Field(gt=0)]
    lead_out_s: Seconds = 3.0

    @property
    def total_s(self) -> float:
        return self.lead_in_s + self.duration_s + self.lead_out_s


@dataclass(frozen=True, slots=True)
class MachineSpec:
    """One machine with its parameters resolved and its place in the plant."""

    path: DevicePath
    protocol: str
    host: str
    port: int
    ideal_cycle_time_s: float
    speed_factor: float
    reject_rate: float
    durations_s: dict[State, Range]
    counter_reset_at_s: float | None = None
    serial_port: str | None = None  # modbus: serve RTU on this serial device, not TCP
    products: tuple[Product, ...] = ()  # empty: one product at ideal_cycle_time_s
    outage: Outage | None = None
    stop_reasons: StopReasons | None = None  # None: the machine serves no reason codes

    @property
    def id(self) -> str:
        return self.path.device

    @property
    def asset_id(self) -> str:
        return self.path.asset_id

    def ideal_cycle_time(self, product: str | None) -> float:
        """The ideal cycle time of ``product``; the machine's for an unknown one (or None)."""
        return next((p.ideal_cycle_time_s for p in self.products if p.id == product),
                    self.ideal_cycle_time_s)

    @property
    def endpoint(self) -> str:
        scheme = "opc.tcp" if self.protocol == "opcua" else "modbus"
        return f"{scheme}://{self.host}:{self.port}"


class Plant(Strict):
    """The plant part of a scenario: where each machine is and how it behaves."""

    enterprise: Named
    site: Named
    defaults: Params = Params()
    areas: list[Area]

    @classmethod
    def of(cls, scenario: Plant | dict) -> Plant:
        """The plant of a scenario (a model, or a document with or without a timeline)."""
        if isinstance(scenario, Plant):
            return scenario
        return cls.model_validate({k: v for k, v in scenario.items() if k in cls.model_fields})

    @field_validator("areas")
    @classmethod
    def _unique(cls, areas: list[Area]) -> list[Area]:
        ids: set[str] = set()
        ports: set[int] = set()
        for area in areas:
            for line in area.lines:
                for m in line.machines:
                    if m.id in ids:
                        raise ValueError(f"machine id {m.id!r} is used twice")
                    if m.port in ports:
                        raise ValueError(f"port {m.port} (machine {m.id!r}) is used twice")
                    ids.add(m.id)
                    ports.add(m.port)
        if not ids:
            raise ValueError("the scenario has no machines")
        return areas

    def device_path(self, area: str, line: str, machine: str) -> DevicePath:
        return DevicePath(self.enterprise.id, self.site.id, area, line, machine)

    def asset_id(self, area: str, line: str, machine: str) -> str:
        """``{enterprise}/{site}/{area}/{line}/{machine}``."""
        return self.device_path(area, line, machine).asset_id

    def machines(self) -> list[MachineSpec]:
        """All machines in file order, machine keys overriding ``defaults``."""
        d = self.defaults
        out = []
        for area in self.areas:
            for line in area.lines:
                for m in line.machines:
                    durations = {}
                    for state in DEFAULT_DURATIONS:
                        own = getattr(m.durations_s, state.value) if m.durations_s else None
                        dflt = getattr(d.durations_s, state.value) if d.durations_s else None
                        durations[state] = own or dflt or DEFAULT_DURATIONS[state]
                    out.append(MachineSpec(
                        path=self.device_path(area.id, line.id, m.id),
                        protocol=m.protocol, host=m.host, port=m.port,
                        ideal_cycle_time_s=_pick(m.ideal_cycle_time_s, d.ideal_cycle_time_s,
                                                 DEFAULT_IDEAL_CYCLE_TIME_S),
                        speed_factor=_pick(m.speed_factor, d.speed_factor, 1.0),
                        reject_rate=_pick(m.reject_rate, d.reject_rate, 0.0),
                        durations_s=durations,
                        counter_reset_at_s=(m.counter_reset_at_s if m.counter_reset_at_s
                                            is not None else d.counter_reset_at_s),
                        products=tuple(m.products or d.products or ()),
                        outage=m.outage or d.outage,
                        stop_reasons=m.stop_reasons or d.stop_reasons,
                    ))
        return out


class Scenario(Plant):
    """A plant and the run: seed and timeline (DESIGN.md "Scenario file")."""

    seed: int = 0
    timeline: Timeline


def _pick(*values: float | None) -> float:
    return next(v for v in values if v is not None)


def load_scenario(path: Path | str) -> Scenario:
    """Read and validate a scenario file; raises ``ConfigError`` naming file and key."""
    return load_config(path, Scenario)
