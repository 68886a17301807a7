"""The two rules every ratio of the API follows: a ratio with no denominator is
undefined (``null``), and a mean of rates is taken over the defined ones only."""

from __future__ import annotations


def ratio(num: float, den: float) -> float | None:
    """``num / den``; None (``null`` in the API) when ``den`` is not positive."""
    return num / den if den > 0 else None


def mean_of_defined(rates: list[float | None]) -> float | None:
    """Unweighted mean of the rates that are defined; None when none is."""
    vals = [x for x in rates if x is not None]
    return sum(vals) / len(vals) if vals else None
