"""What packing saves: packed documents of unequal length, each kernel against the best and against the ideal.

For each configuration, N and packed mask (``docs:`` or ``docs-bi:``, `variants.masks`), every variant's time
beside: the number of documents K, the padding fraction of a variant that pads (``sdpa-padded``), its time over
the fastest variant's at the same case, and the ideal -- N² over the mask's visible pairs, the speedup a kernel
that skips every hidden pair would get over the dense (unmasked) case. Pure pandas over results rows.
"""

from __future__ import annotations

import pandas as pd

from .tables import CONFIG_COLUMNS, with_config

COLUMNS = ["config", "seq_len", "mask", "documents", "variant", "time_median_s", "of_fastest", "padding_fraction", "ideal"]
PACKED = ("docs", "docs-bi")  # variants.masks.PACKED, read from the rows' mask specs (no variant is imported here)


def documents(spec: str) -> int:
    """The number of documents a packed mask's spec names: "docs:8" -> 8, "docs:512+1024+2560" -> 3."""
    size = spec.partition(":")[2]
    return size.count("+") + 1 if "+" in size else int(size)


def packing_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per ok packed case: documents, time, time over the fastest variant's, padding fraction, ideal."""
    ok = frame[(frame["status"] == "ok") & frame["mask"].astype(str).str.partition(":")[0].isin(PACKED)]
    if ok.empty:
        return pd.DataFrame(columns=COLUMNS)
    # The configuration names the mask's kind, not its documents: K is this table's x, not a curve of its own.
    ok = with_config(ok.drop(columns=["config"], errors="ignore").assign(spec=ok["mask"], mask=ok["mask"].str.partition(":")[0]))
    ok = ok.assign(mask=ok["spec"])
    n_q = ok["q_len"].fillna(ok["seq_len"]).astype(float)
    ok["documents"] = ok["mask"].map(documents)
    pairs = pd.to_numeric(ok["visible_pairs"], errors="coerce") if "visible_pairs" in ok else float("nan")  # older runs
    ok["ideal"] = n_q * ok["seq_len"] / pairs
    same = [c for c in CONFIG_COLUMNS if c in ok] + ["seq_len"]
    ok["of_fastest"] = ok["time_median_s"] / ok.groupby(same, dropna=False)["time_median_s"].transform("min")
    if "padding_fraction" not in ok:  # a run from before packing
        ok["padding_fraction"] = None
    return ok[COLUMNS].sort_values(["config", "seq_len", "documents", "time_median_s"]).reset_index(drop=True)
