"""OEE with losses for 1,000 machines over one 8-hour shift of 1 Hz counter samples:
the Numba kernels against a vectorised pandas implementation of the same
definitions (groupby/diff, no Python loop over rows), the kernels' effective
bandwidth against numpy.sum over the same arrays, and the cluster roll-up over 100
enterprises; then each kernel used against its plain-Python reference (the pairs of
``kernels.KERNELS``, as the tests use them) on one machine. Prints tables of ratios
measured side by side in one run.

    python benchmarks/oee_kernels.py [--machines 1000] [--hours 8]

The generated state series have no repeated states and no gaps longer than the
staleness limit, so pandas' episodes are simply the samples (the kernels handle
the general case; tests/test_kernels*.py hold them to their references).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from command_line import parse_args
from tqdm import tqdm  # progress on stderr, off when it is not a terminal

from shopfloor.server import kernels as k

NS = 1_000_000_000
STALE = 3600 * NS
SMALL = 120 * NS


def generate(machines: int, hours: float, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_s = int(hours * 3600)
    t0 = 1_763_800_000 * NS
    # state changes: ~every 90 s, alternating PRODUCING and a stop state
    per = n_s // 90
    gaps = rng.integers(5, 175, size=(machines, per)) * NS
    st_ts = t0 + np.cumsum(gaps, axis=1) - gaps[:, :1]
    stops = rng.choice([k.IDLE, k.DOWN, k.SETUP], size=(machines, per))
    st_code = np.where(np.arange(per) % 2 == 0, k.PRODUCING, stops)
    # 1 Hz part counter with a reset in every 50th machine; rejects every 10 s
    inc = (rng.random((machines, n_s)) < 0.8).astype(np.float64)
    parts = np.cumsum(inc, axis=1) + rng.integers(0, 2**31, size=(machines, 1))
    parts[::50, n_s // 2:] -= parts[::50, n_s // 2:n_s // 2 + 1] - 1  # reset to 1
    rej = np.cumsum(rng.random((machines, n_s // 10)) < 0.05, axis=1).astype(np.float64)
    return {"t0": np.int64(t0), "t1": np.int64(t0 + n_s * NS),
            "st_ts": st_ts, "st_code": st_code.astype(np.int64),
            "p_ts": t0 + np.arange(n_s, dtype=np.int64) * NS, "parts": parts,
            "r_ts": t0 + np.arange(0, n_s, 10, dtype=np.int64) * NS, "rejects": rej}


def numba_oee(d: dict[str, np.ndarray]) -> np.ndarray:
    """Per machine: time per state, small stops, failures, total, rejects."""
    t0, t1 = int(d["t0"]), int(d["t1"])
    m = d["st_ts"].shape[0]
    out = np.zeros((m, k.N_STATES + 4))
    for i in range(m):
        ts, codes = d["st_ts"][i], d["st_code"][i]
        out[i, :k.N_STATES] = k.state_durations(ts, codes, t0, t1, STALE)
        (stats,), _ = k.stop_stats(ts, codes, np.array([t0, t1]), STALE, t1 + SMALL, SMALL, 0)
        out[i, k.N_STATES] = stats[k.SMALL_NS]
        out[i, k.N_STATES + 1] = stats[k.FAILURE_NS]
        out[i, k.N_STATES + 2] = k.counter_increase(d["parts"][i], 32)
        out[i, k.N_STATES + 3] = k.counter_increase(d["rejects"][i], 32)
    return out


def to_frames(d: dict[str, np.ndarray]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    m, per = d["st_ts"].shape
    st = pd.DataFrame({"m": np.repeat(np.arange(m), per), "ts": d["st_ts"].ravel(),
                       "code": d["st_code"].ravel()})
    n = d["parts"].shape[1]
    parts = pd.DataFrame({"m": np.repeat(np.arange(m), n), "v": d["parts"].ravel()})
    nr = d["rejects"].shape[1]
    rej = pd.DataFrame({"m": np.repeat(np.arange(m), nr), "v": d["rejects"].ravel()})
    return st, parts, rej


def pandas_increase(df: pd.DataFrame, bits: int) -> pd.Series:
    dv = df.groupby("m")["v"].diff()
    span = 2.0**bits
    inc = np.where(dv >= 0, dv, np.where((dv + span >= 0) & (dv + span < span / 2),
                                         dv + span, df["v"]))
    inc = np.where(dv.isna(), 0.0, inc)
    return pd.Series(inc).groupby(df["m"].to_numpy()).sum()


def pandas_oee(st: pd.DataFrame, parts: pd.DataFrame, rej: pd.DataFrame, t0: int, t1: int,
               m: int) -> np.ndarray:
    nxt = st.groupby("m")["ts"].shift(-1).fillna(t1 + SMALL).astype(np.int64)
    end = np.minimum(nxt, st["ts"] + STALE)
    a, b = np.maximum(st["ts"], t0), np.minimum(end, t1)
    dur = np.maximum(b - a, 0)
    per_state = (pd.DataFrame({"m": st["m"], "code": st["code"], "d": dur})
                 .groupby(["m", "code"])["d"].sum().unstack(fill_value=0)
                 .reindex(index=range(m), columns=range(k.N_STATES), fill_value=0))
    first = st.groupby("m")["ts"].min().reindex(range(m))
    per_state[k.OFFLINE] += np.maximum(np.minimum(first, t1) - t0, 0).to_numpy()
    prev = st.groupby("m")["code"].shift(1)
    full = np.minimum(end, t1 + SMALL) - st["ts"]  # seen up to t1 + SMALL, as the server reads
    small = (st["code"].isin([k.IDLE, k.DOWN]) & (prev == k.PRODUCING) & (full < SMALL))
    small_ns = pd.Series(np.where(small, dur, 0)).groupby(st["m"].to_numpy()).sum()
    fail_ns = pd.Series(np.where(~small & (st["code"] == k.DOWN), dur, 0)).groupby(
        st["m"].to_numpy()).sum()
    out = np.zeros((m, k.N_STATES + 4))
    out[:, :k.N_STATES] = per_state.to_numpy()
    out[:, k.N_STATES] = small_ns.reindex(range(m), fill_value=0).to_numpy()
    out[:, k.N_STATES + 1] = fail_ns.reindex(range(m), fill_value=0).to_numpy()
    out[:, k.N_STATES + 2] = pandas_increase(parts, 32).to_numpy()
    out[:, k.N_STATES + 3] = pandas_increase(rej, 32).to_numpy()
    return out


def best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def rollup(per_machine: np.ndarray, ent: np.ndarray, n_ent: int) -> dict[str, np.ndarray]:
    """Equipment -> enterprise -> cluster: sums, then ratios (A, Q) from the sums."""
    e = k.segment_sum(per_machine, ent, n_ent)
    c = k.segment_sum(e, np.zeros(n_ent, dtype=np.int64), 1)
    out = {}
    for name, x in (("enterprise", e), ("cluster", c)):
        np.seterr(invalid="ignore", divide="ignore")  # an empty enterprise has no ratio
        pbt = x[:, :k.N_STATES].sum(axis=1) - x[:, k.OFFLINE] - x[:, k.STATE_CODES_NO_SHIFT] \
            - x[:, k.STATE_CODES_PLANNED_STOP]
        out[name] = np.stack([x[:, k.PRODUCING] / pbt,
                              1 - x[:, k.N_STATES + 3] / x[:, k.N_STATES + 2]], axis=1)
    return out


def against_references(d: dict[str, np.ndarray]) -> list[tuple[str, float, float, bool]]:
    """(kernel, kernel s, reference s, equal) on machine 0's samples, for the kernels
    ``numba_oee`` uses, with the arguments it gives them."""
    t0, t1 = int(d["t0"]), int(d["t1"])
    ts, codes = d["st_ts"][0], d["st_code"][0]
    calls = {"state_durations": (ts, codes, t0, t1, STALE),
             "stop_stats": (ts, codes, np.array([t0, t1]), STALE, t1 + SMALL, SMALL, 0),
             "counter_increase": (d["parts"][0], 32)}
    rows = []
    for name, args in calls.items():
        pair, lists = k.KERNELS[name], k.reference_args(args)
        got, want = pair.both(*args)
        rows.append((name, best(lambda p=pair, a=args: p.kernel(*a), repeat=5),
                     best(lambda p=pair, a=lists: p.reference(*a), repeat=1), got == want))
    return rows


def main() -> None:
    args = parse_args(__doc__, machines=(1000, "machines to simulate"),
                      hours=(8.0, "shift length"))
    steps = tqdm(total=7, desc="compiling kernels", unit="step", disable=None, leave=False)

    def step(next_desc: str) -> None:
        steps.update(1)
        steps.set_description(next_desc)

    k.warm_up()
    step("generating samples")
    d = generate(args.machines, args.hours)
    step("numba kernels")
    n_samples = d["st_ts"].size + d["parts"].size + d["rejects"].size
    tqdm.write(f"{args.machines} machines x {args.hours:g} h: {n_samples / 1e6:.1f} M samples "
          f"({d['parts'].size / 1e6:.1f} M part-counter samples at 1 Hz)")

    t_numba = best(lambda: numba_oee(d))
    step("pandas")
    frames = to_frames(d)
    t0, t1 = int(d["t0"]), int(d["t1"])
    t_pandas = best(lambda: pandas_oee(*frames, t0, t1, args.machines), repeat=1)
    a, b = numba_oee(d), pandas_oee(*frames, t0, t1, args.machines)
    equal = np.allclose(a, b, rtol=1e-12, atol=0)

    step("numpy.sum")
    arrays = [d["st_ts"], d["st_code"], d["parts"], d["rejects"]]
    nbytes = sum(x.nbytes for x in arrays)
    t_sum = best(lambda: [np.sum(x) for x in arrays])

    step("cluster roll-up")
    ent = np.repeat(np.arange(100), -(-args.machines // 100))[:args.machines].astype(np.int64)
    rollup(a, ent, 100)
    t_roll = best(lambda: rollup(a, ent, 100), repeat=20)
    step("plain-Python references")
    references = against_references(d)
    steps.update(1)
    steps.close()

    rows = [
        ("numba kernels (OEE + losses)", t_numba, ""),
        ("pandas (groupby/diff)", t_pandas, f"numba {t_pandas / t_numba:.1f}x faster"),
        ("numpy.sum over the same arrays", t_sum,
         f"kernels at {t_numba / t_sum:.2f}x the numpy.sum time"),
        ("cluster roll-up, 100 enterprises", t_roll, "goal < 50 ms"),
    ]
    print(f"{'what':<36}{'ms':>10}  {'GB/s':>6}  note")
    for name, t, note in rows:
        gbs = f"{nbytes / t / 1e9:6.2f}" if "roll-up" not in name else "     -"
        print(f"{name:<36}{t * 1e3:>10.3f}  {gbs}  {note}")
    print(f"results equal (numba vs pandas, rtol 1e-12): {equal}")
    print(f"\n{'kernel vs its reference, 1 machine':<36}{'ms':>10}  {'ref ms':>10}  note")
    for name, t_kernel, t_ref, same in references:
        print(f"{name:<36}{t_kernel * 1e3:>10.3f}  {t_ref * 1e3:>10.3f}  "
              f"numba {t_ref / t_kernel:.0f}x faster, {'equal' if same else 'DIFFERENT'}")
    if not equal:
        raise SystemExit("numba and pandas disagree")
    if not all(same for *_, same in references):
        raise SystemExit("a kernel and its reference disagree")


if __name__ == "__main__":
    main()
