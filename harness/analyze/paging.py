"""What paging the KV cache costs: the best paged decode against the best contiguous one, same shapes.

For each decode configuration and N measured both ways, per page size P: the fastest variant reading the paged
cache (``kv_layout`` "paged:P", `variants.paged`) over the fastest reading it contiguous. Pure pandas over
results rows.
"""

from __future__ import annotations

import pandas as pd

from .tables import with_config

COLUMNS = ["config", "seq_len", "kv_layout", "best_paged", "paged_s", "best_contiguous", "contiguous_s", "cost"]


def paging_cost_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration, N and page size: the best paged time over the best contiguous time."""
    if "kv_layout" not in frame:
        return pd.DataFrame(columns=COLUMNS)
    ok = frame[(frame["status"] == "ok") & (frame["mode"] == "decode")]
    if ok.empty or (ok["kv_layout"] == "contiguous").all():
        return pd.DataFrame(columns=COLUMNS)
    # The configuration leaves the layout out of its name: the layouts are compared within it.
    ok = with_config(ok.drop(columns=["config"], errors="ignore").assign(layout=ok["kv_layout"], kv_layout="contiguous"))
    ok = ok.assign(kv_layout=ok["layout"])
    fastest = ok.loc[ok.groupby(["config", "seq_len", "kv_layout"])["time_median_s"].idxmin()]
    contiguous = fastest[fastest["kv_layout"] == "contiguous"][["config", "seq_len", "variant", "time_median_s"]]
    paged = fastest[fastest["kv_layout"] != "contiguous"][["config", "seq_len", "kv_layout", "variant", "time_median_s"]]
    both = paged.merge(contiguous, on=["config", "seq_len"], suffixes=("_paged", "_contiguous"))
    both = both.rename(columns={"variant_paged": "best_paged", "time_median_s_paged": "paged_s",
                                "variant_contiguous": "best_contiguous", "time_median_s_contiguous": "contiguous_s"})  # fmt: skip
    both["cost"] = both["paged_s"] / both["contiguous_s"]
    return both[COLUMNS].sort_values(["config", "seq_len", "kv_layout"]).reset_index(drop=True)
