"""The report's headline: what a reader should take away before any figure.

Each function reads the results table (or a table derived from it in
`harness.analyze.tables`) and returns a small frame of raw values, one row
per finding; the report words and formats them (`harness.report.human`).

- `fastest_ranges`: per configuration, the runs of consecutive N won by one exact variant, by how much, and
  what the fastest approximation gains over it;
- `baseline_crossovers`: where a variant overtakes the baseline, or falls behind it (time and memory);
- `class_verdicts`: per variant, its fitted exponents across configurations against its declared class;
- `approximation_errors`: each inexact variant's error against float64, at its smallest and largest N;
- `without_work_model`: variants with no FLOP count (absent from the GFLOP/s figure).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .launch import without_launch_bound
from .tables import with_config


def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    return with_config(frame[frame["status"] == "ok"])


def _timed(frame: pd.DataFrame) -> pd.DataFrame:
    """The ok rows whose time is the kernel's: a launch-bound row times the host's launches, and would name the
    variant with the cheapest launch as the fastest (sdpa-cudnn at twice sdpa's speed, one kernel under two names)."""
    return without_launch_bound(_ok(frame))


def _overlaps(rows: pd.DataFrame, best: pd.Series) -> pd.Series:
    """Which ``rows`` tie with ``best``: their 95 % intervals across rounds overlap (itself included; a run
    from before rounds, without intervals, has no ties)."""
    if "time_ci_low_s" not in rows or "time_ci_high_s" not in rows:
        return rows.index == best.name
    return (rows.index == best.name) | (rows["time_ci_low_s"] <= best["time_ci_high_s"]).fillna(False).to_numpy(bool)


def fastest_ranges(frame: pd.DataFrame) -> pd.DataFrame:
    """Per configuration, each run of consecutive N with one fastest exact variant (median time, ok rows not
    launch-bound).

    Variants whose 95 % intervals overlap the fastest one's tie with it: ``fastest`` then names them all
    ("sdpa ≈ sdpa-flash"), and the lead is over the next variant outside the tie.

    Columns: the range (``n_from``, ``n_to``), the ``fastest`` exact variant, the ``runner_up`` exact one at the
    range's largest N, the smallest and largest ``lead`` (runner-up time over the winner's), and the fastest
    approximation at the largest N with the range of its ``approx_speedup`` (fastest exact time over the fastest
    approximation's; above 1 it is faster). Approximations are kept apart: they trade error for time, and
    neck-and-neck ones would otherwise cut the ranges into single lengths.
    """
    columns = ["config", "n_from", "n_to", "fastest", "runner_up", "lead_min", "lead_max", "approximation",
               "approx_speedup_min", "approx_speedup_max"]  # fmt: skip
    rows: list[dict] = []
    for config, group in _timed(frame).groupby("config", sort=True):
        current: dict | None = None
        for n, at_n in group.groupby("seq_len", sort=True):
            exact = at_n[at_n["exact"].astype(bool)].sort_values("time_median_s")
            approx = at_n[~at_n["exact"].astype(bool)].sort_values("time_median_s")
            if exact.empty:
                continue
            best = exact["time_median_s"].iloc[0]
            tied = exact[_overlaps(exact, exact.iloc[0])]
            rest = exact[~exact.index.isin(tied.index)]
            point = {
                "fastest": " ≈ ".join(sorted(tied["variant"])) if len(tied) > 1 else exact["variant"].iloc[0],
                "runner_up": rest["variant"].iloc[0] if len(rest) else None,
                "lead": rest["time_median_s"].iloc[0] / best if len(rest) else np.nan,
                "approximation": approx["variant"].iloc[0] if len(approx) else None,
                "approx_speedup": best / approx["time_median_s"].iloc[0] if len(approx) else np.nan,
            }
            if current and current["fastest"] == point["fastest"]:
                current.update(n_to=int(n), runner_up=point["runner_up"], approximation=point["approximation"])
                for key in ("lead", "approx_speedup"):
                    current[f"{key}_min"] = np.fmin(current[f"{key}_min"], point[key])
                    current[f"{key}_max"] = np.fmax(current[f"{key}_max"], point[key])
                continue
            current = {"config": config, "n_from": int(n), "n_to": int(n), "fastest": point["fastest"],
                       "runner_up": point["runner_up"], "lead_min": point["lead"], "lead_max": point["lead"],
                       "approximation": point["approximation"], "approx_speedup_min": point["approx_speedup"],
                       "approx_speedup_max": point["approx_speedup"]}  # fmt: skip
            rows.append(current)
    return pd.DataFrame(rows, columns=columns)


def baseline_crossovers(crossovers: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """The rows of `harness.analyze.tables.crossover_table` that involve ``baseline``, as
    (config, metric, variant, crossover_n, its 95 % interval crossover_n_low/high, beyond): beyond the
    crossover the variant is "ahead" or "behind"."""
    columns = ["config", "metric", "variant", "crossover_n", "crossover_n_low", "crossover_n_high", "beyond"]
    if crossovers.empty:
        return pd.DataFrame(columns=columns)
    mine = crossovers[(crossovers["ahead_beyond"] == baseline) | (crossovers["behind_beyond"] == baseline)]
    ahead = mine["behind_beyond"] == baseline
    return pd.DataFrame(
        {
            "config": mine["config"],
            "metric": mine["metric"],
            "variant": mine["ahead_beyond"].where(ahead, mine["behind_beyond"]),
            "crossover_n": mine["crossover_n"],
            "crossover_n_low": mine.get("crossover_n_low", mine["crossover_n"]),
            "crossover_n_high": mine.get("crossover_n_high", mine["crossover_n"]),
            "beyond": np.where(ahead, "ahead", "behind"),
        },
        columns=columns,
    ).reset_index(drop=True)


def class_verdicts(fits: pd.DataFrame) -> pd.DataFrame:
    """Per variant and declared classes (rows of `harness.analyze.tables.fit_table`): the range of its fitted time
    and memory exponents over its configurations, and in how many configurations each agrees. A variant declares
    other classes for other modes (decode reads O(N d) where a forward pass is O(N^2 d)): each is a row of its own,
    so no range mixes a decode fit with a forward one."""
    columns = ["variant", "configs", "time_alpha_min", "time_alpha_max", "declared_time", "time_agree", "time_judged",
               "mem_beta_min", "mem_beta_max", "declared_memory", "mem_agree", "mem_judged"]  # fmt: skip
    rows = []
    keys = ["variant", "declared_time", "declared_memory"]
    for (variant, *_), group in fits.groupby(keys, sort=True, dropna=False) if len(fits) else []:
        time_judged = group["time_agrees"].dropna().astype(bool)
        mem_judged = group["mem_agrees"].dropna().astype(bool)
        rows.append(
            {
                "variant": variant,
                "configs": len(group),
                "time_alpha_min": group["time_alpha"].min(),
                "time_alpha_max": group["time_alpha"].max(),
                "declared_time": group["declared_time"].dropna().iloc[0] if group["declared_time"].notna().any() else None,
                "time_agree": int(time_judged.sum()),
                "time_judged": len(time_judged),
                "mem_beta_min": group["mem_beta"].min(),
                "mem_beta_max": group["mem_beta"].max(),
                "declared_memory": group["declared_memory"].dropna().iloc[0] if group["declared_memory"].notna().any() else None,
                "mem_agree": int(mem_judged.sum()),
                "mem_judged": len(mem_judged),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def approximation_errors(frame: pd.DataFrame) -> pd.DataFrame:
    """Per inexact variant and dtype: the median relative error against float64 over its configurations,
    at the smallest and the largest N it ran, and the worst error anywhere."""
    columns = ["variant", "dtype", "n_small", "err_small", "n_large", "err_large", "err_max"]
    ok = frame[(frame["status"] == "ok") & ~frame["exact"].astype(bool) & frame["rel_err"].notna()]
    rows = []
    for (variant, dtype), group in ok.groupby(["variant", "dtype"], sort=True):
        by_n = group.groupby("seq_len")["rel_err"].median().sort_index()
        rows.append({"variant": variant, "dtype": dtype, "n_small": int(by_n.index[0]), "err_small": by_n.iloc[0],
                     "n_large": int(by_n.index[-1]), "err_large": by_n.iloc[-1], "err_max": group["rel_err"].max()})  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def without_work_model(frame: pd.DataFrame) -> list[str]:
    """Variants with ok rows but no FLOP count: their GFLOP/s is undefined, so the throughput figure omits them."""
    ok = frame[(frame["status"] == "ok") & (frame["mode"] != "decode")]
    return sorted(str(variant) for variant, flops in ok.groupby("variant")["flops"] if flops.isna().all())
