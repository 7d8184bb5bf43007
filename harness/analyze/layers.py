"""What attention costs inside a decoder layer (``--scope layer``), and the N where it passes half of it.

A layer case's attention share is its variant's time alone (the ``attention`` case of the same configuration
and N, measured in the same run) over the layer's time. The N where the share passes one half is found on the
measured points (the odds share/(1 - share) interpolated in log-log between the neighbouring N), and, where the
share never reaches it, extrapolated from the two largest N (marked so). Beside it, the analytic N from the
work model alone: where the attention's FLOPs equal the rest of the layer's (the layer row's FLOPs less the
attention row's), found the same way. Pure pandas over results rows.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .tables import CONFIG_COLUMNS, with_config

COLUMNS = ["config", "model", "batch", "variant", "seq_len", "layer_s", "attention_s", "share", "flops_share"]
HALF_COLUMNS = ["config", "variant", "largest N", "share there", "measured half at N", "analytic half at N"]


def layer_share_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per layer case with its attention twin: times, the measured share and the FLOP share."""
    if "scope" not in frame or not (frame["scope"] == "layer").any():
        return pd.DataFrame(columns=COLUMNS)
    ok = frame[frame["status"] == "ok"]
    keys = [c for c in CONFIG_COLUMNS if c in ok and c not in ("scope", "layer")] + ["variant", "seq_len"]
    layer = with_config(ok[ok["scope"] == "layer"])
    alone = ok[ok["scope"] == "attention"][keys + ["time_median_s", "flops"]]
    both = layer.merge(alone, on=keys, suffixes=("", "_attention"), how="inner")
    if both.empty:
        return pd.DataFrame(columns=COLUMNS)
    both = both.assign(layer_s=both["time_median_s"], attention_s=both["time_median_s_attention"],
                       flops_share=both["flops_attention"] / both["flops"])  # fmt: skip
    both["share"] = both["attention_s"] / both["layer_s"]
    both = both.assign(model=both["model"] if "model" in both else None, batch=both["batch"] if "batch" in both else 1)
    return both[COLUMNS].sort_values(["config", "variant", "seq_len"]).reset_index(drop=True)


def _half(ns: list[int], shares: list[float]) -> str:
    """The N where the share passes 1/2, from the odds s/(1-s) in log-log: "≈N" between two measured N, "≈N
    (extrapolated)" past the largest from the two largest, "below N_min" when already past it, "not approaching"
    when the share is not rising towards one half at the largest N (a window's attention stops growing), "–"
    when a share is unknown."""
    if not shares or not all(np.isfinite(shares)):
        return "–"  # a time or a FLOP count missing (a variant with no work model)
    # A share at or past 1 (attention alone timed slower than the layer: noise) is held just below it.
    odds = [math.log(s / (1 - s)) for s in np.clip(shares, 1e-6, 1 - 1e-6)]
    logs = [math.log(n) for n in ns]
    for (n0, o0), (n1, o1) in zip(zip(logs, odds), zip(logs[1:], odds[1:])):
        if o0 < 0 <= o1:  # crosses between two measured N
            return f"≈{math.exp(n0 + (n1 - n0) * -o0 / (o1 - o0)):,.0f}"
    if odds and odds[0] >= 0:
        return f"below {ns[0]:,}"
    if len(ns) < 2:
        return "not approaching"
    slope = (odds[-1] - odds[-2]) / (logs[-1] - logs[-2])
    return f"≈{math.exp(logs[-1] - odds[-1] / slope):,.0f} (extrapolated)" if slope > 0.05 else "not approaching"


def half_table(shares: pd.DataFrame) -> pd.DataFrame:
    """Per configuration and variant: the share at the largest N, and the N where attention passes half the
    layer, measured and analytic (module docstring)."""
    rows = []
    for (config, variant), curve in shares.groupby(["config", "variant"], sort=True):
        curve = curve.sort_values("seq_len")
        ns = curve["seq_len"].tolist()
        rows.append({"config": config, "variant": variant, "largest N": ns[-1],
                     "share there": f"{curve['share'].iloc[-1]:.0%}",
                     "measured half at N": _half(ns, curve["share"].tolist()),
                     "analytic half at N": _half(ns, curve["flops_share"].tolist())})  # fmt: skip
    return pd.DataFrame(rows, columns=HALF_COLUMNS)
