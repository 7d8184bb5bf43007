"""Regression comparison of two runs, case by case.

Cases are joined on ``case_id`` (the hash of everything that defines a case),
so only like is compared with like. A case is a regression only when its
median moved by more than the threshold *and* by more than the measured noise
(the larger of the two interquartile ranges): a 30% change inside a 40% IQR is
the machine, not the code. Peak memory is deterministic, so for
``metric="memory"`` the threshold alone decides.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

METRICS = {"time": ("time_median_s", "time_iqr_s"), "memory": ("peak_mem_bytes", None)}
KEY = ["case_id", "variant", "device", "dtype", "mode", "mask", "heads_kv", "q_len", "seq_len"]


def compare_runs(base: pd.DataFrame, new: pd.DataFrame, *, threshold: float = 0.10, metric: str = "time") -> pd.DataFrame:
    """One row per case in either run: base/new values, ratio, noise, and a verdict.

    verdict: "regression", "improvement", "unchanged", "within noise",
    "only in base", "only in new", or "not comparable" (a side did not finish ok).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold!r}")
    value, spread = METRICS[metric]
    columns = KEY + ["status", value] + ([spread] if spread else [])
    joined = base[columns].merge(new[columns], on=KEY, how="outer", suffixes=("_base", "_new"), indicator=True)
    rows = []
    for r in joined.to_dict("records"):
        b, n = r.get(f"{value}_base"), r.get(f"{value}_new")
        noise = max(r.get(f"{spread}_base") or 0.0, r.get(f"{spread}_new") or 0.0) if spread else 0.0
        noise = 0.0 if noise != noise else noise  # NaN from an unmeasured side
        if r["_merge"] != "both":
            verdict, ratio = ("only in base" if r["_merge"] == "left_only" else "only in new"), np.nan
        elif r["status_base"] != "ok" or r["status_new"] != "ok" or not (b and n and b > 0):
            verdict, ratio = "not comparable", np.nan
        else:
            ratio = n / b
            change = abs(n - b)
            if abs(ratio - 1) <= threshold:
                verdict = "unchanged"
            elif change <= noise:
                verdict = "within noise"
            else:
                verdict = "regression" if ratio > 1 else "improvement"
        rows.append(
            {
                **{k: r[k] for k in KEY},
                "base": b,
                "new": n,
                "ratio": ratio,
                "noise": noise,
                "noise_rel": noise / b if b and b > 0 and noise else 0.0,
                "verdict": verdict,
            }
        )
    order = {"regression": 0, "improvement": 1, "within noise": 2, "unchanged": 3}
    table = pd.DataFrame(rows)
    if len(table):
        table = table.sort_values(
            ["verdict", "variant", "seq_len"], key=lambda c: c.map(lambda v: order.get(v, 4)) if c.name == "verdict" else c
        ).reset_index(drop=True)
    return table
