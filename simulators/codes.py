"""State codes as the simulated PLCs and CNCs serve them (both protocols).

These are device-side codes, not ``shopfloor.contract.STATE_CODES``: the edge
config's value map turns them into state names.
"""

from __future__ import annotations

from shopfloor.contract import State

DEVICE_STATE_CODES: dict[State, int] = {
    State.NO_SHIFT: 0,
    State.PRODUCING: 1,
    State.IDLE: 2,
    State.DOWN: 3,
    State.SETUP: 4,
    State.PLANNED_STOP: 5,
}
DEVICE_STATE_BY_CODE: dict[int, State] = {c: s for s, c in DEVICE_STATE_CODES.items()}

# The stop states a shift alternates with PRODUCING.
STOP_STATES: tuple[State, ...] = (State.IDLE, State.DOWN, State.SETUP, State.PLANNED_STOP)
SHIFT_STATES: tuple[State, ...] = (State.PRODUCING, *STOP_STATES)
