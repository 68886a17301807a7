"""Writing the ground-truth log: JSON lines, line-buffered so a reader sees each line.

Records (timestamps are integer ns since the epoch, the ones the servers serve):

- first line ``{"type":"scenario","seed","enterprise","site","machines":[...],
  "shift_start","shift_end","t0"}``
- ``{"type":"state","machine":ASSET_ID,"state":NAME,"start":ns,"end":ns}`` when an
  interval ends; a stop the machine gave a reason (``stop_reasons``) also has
  ``"reason":CODE,"reason_code":N`` (the reason code and the PLC's code served)
- ``{"type":"part","machine":ASSET_ID,"ts":ns,"reject":bool}`` per part; on a machine
  with ``products`` (listed with their ideal cycle times in its scenario entry) also
  ``"product":ID,"ideal_cycle_time_s":s``, the product the part is of and its ICT
- ``{"type":"outage","machine":ASSET_ID,"start":ns,"end":ns}`` when a device's network
  outage ends: its server did not answer from start (stopped) to end (listening again);
  the machine ran on, so the state records still cover the window (the reader makes it
  OFFLINE) and the parts made in it are logged
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from shopfloor.contract import State

from .scenario import MachineSpec, Scenario


class TruthWriter:
    """Appends records to a truth log; with ``path=None`` it discards them."""

    def __init__(self, path: Path | str | None):
        self._file: IO[str] | None = None
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "w", buffering=1, encoding="utf-8")

    def _write(self, record: dict[str, Any]) -> None:
        if self._file is not None:
            self._file.write(json.dumps(record, separators=(",", ":")) + "\n")

    def scenario(self, scenario: Scenario, machines: list[MachineSpec], *,
                 t0: int, shift_start: int, shift_end: int) -> None:
        self._write({
            "type": "scenario", "seed": scenario.seed,
            "enterprise": scenario.enterprise.id, "site": scenario.site.id,
            "machines": [{
                "asset_id": m.asset_id, "protocol": m.protocol, "host": m.host,
                "port": m.port, "ideal_cycle_time_s": m.ideal_cycle_time_s,
                "speed_factor": m.speed_factor, "reject_rate": m.reject_rate,
                **({"products": [p.model_dump() for p in m.products]} if m.products else {}),
                **({"stop_reasons": m.stop_reasons.model_dump()} if m.stop_reasons else {}),
            } for m in machines],
            "shift_start": shift_start, "shift_end": shift_end, "t0": t0,
        })

    def state(self, machine: str, state: State, start: int, end: int,
              reason: tuple[int, str] | None = None) -> None:
        rec: dict[str, Any] = {"type": "state", "machine": machine, "state": state.value,
                               "start": start, "end": end}
        if reason is not None:
            rec.update(reason=reason[1], reason_code=reason[0])
        self._write(rec)

    def part(self, machine: str, ts: int, reject: bool, product: str | None = None,
             ideal_cycle_time_s: float | None = None) -> None:
        rec: dict[str, Any] = {"type": "part", "machine": machine, "ts": ts, "reject": reject}
        if product is not None:
            rec.update(product=product, ideal_cycle_time_s=ideal_cycle_time_s)
        self._write(rec)

    def outage(self, machine: str, start: int, end: int) -> None:
        self._write({"type": "outage", "machine": machine, "start": start, "end": end})

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
