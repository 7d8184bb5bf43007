"""Tables derived from a results table: complexity fits, crossovers, fastest per N, failures.

Pure pandas over results-table rows (`harness.run.results`); the report
formats these, the CLI can print them, a notebook can use them directly. A
*curve* is one variant under one configuration (run, device and its model,
dtype, mode, mask, batch, heads, head_dim) across sequence lengths. Every function takes
the table with or without its ``config`` label (`with_config`), so a caller
making several tables labels it once. Declared complexity classes come from
the records themselves, never from the registry: a plugin's run is analysed
without the plugin. Launch-bound rows (`harness.analyze.launch`) time the host, not the kernel: the time fits,
time crossovers and fastest per N leave them out; memory, measured apart, keeps them.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from ..measure.complexity import declared_exponent
from ..measure.labels import config_label
from ..measure.record import MEASURED
from .fits import agrees, crossovers, fit_power_law, implausible
from .launch import launch_bound, listed_warnings, without_launch_bound

MIN_LEAD = 0.10  # a crossover counts when the curves end at least this far apart
# device_name too: on a heterogeneous cluster the same "cuda" is several GPU models, each its own curve.
CONFIG_COLUMNS = ["run_id", "model", "device", "device_name", "dtype", "mode", "mask", "score_mod", "inputs", "kv_layout",
                  "kv_lens", "scope", "batch", "heads", "heads_kv", "q_len", "head_dim"]  # fmt: skip


def with_config(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with a ``config`` column naming everything about a curve but its variant
    (e.g. "cpu float32 fwd causal · heads=16"); a frame that has one is returned as it is.

    Columns that take one value across the whole frame are left out of the label.
    """
    if "config" in frame.columns:
        return frame
    named = (
        "model",
        "device",
        "dtype",
        "mode",
        "mask",
        "score_mod",
        "inputs",
        "kv_layout",
        "kv_lens",
        "scope",
    )  # always in the label (`config_label`)
    shown = [c for c in CONFIG_COLUMNS if c in frame and c not in named
             and frame[c].nunique(dropna=False) > 1 and not (c == "q_len" and (frame["mode"] != "decode").any())]  # fmt: skip
    # (q_len is N outside decoding: it varies with the curve, not between curves)
    return frame.assign(config=[config_label(row, shown) for row in frame.to_dict("records")])


def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    return with_config(frame[frame["status"] == "ok"])


