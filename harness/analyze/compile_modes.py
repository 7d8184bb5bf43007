"""Curves of a compiled variant in a non-default compile mode, beside its default curve at the same cases.

A row in another compile mode is a curve of its own ("flex (max-autotune)", `harness.run.compile_modes`); this
table says, per such curve, what its compilation cost per case (``compile_s``, never inside a timing) and how
its time compares with the same variant compiled in the default mode at the same case. Launch-bound rows
(`harness.analyze.launch`) are left out of the comparison: they time the host.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..run.compile_modes import DEFAULT, registered_name
from .launch import without_launch_bound
from .tables import CONFIG_COLUMNS, with_config

COLUMNS = ["config", "variant", "compile_mode", "n_from", "n_to", "cases", "compile_s_min", "compile_s_max",
           "default_over_this_min", "default_over_this_max", "compared_cases"]  # fmt: skip


def compile_mode_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per curve in a non-default compile mode (ok rows): its N range, its compile seconds per case
    (smallest, largest), and the default-mode curve's time over its own at the cases both timed (above 1: this
    mode is faster), smallest and largest."""
    if "compile_mode" not in frame:
        return pd.DataFrame(columns=COLUMNS)
    ok = with_config(frame[frame["status"] == "ok"])
    other = ok[ok["compile_mode"].notna() & (ok["compile_mode"] != DEFAULT)]
    if other.empty:
        return pd.DataFrame(columns=COLUMNS)
    same = [c for c in CONFIG_COLUMNS if c in ok] + ["registered", "seq_len"]
    timed = without_launch_bound(ok)
    default = timed[timed["compile_mode"] == DEFAULT]
    default = default.assign(registered=default["variant"])[same + ["time_median_s"]]
    tuned = without_launch_bound(other)
    tuned = tuned.assign(registered=[registered_name(v, m) for v, m in zip(tuned["variant"], tuned["compile_mode"])])
    both = tuned.merge(default, on=same, suffixes=("", "_default"))
    both = both.assign(ratio=both["time_median_s_default"] / both["time_median_s"])
    rows = []
    for (config, variant, mode), curve in other.groupby(["config", "variant", "compile_mode"], sort=True):
        ratios = both.loc[(both["config"] == config) & (both["variant"] == variant), "ratio"]
        compile_s = pd.to_numeric(curve["compile_s"], errors="coerce").dropna() if "compile_s" in curve else curve["seq_len"][:0]
        rows.append({"config": config, "variant": variant, "compile_mode": mode, "n_from": int(curve["seq_len"].min()),
                     "n_to": int(curve["seq_len"].max()), "cases": len(curve),
                     "compile_s_min": compile_s.min() if len(compile_s) else np.nan,
                     "compile_s_max": compile_s.max() if len(compile_s) else np.nan,
                     "default_over_this_min": ratios.min() if len(ratios) else np.nan,
                     "default_over_this_max": ratios.max() if len(ratios) else np.nan,
                     "compared_cases": len(ratios)})  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)
