"""State codes as the kernels see them (``shopfloor.contract.STATE_CODES``), and the
indices into the array ``stops.stop_stats`` returns."""

from __future__ import annotations

from shopfloor.contract import STATE_CODES, State

__all__ = ["DOWN", "FAILURE_COUNT", "FAILURE_NS", "IDLE", "N_STATES", "N_STOP_STATS", "OFFLINE",
           "PRODUCING", "SETUP", "SETUP_COUNT", "SMALL_COUNT", "SMALL_DOWN_NS", "SMALL_NS",
           "STATE_CODES_NO_SHIFT", "STATE_CODES_PLANNED_STOP"]
N_STATES = len(STATE_CODES)
OFFLINE = STATE_CODES[State.OFFLINE]
PRODUCING = STATE_CODES[State.PRODUCING]
IDLE = STATE_CODES[State.IDLE]
DOWN = STATE_CODES[State.DOWN]
SETUP = STATE_CODES[State.SETUP]
STATE_CODES_NO_SHIFT = STATE_CODES[State.NO_SHIFT]
STATE_CODES_PLANNED_STOP = STATE_CODES[State.PLANNED_STOP]

# Indices into the array ``stop_stats`` returns.
SMALL_NS, SMALL_COUNT, SMALL_DOWN_NS, FAILURE_COUNT, FAILURE_NS, SETUP_COUNT = range(6)
N_STOP_STATS = 6
