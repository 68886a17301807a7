"""The six big losses and the reliability ratios, from additive ``oee.Totals``.

Times in seconds; every loss is additive, so roll-ups sum them (the Totals are
summed before this runs) and the ratios are recomputed from the sums:

- failures = DOWN time not in small stops; setups = SETUP time;
- small stops ("idling and minor stops") = IDLE time + DOWN stops shorter than the
  small-stop threshold right after PRODUCING;
- slow cycles = APT - ideal time of all parts (negative when faster than ideal);
- process rejects / start-up rejects = ideal time of the rejects outside / inside
  the start-up window after each setup.
They add up to PBT - fully productive time (ideal time of the good parts).
"""

from __future__ import annotations

from typing import Any

from shopfloor.server import kernels
from shopfloor.server.oee import Totals, report
from shopfloor.server.rates import ratio
from shopfloor.times import NS


def report_losses(t: Totals) -> dict[str, Any]:
    base = report(t)
    secs = base["times_s"]
    pbt, apt = base["planned_busy_time_s"], base["actual_production_time_s"]
    stops = t.stops.tolist()  # Python ints, indexed as kernels.stop_stats
    failures = stops[kernels.FAILURE_NS] / NS
    losses = {
        "failures": failures,
        "setups": secs["SETUP"],
        "small_stops": secs["IDLE"] + secs["DOWN"] - failures,
        "slow_cycles": apt - t.ideal_s,
        "process_rejects": t.reject_ideal_s - t.startup_reject_ideal_s,
        "startup_rejects": t.startup_reject_ideal_s,
    }
    fully_productive = t.ideal_s - t.reject_ideal_s
    n_fail = stops[kernels.FAILURE_COUNT]
    return {
        **base,
        "losses_s": losses,
        "fully_productive_time_s": fully_productive,
        "loss_total_s": sum(losses.values()),  # == PBT - fully productive time
        "small_stops": {"count": stops[kernels.SMALL_COUNT],
                        "short_stops_s": stops[kernels.SMALL_NS] / NS,
                        "idle_s": secs["IDLE"]},
        "failure_count": n_fail,
        "setup_count": stops[kernels.SETUP_COUNT],
        "startup_reject_count": t.startup_reject,
        "mtbf_s": apt / n_fail if n_fail else None,
        "mttr_s": failures / n_fail if n_fail else None,
        "technical_efficiency": ratio(apt, apt + secs["DOWN"]),
        "setup_ratio": ratio(secs["SETUP"], apt),
        "scrap_ratio": ratio(t.reject, t.total),
        "planned_busy_time_s": pbt,
    }
