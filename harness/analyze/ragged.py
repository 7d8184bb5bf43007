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

from .tables import with_config

COLUMNS = ["config", "seq_len", "kv_lens", "best_unequal", "unequal_s", "best_equal", "equal_s", "unequal_cost", "work_left"]


def unequal_lengths_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration, N and lengths spec: the best unequal time over the best equal time, and the ideal."""
    if "kv_lens" not in frame:
        return pd.DataFrame(columns=COLUMNS)
    ok = frame[(frame["status"] == "ok") & (frame["mode"] == "decode")]
    if ok.empty or (ok["kv_lens"] == "equal").all():
        return pd.DataFrame(columns=COLUMNS)
    # The configuration leaves the lengths out of its name: they are compared within it.
    ok = with_config(ok.drop(columns=["config"], errors="ignore").assign(lens=ok["kv_lens"], kv_lens="equal"))
    ok = ok.assign(kv_lens=ok["lens"])
    fastest = ok.loc[ok.groupby(["config", "seq_len", "kv_lens"])["time_median_s"].idxmin()]
    keep = ["config", "seq_len", "variant", "time_median_s", "flops"]
    equal = fastest[fastest["kv_lens"] == "equal"][keep]
    unequal = fastest[fastest["kv_lens"] != "equal"][[*keep, "kv_lens"]]
    both = unequal.merge(equal, on=["config", "seq_len"], suffixes=("_unequal", "_equal"))
    both = both.rename(columns={"variant_unequal": "best_unequal", "time_median_s_unequal": "unequal_s",
                                "variant_equal": "best_equal", "time_median_s_equal": "equal_s"})  # fmt: skip
    both["unequal_cost"] = both["unequal_s"] / both["equal_s"]
    both["work_left"] = both["flops_unequal"] / both["flops_equal"]
    return both[COLUMNS].sort_values(["config", "seq_len", "kv_lens"]).reset_index(drop=True)
