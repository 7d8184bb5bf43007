"""Approximations across input families: how wrong each is as attention sharpens, and where it breaks.

Over the ok rows of approximations (``exact`` false), each placed by its inputs' exact-attention entropy
(``attn_entropy``, `harness.measure.inputs`): the error and fidelity table, and per approximation the entropy
below which its error exceeds `ERROR_LIMIT` (or its top-8 recall falls under `RECALL_LIMIT`), with the family on
which it does best and worst. Pure pandas over results rows.
"""

from __future__ import annotations

import pandas as pd

from .tables import with_config

ERROR_LIMIT = 0.1
RECALL_LIMIT = 0.5
COLUMNS = ["config", "variant", "inputs", "seq_len", "attn_entropy", "rel_err", "attn_tv", "attn_recall"]
SUMMARY = ["config", "variant", "seq_len", "breaks_below_entropy", "best_inputs", "best_rel_err", "worst_inputs", "worst_rel_err"]


def family_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per ok approximation case that knows its inputs' entropy, sharpest attention first."""
    if "attn_entropy" not in frame or "exact" not in frame:
        return pd.DataFrame(columns=COLUMNS)
    ok = frame[(frame["status"] == "ok") & (frame["exact"] == False) & frame["attn_entropy"].notna()]  # noqa: E712
    ok = ok.assign(**{c: None for c in ("attn_tv", "attn_recall") if c not in ok})
    # The configuration leaves the family out of its name: the families are this table's axis, not its curves.
    ok = with_config(ok.drop(columns=["config"], errors="ignore").assign(family=ok["inputs"], inputs="gaussian"))
    ok = ok.assign(inputs=ok["family"])
    return ok[COLUMNS].sort_values(["config", "variant", "seq_len", "attn_entropy"]).reset_index(drop=True)


def breaking_points(frame: pd.DataFrame) -> pd.DataFrame:
    """Per approximation and N, over the input families it ran on: the highest entropy at which its error exceeds
    `ERROR_LIMIT` or its recall falls under `RECALL_LIMIT` (NaN: it held on all), and its best and worst family."""
    table = family_table(frame)
    rows = []
    for (config, variant, n), group in table.groupby(["config", "variant", "seq_len"]):
        if group["inputs"].nunique() < 2:
            continue
        broken = group[(group["rel_err"] > ERROR_LIMIT) | (group["attn_recall"].astype(float) < RECALL_LIMIT)]
        best, worst = group.loc[group["rel_err"].idxmin()], group.loc[group["rel_err"].idxmax()]
        rows.append({"config": config, "variant": variant, "seq_len": n,
                     "breaks_below_entropy": broken["attn_entropy"].max() if len(broken) else float("nan"),
                     "best_inputs": best["inputs"], "best_rel_err": best["rel_err"],
                     "worst_inputs": worst["inputs"], "worst_rel_err": worst["rel_err"]})  # fmt: skip
    return pd.DataFrame(rows, columns=SUMMARY)


VERDICTS = ["variant", "families", "entropy_low", "entropy_high", "breaks_below_entropy", "broken_everywhere",
            "best_inputs", "best_rel_err", "best_recall", "worst_inputs", "worst_rel_err", "worst_recall"]  # fmt: skip


def family_verdicts(frame: pd.DataFrame) -> pd.DataFrame:
    """Per approximation that ran on two families or more, over all its configurations and N: the entropy range
    its families spanned, the highest entropy at which it broke (error over `ERROR_LIMIT` or recall under
    `RECALL_LIMIT`; NaN: it never did), whether it broke on every case, and its best and worst family by median
    error (with that family's median recall)."""
    table = family_table(frame)
    rows = []
    for variant, group in table.groupby("variant"):
        if group["inputs"].nunique() < 2:
            continue
        recall = group["attn_recall"].astype(float)
        broken = (group["rel_err"] > ERROR_LIMIT) | (recall < RECALL_LIMIT)
        by_family = group.assign(attn_recall=recall).groupby("inputs")[["rel_err", "attn_recall"]].median()
        best, worst = by_family["rel_err"].idxmin(), by_family["rel_err"].idxmax()
        rows.append({"variant": variant, "families": len(by_family), "entropy_low": group["attn_entropy"].min(),
                     "entropy_high": group["attn_entropy"].max(),
                     "breaks_below_entropy": group.loc[broken, "attn_entropy"].max() if broken.any() else float("nan"),
                     "broken_everywhere": bool(broken.all()),
                     "best_inputs": best, "best_rel_err": by_family.loc[best, "rel_err"],
                     "best_recall": by_family.loc[best, "attn_recall"], "worst_inputs": worst,
                     "worst_rel_err": by_family.loc[worst, "rel_err"],
                     "worst_recall": by_family.loc[worst, "attn_recall"]})  # fmt: skip
    return pd.DataFrame(rows, columns=VERDICTS)