def fit_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per curve with >= 3 ok points not launch-bound: fitted time alpha and memory beta with 95% CIs."""
    ok = _ok(frame)
    ok = ok.assign(launch_bound=launch_bound(ok))
    rows = []
    for (config, variant), curve in ok.groupby(["config", "variant"], sort=True):
        curve = curve.sort_values("seq_len")
        timed = curve[~curve["launch_bound"]]  # a launch-bound time is the host's launch rate: it would bend alpha
        time_fit = fit_power_law(timed["seq_len"].tolist(), timed["time_median_s"].tolist(),
                                 [list(s) for s in timed["time_samples_s"]])  # fmt: skip
        mem = curve["peak_mem_bytes"].astype(float).tolist()
        mem_fit = fit_power_law(curve["seq_len"].tolist(), mem) if np.all(np.isfinite(mem)) else None
        if time_fit is None:
            continue
        declared_time, declared_mem = curve["declared_time"].iloc[-1], curve["declared_memory"].iloc[-1]
        expected_time, expected_mem = declared_exponent(declared_time), declared_exponent(declared_mem)
        in_fit = timed[timed["seq_len"].between(time_fit.n_lo, time_fit.n_hi)]
        noisy_points = int(in_fit["noisy"].fillna(False).astype(bool).sum())
        why = implausible(time_fit, noisy_points)
        if not why and noisy_points:
            why = f"{noisy_points} noisy point(s) in the fit range"
        rows.append(
            {
                "config": config,
                "variant": variant,
                "time_alpha": time_fit.alpha,
                "time_ci_low": time_fit.ci_low,
                "time_ci_high": time_fit.ci_high,
                "fit_n_lo": time_fit.n_lo,
                "fit_n_hi": time_fit.n_hi,
                "declared_time": declared_time if isinstance(declared_time, str) else None,
                # An implausible exponent is not a disagreement: it says nothing either way.
                "time_agrees": None if implausible(time_fit) else agrees(time_fit, expected_time),
                "mem_beta": mem_fit.alpha if mem_fit else np.nan,
                "mem_ci_low": mem_fit.ci_low if mem_fit else np.nan,
                "mem_ci_high": mem_fit.ci_high if mem_fit else np.nan,
                "declared_memory": declared_mem if isinstance(declared_mem, str) else None,
                "mem_agrees": agrees(mem_fit, expected_mem) if mem_fit else None,
                "time_local_slopes": " ".join(f"{s:.2f}" for s in time_fit.local_slopes),
                "noisy_points": noisy_points,
                "note": "; ".join(part for part in (time_fit.note, why) if part),
                "scope": curve["scope"].iloc[-1] if "scope" in curve else "attention",
            }
        )
    return pd.DataFrame(rows)


def crossover_table(frame: pd.DataFrame) -> pd.DataFrame:
    """For each pair of variants within a configuration, the last N where their time
    (or memory) curves cross, with the one ahead beyond it; interpolated in log space.

    A time crossover carries an interval in N (``crossover_n_low``, ``crossover_n_high``): where the curves
    drawn through the ends of the rows' 95 % intervals across rounds cross (a's low against b's high, a's
    high against b's low), together with N* itself; bounds that never cross stretch it to the grid's ends
    (the order stays uncertain that far). Memory is deterministic: the interval is N*. Time curves leave out
    launch-bound rows (a pair is compared at the N where both timed their kernels); memory curves keep them."""
    ok = _ok(frame)
    rows = []
    for config, every in ok.groupby("config", sort=True):
        for metric, column in (("time", "time_median_s"), ("memory", "peak_mem_bytes")):
            group = without_launch_bound(every) if metric == "time" else every
            wide = group.pivot_table(index="seq_len", columns="variant", values=column, aggfunc="first")
            low, high = (group.pivot_table(index="seq_len", columns="variant", values=bound, aggfunc="first")
                         if bound in group else pd.DataFrame() for bound in ("time_ci_low_s", "time_ci_high_s"))  # fmt: skip
            for a, b in itertools.combinations(sorted(wide.columns), 2):
                pair = wide[[a, b]].dropna()
                found = crossovers(pair.index.tolist(), pair[a].tolist(), pair[b].tolist())
                # Curves within 10% of each other at the largest N (one kernel under two
                # names, say) cross back and forth by noise: no one overtakes anyone.
                if not found or abs(np.log(pair[a].iloc[-1] / pair[b].iloc[-1])) < np.log(1 + MIN_LEAD):
                    continue
                n_star, lower = found[-1]
                ahead, behind = (a, b) if lower == "a" else (b, a)
                n_low, n_high = (
                    (n_star, n_star) if metric == "memory" else _crossover_interval(pair.index, a, b, low, high, n_star)
                )
                rows.append(
                    {
                        "config": config,
                        "metric": metric,
                        "ahead_beyond": ahead,
                        "behind_beyond": behind,
                        "crossover_n": n_star,
                        "crossover_n_low": n_low,
                        "crossover_n_high": n_high,
                        "n_range": f"{int(pair.index.min())}..{int(pair.index.max())}",
                    }
                )
    return pd.DataFrame(rows, columns=["config", "metric", "ahead_beyond", "behind_beyond", "crossover_n", "crossover_n_low",
                                       "crossover_n_high", "n_range"])  # fmt: skip


def _crossover_interval(ns, a: str, b: str, low: pd.DataFrame, high: pd.DataFrame, n_star: float) -> tuple[float, float]:
    """The N range within which the order of a and b is uncertain at 95 %, around their crossover ``n_star``."""
    ends = [n_star]
    for a_end, b_end in ((low, high), (high, low)):
        if a not in a_end or b not in b_end:
            continue
        ya, yb = a_end[a].reindex(ns), b_end[b].reindex(ns)
        if ya.isna().any() or yb.isna().any():
            continue
        found = crossovers(list(ns), ya.tolist(), yb.tolist())
        # Bounds that never cross: the order is uncertain somewhere on every side, so the grid's ends.
        ends += [found[-1][0]] if found else [float(min(ns)), float(max(ns))]
    return min(ends), max(ends)


def fastest_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per configuration and N: the fastest variant, and the fastest exact one (launch-bound rows never win)."""
    ok = without_launch_bound(_ok(frame))
    rows = []
    for (config, n), group in ok.groupby(["config", "seq_len"], sort=True):
        best = group.loc[group["time_median_s"].idxmin()]
        exact = group[group["exact"].astype(bool)]
        best_exact = exact.loc[exact["time_median_s"].idxmin()] if len(exact) else None
        rows.append(
            {
                "config": config,
                "seq_len": int(n),
                "fastest": best["variant"],
                "time_s": best["time_median_s"],
                "fastest_exact": best_exact["variant"] if best_exact is not None else None,
                "exact_time_s": best_exact["time_median_s"] if best_exact is not None else np.nan,
            }
        )
    return pd.DataFrame(rows)


