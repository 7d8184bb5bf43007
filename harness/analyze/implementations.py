"""For a Transformers user: which ``attn_implementation`` wins, per model's configuration and N.

Transformers' own attention functions are the variants named ``hf-…`` (`variants.hf`: ``hf-sdpa``, ``hf-eager``,
``hf-flex``; the name after ``hf-`` is the ``attn_implementation``). Per configuration and N where at least two of them ran
ok: the fastest, its lead over the next (their median times' ratio), and the fastest exact variant of any
family at that N beside it, with its time over the winner's. Launch-bound rows (`harness.analyze.launch`) time the
host's launches, not the implementation: they take no part. Pure pandas over results rows.
"""

from __future__ import annotations

import pandas as pd

from .launch import without_launch_bound
from .tables import with_config

COLUMNS = ["config", "seq_len", "attn_implementation", "lead", "fastest exact of all", "its time over the winner's"]


def implementation_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration and N with two or more of Transformers' implementations ok (module docstring)."""
    ok = without_launch_bound(frame[(frame["status"] == "ok") & (frame["exact"] == True)])  # noqa: E712 — a column of True/False/None
    if ok.empty or not ok["variant"].str.startswith("hf-").any():
        return pd.DataFrame(columns=COLUMNS)
    ok = with_config(ok)
    rows = []
    for (config, n), at in ok.groupby(["config", "seq_len"], sort=True):
        hf = at[at["variant"].str.startswith("hf-")].sort_values("time_median_s")
        if len(hf) < 2:
            continue
        best = at.sort_values("time_median_s").iloc[0]
        winner, runner_up = hf.iloc[0], hf.iloc[1]
        rows.append({"config": config, "seq_len": n, "attn_implementation": winner["variant"].removeprefix("hf-"),
                     "lead": f"{runner_up['time_median_s'] / winner['time_median_s']:.2f}× over "
                             f"{runner_up['variant'].removeprefix('hf-')}",
                     "fastest exact of all": best["variant"],
                     "its time over the winner's": f"{best['time_median_s'] / winner['time_median_s']:.2f}×"})  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)
