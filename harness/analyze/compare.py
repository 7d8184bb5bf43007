"""Regression comparison of two runs, case by case, with an interval for each change.

Cases are joined on ``case_id`` (the hash of everything that defines a case, the compile mode included),
so only like is compared with like: a variant in a non-default compile mode, named as a curve of its own
(`harness.run.compile_modes`), meets the same curve of the other run. For time, each side's uncertainty is its
row's spread between rounds (`harness.measure.rounds`: ``time_log_se``, a run's
own variance included, with ``time_log_dof`` degrees of freedom), and the change
new/base gets a 95 % interval from Welch's t (the two runs may be noisy to
different degrees). A row from before rounds has one round: its own
distribution-free interval of the median stands in, read as a normal one.

Both runs' times are read at the same machine speed: each row's time is in
units of its run's reference canary (`harness.measure.canary`), so a machine
that ran 15 % slower all through the second run does not make every case a
regression; the canary's own ratio is reported beside (``speed``), and
``adjusted=False`` compares the times as measured. Mind what that cannot
tell apart: a change that speeds up the canary's matmul too (a new BLAS, other
threads) moves the reference with it; compare such runs unadjusted.

A case is a regression (or improvement) only when the interval excludes no
change *and* the change is larger than the threshold, as asv's
``continuous`` asks for a change both significant and large: otherwise
"within noise", or "unchanged" below the threshold. Peak memory is
deterministic, so for ``metric="memory"`` the threshold alone decides.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..measure.rounds import t975
from ..measure.stats import summarize
from ..run.compile_modes import by_compile_mode

METRICS = {"time": "time_median_s", "memory": "peak_mem_bytes"}
KEY = ["case_id", "variant", "compile_mode", "device", "dtype", "mode", "mask", "score_mod", "heads_kv", "q_len", "seq_len"]
TIME_COLUMNS = ["time_unadjusted_s", "canary_ref_s", "time_log_se", "time_log_dof", "time_ci_low_s",
                "time_ci_high_s", "time_samples_s"]  # fmt: skip


def _number(x) -> bool:
    return isinstance(x, (int, float, np.floating, np.integer)) and math.isfinite(x)


def log_time(row: dict, side: str, adjusted: bool) -> tuple[float, float, float] | None:
    """(log time, its standard error, degrees of freedom) of one side of a joined row, or None when unknown.

    Adjusted: the time in units of the run's reference canary; else the time as measured."""
    time, canary = row.get(f"time_median_s_{side}"), row.get(f"canary_ref_s_{side}")
    if not adjusted and _number(row.get(f"time_unadjusted_s_{side}")):
        time = row[f"time_unadjusted_s_{side}"]
    if not _number(time) or time <= 0:
        return None
    other = row.get(f"canary_ref_s_{'new' if side == 'base' else 'base'}")
    both = _number(canary) and canary > 0 and _number(other) and other > 0  # one side alone: not comparable units
    value = math.log(time / canary) if adjusted and both else math.log(time)
    se, dof = row.get(f"time_log_se_{side}"), row.get(f"time_log_dof_{side}")
    if _number(se) and _number(dof) and dof > 0:
        return value, se, dof
    low, high = row.get(f"time_ci_low_s_{side}"), row.get(f"time_ci_high_s_{side}")
    samples = row.get(f"time_samples_s_{side}")
    if not (_number(low) and _number(high)) and samples is not None and len(samples) >= 6:
        s = summarize(list(samples))
        low, high = s.ci_low, s.ci_high
    if not (_number(low) and _number(high)) or not 0 < low <= high:
        return None
    return value, math.log(high / low) / (2 * 1.96), math.inf  # one round: its own interval, as a normal one


def change_interval(row: dict, adjusted: bool = True) -> tuple[float, float, float]:
    """(new/base, 95 % low, 95 % high) for one joined row, by Welch's t on the log times; nan where unknown."""
    base, new = log_time(row, "base", adjusted), log_time(row, "new", adjusted)
    if base is None or new is None:
        return math.nan, math.nan, math.nan
    (mb, sb, db), (mn, sn, dn) = base, new
    diff, se2 = mn - mb, sb**2 + sn**2
    if se2 == 0:
        return math.exp(diff), math.exp(diff), math.exp(diff)
    parts = [s**4 / d for s, d in ((sb, db), (sn, dn)) if math.isfinite(d) and s > 0]
    dof = se2**2 / sum(parts) if parts else math.inf
    half = t975(dof) * math.sqrt(se2)
    return math.exp(diff), math.exp(diff - half), math.exp(diff + half)


def compare_runs(
    base: pd.DataFrame, new: pd.DataFrame, *, threshold: float = 0.10, metric: str = "time", adjusted: bool = True
) -> pd.DataFrame:
    """One row per case in either run: base/new values, the ratio new/base (speed-adjusted unless
    ``adjusted`` is false), its 95 % interval, the canaries' ratio (``speed``), and a verdict.

    verdict: "regression", "improvement", "unchanged", "within noise",
    "only in base", "only in new", or "not comparable" (a side did not finish ok).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold!r}")
    value = METRICS[metric]
    base, new = by_compile_mode(base), by_compile_mode(new)  # as loaded: a tuned curve keeps its name (and id)
    extra = TIME_COLUMNS if metric == "time" else []
    columns = KEY + ["status", value] + extra
    joined = base.reindex(columns=columns).merge(
        new.reindex(columns=columns), on=KEY, how="outer", suffixes=("_base", "_new"), indicator=True
    )
    rows = []
    for r in joined.to_dict("records"):
        b, n = r.get(f"{value}_base"), r.get(f"{value}_new")
        if metric == "time" and not adjusted:  # shown as measured too
            b = r["time_unadjusted_s_base"] if _number(r.get("time_unadjusted_s_base")) else b
            n = r["time_unadjusted_s_new"] if _number(r.get("time_unadjusted_s_new")) else n
        low = high = speed = np.nan
        if r["_merge"] != "both":
            verdict, ratio = ("only in base" if r["_merge"] == "left_only" else "only in new"), np.nan
        elif r["status_base"] != "ok" or r["status_new"] != "ok" or not (b and n and b > 0 and n > 0):
            verdict, ratio = "not comparable", np.nan
        else:
            ratio, low, high = change_interval(r, adjusted) if metric == "time" else (n / b, n / b, n / b)
            cb, cn = r.get("canary_ref_s_base"), r.get("canary_ref_s_new")
            speed = cn / cb if metric == "time" and _number(cb) and _number(cn) and cb > 0 else np.nan
            if math.isnan(ratio):
                ratio = n / b
            if abs(ratio - 1) <= threshold:
                verdict = "unchanged"
            elif math.isnan(low) or low <= 1 <= high:
                verdict = "within noise"
            else:
                verdict = "regression" if ratio > 1 else "improvement"
        rows.append({**{k: r[k] for k in KEY}, "base": b, "new": n, "ratio": ratio, "ratio_low": low, "ratio_high": high,
                     "speed": speed, "verdict": verdict})  # fmt: skip
    order = {"regression": 0, "improvement": 1, "within noise": 2, "unchanged": 3}
    table = pd.DataFrame(rows)
    if len(table):
        table = table.sort_values(
            ["verdict", "variant", "seq_len"], key=lambda c: c.map(lambda v: order.get(v, 4)) if c.name == "verdict" else c
        ).reset_index(drop=True)
    return table