def quality_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Every measured case whose time is not to be taken at face value: contended, noisy, or with re-taken blocks.

    Contended cases are left out of fits, crossovers and the fastest-per-N
    table (their status is not ``ok``); noisy ones are kept and flagged.
    """
    columns = ["config", "variant", "seq_len", "status", "iqr_over_median", "runqueue_wait", "discarded_blocks",
               "load_avg", "reason"]  # fmt: skip
    measured = frame[frame["status"].isin(MEASURED)]
    if not len(measured):
        return pd.DataFrame(columns=columns)
    for column in ("runqueue_wait_ratio", "discarded_blocks", "load_avg"):
        if column not in measured:  # runs recorded before interference was measured
            measured = measured.assign(**{column: np.nan})
    flagged = measured[
        (measured["status"] == "contended")
        | measured["noisy"].fillna(False).astype(bool)
        | (measured["discarded_blocks"].fillna(0) > 0)
    ]
    flagged = with_config(flagged).assign(
        iqr_over_median=lambda f: f["time_iqr_s"] / f["time_median_s"],
        runqueue_wait=lambda f: f["runqueue_wait_ratio"],
    )
    return flagged[columns].sort_values(["status", "variant", "config", "seq_len"]).reset_index(drop=True)


def failure_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Every case that did not finish ``ok``, with its status and reason."""
    bad = with_config(frame[frame["status"] != "ok"])
    columns = ["config", "variant", "seq_len", "status", "reason"]
    return (
        bad[columns].sort_values(["status", "variant", "config", "seq_len"]).reset_index(drop=True)
        if len(bad)
        else pd.DataFrame(columns=columns)
    )


def compile_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per configuration and variant that ran torch.compile: the cases, those that compiled, the seconds
    their first calls took (``compile_s``, never inside a timing), and the cases that recompiled while timed."""
    columns = ["config", "variant", "cases", "compiled_cases", "compile_s_total", "compile_s_first", "recompiled_in_timing"]
    if "compile_s" not in frame or frame["compile_s"].isna().all():
        return pd.DataFrame(columns=columns)
    labelled = with_config(frame)
    compiling = labelled[labelled["variant"].isin(labelled.loc[labelled["compile_s"].notna(), "variant"])]
    recompiled = compiling["warnings"].map(lambda ws: any("torch.compile compiled" in w for w in listed_warnings(ws)))
    rows = []
    for (config, variant), group in compiling.assign(recompiled=recompiled).groupby(["config", "variant"], sort=True):
        compiled = group.sort_values("seq_len")["compile_s"].dropna()
        rows.append({"config": config, "variant": variant, "cases": len(group), "compiled_cases": len(compiled),
                     "compile_s_total": compiled.sum(), "compile_s_first": compiled.iloc[0] if len(compiled) else np.nan,
                     "recompiled_in_timing": int(group["recompiled"].sum())})  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def _beside_unmodified(frame: pd.DataFrame, dimension: str, values: list[str]) -> pd.DataFrame | None:
    """The ok cases whose ``dimension`` (mask, score_mod) is not "none", each beside the ``values`` of the same
    case with it "none" (columns suffixed "_none"); None when either side has no case."""
    ok = frame[frame["status"] == "ok"]
    same = [c for c in CONFIG_COLUMNS if c != dimension] + ["variant", "seq_len"]
    plain = ok[ok[dimension] == "none"][same + values]
    changed = with_config(ok)[lambda f: f[dimension] != "none"]
    if plain.empty or changed.empty:
        return None
    return changed.merge(plain, on=same, suffixes=("", "_none"))


def mask_speedup_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per variant, masked case and N: the dense (mask "none") case's time over the masked one's,
    beside the ideal -- dense over masked visible pairs (N/W for a sliding window)."""
    columns = ["config", "variant", "mask", "seq_len", "speedup", "ideal", "of_ideal"]
    both = _beside_unmodified(frame, "mask", ["time_median_s", "flops"])
    if both is None:
        return pd.DataFrame(columns=columns)
    both = both.assign(
        speedup=both["time_median_s_none"] / both["time_median_s"],
        ideal=both["flops_none"].astype(float) / both["flops"].astype(float),
    ).assign(of_ideal=lambda f: f["speedup"] / f["ideal"])
    return both[columns].sort_values(["variant", "mask", "config", "seq_len"]).reset_index(drop=True)


def score_mod_cost_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per variant, modified case and N: its time over the time of the same case without a score modification
    (score_mod "none"), and its peak memory over that case's: a fused modification stays near 1, a dense bias
    does not. FLOPs count only the two matmuls, so the modification's cost shows here and in time, not in GFLOP/s."""
    columns = ["config", "variant", "score_mod", "seq_len", "time_ratio", "memory_ratio"]
    both = _beside_unmodified(frame, "score_mod", ["time_median_s", "peak_mem_bytes"])
    if both is None:
        return pd.DataFrame(columns=columns)
    both = both.assign(
        time_ratio=both["time_median_s"] / both["time_median_s_none"],
        memory_ratio=both["peak_mem_bytes"].astype(float) / both["peak_mem_bytes_none"].astype(float),
    )
    return both[columns].sort_values(["variant", "score_mod", "config", "seq_len"]).reset_index(drop=True)
