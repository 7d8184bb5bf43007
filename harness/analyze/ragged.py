"""What unequal cache lengths cost in decode: the best time on a batch of unequal caches against the best on the
same batch with every cache full, beside the ideal.

For each decode configuration, N and lengths spec (``kv_lens`` drawn or given, `variants.kv_lens`): the fastest
variant on the unequal batch over the fastest on the equal one (every sequence N keys). The ideal is the share
of the work left, the unequal case's FLOPs over the equal one's (each sequence's visible pairs at its own
length): what a kernel that reads each sequence to its own length alone would take. A padded batch stays near
1. Pure pandas over results rows.
"""

from __future__ import annotations

import pandas as pd

from .paging import fastest_against

COLUMNS = ["config", "seq_len", "kv_lens", "best_unequal", "unequal_s", "best_equal", "equal_s", "unequal_cost", "work_left"]


def unequal_lengths_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration, N and lengths spec: the best unequal time over the best equal time, and the ideal."""
    both = fastest_against(frame, "kv_lens", "equal")
    if both.empty:
        return pd.DataFrame(columns=COLUMNS)
    both = both.rename(columns={"variant_other": "best_unequal", "time_median_s_other": "unequal_s",
                                "variant_base": "best_equal", "time_median_s_base": "equal_s"})  # fmt: skip
    both["unequal_cost"] = both["unequal_s"] / both["equal_s"]
    both["work_left"] = both["flops_other"] / both["flops_base"]
    return both[COLUMNS].sort_values(["config", "seq_len", "kv_lens"]).reset_index(drop=True)
