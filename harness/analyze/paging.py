"""What paging the KV cache costs: the best paged decode against the best contiguous one, same shapes.

For each decode configuration and N measured both ways, per page size P: the fastest variant reading the paged
cache (``kv_layout`` "paged:P", `variants.paged`) over the fastest reading it contiguous. Pure pandas over
results rows. `fastest_against` is the comparison itself, shared with `harness.analyze.ragged`. Decoding is small work
per call: on a GPU it is often launch-bound (`harness.analyze.launch`), and a launch-bound row is never the fastest.
"""

from __future__ import annotations

import pandas as pd

from .launch import without_launch_bound
from .tables import with_config

COLUMNS = ["config", "seq_len", "kv_layout", "best_paged", "paged_s", "best_contiguous", "contiguous_s", "cost"]


def fastest_against(frame: pd.DataFrame, column: str, baseline: str) -> pd.DataFrame:
    """Decode rows, per configuration (its name leaving ``column`` out) and N: the fastest variant at each value
    of ``column`` other than ``baseline`` beside the fastest at ``baseline``. Columns: config, seq_len, ``column``,
    variant, time_median_s and flops, each of the last three suffixed ``_other`` and ``_base``; empty if none.
    Launch-bound rows are left out: their time is the host's launch rate, the same for any layout."""
    if column not in frame:
        return pd.DataFrame()
    ok = without_launch_bound(frame[(frame["status"] == "ok") & (frame["mode"] == "decode")])
    if ok.empty or (ok[column] == baseline).all():
        return pd.DataFrame()
    ok = with_config(ok.drop(columns=["config"], errors="ignore").assign(kept=ok[column], **{column: baseline}))
    ok = ok.assign(**{column: ok["kept"]})
    fastest = ok.loc[ok.groupby(["config", "seq_len", column])["time_median_s"].idxmin()]
    keep = ["config", "seq_len", "variant", "time_median_s", "flops"]
    base = fastest[fastest[column] == baseline][keep]
    other = fastest[fastest[column] != baseline][[*keep, column]]
    return other.merge(base, on=["config", "seq_len"], suffixes=("_other", "_base"))


def paging_cost_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration, N and page size: the best paged time over the best contiguous time."""
    both = fastest_against(frame, "kv_layout", "contiguous")
    if both.empty:
        return pd.DataFrame(columns=COLUMNS)
    both = both.rename(columns={"variant_other": "best_paged", "time_median_s_other": "paged_s",
                                "variant_base": "best_contiguous", "time_median_s_base": "contiguous_s"})  # fmt: skip
    both["cost"] = both["paged_s"] / both["contiguous_s"]
    return both[COLUMNS].sort_values(["config", "seq_len", "kv_layout"]).reset_index(drop=True)
