"""Run folders written by earlier versions, read as today's: the one place that knows older spellings.

Before the mask was a dimension of its own, a run recorded ``causal`` (true or
false): in each row of ``cases.jsonl`` and, as a list, in ``sweep.json`` (at
its top and in each of its grids). Today that is the mask "causal" or "none".
Rows from before grouped-query heads and decode queries imply as many key heads
as query heads and as many queries as keys. Each reader of a run folder
(the results table, ``--resume``) goes through here, so an old folder loads,
reports and resumes as if written today, and a case keeps its id
(`harness.measure.case.Case.case_id` hashes the first release's ``causal``).
"""

from __future__ import annotations

from typing import Any

import pandas as pd


def _masks_of(causal: Any) -> list[str]:
    flags = causal if isinstance(causal, list) else [causal]
    return ["causal" if flag else "none" for flag in flags]


def upgrade_sweep(stored: dict[str, Any]) -> dict[str, Any]:
    """``sweep.json``'s settings in today's fields: ``causal`` becomes ``masks`` (its top and its grids); a
    ``q_len`` of 1 from before cross-attention (before ``models``, added with it) meant decode's default."""
    upgraded = dict(stored)
    if "models" not in upgraded and upgraded.get("q_len") == 1:
        upgraded["q_len"] = None
    causal = upgraded.pop("causal", None)
    if causal is not None and not upgraded.get("masks"):
        upgraded["masks"] = _masks_of(causal)
    if isinstance(upgraded.get("grids"), list):
        upgraded["grids"] = [upgrade_sweep(grid) if isinstance(grid, dict) else grid for grid in upgraded["grids"]]
    return upgraded


# Columns an older run's rows lack, and the column whose value they imply: as many key heads as query heads,
# as many queries as keys.
IMPLIED = {"heads_kv": "heads", "q_len": "seq_len"}
# Dimensions added since, and the value every row recorded before them had.
SINCE = {"score_mod": "none", "inputs": "gaussian", "model": None, "kv_layout": "contiguous", "kv_lens": "equal",
         "scope": "attention", "layer": None, "compile_mode": "default"}  # fmt: skip


def upgrade_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The results table in today's columns: a ``causal`` column becomes the mask where a row has none, and
    goes; a shape column an older run lacks is implied by its other columns; a dimension added since has its
    value then on every row from before it (a run resumed across versions holds both kinds of row)."""
    if "causal" in frame.columns:
        from_causal = frame["causal"].map({True: "causal", False: "none"})
        mask = frame["mask"].fillna(from_causal) if "mask" in frame.columns else from_causal
        frame = frame.drop(columns="causal").assign(mask=mask)
    implied = {column: frame[source] for column, source in IMPLIED.items() if column not in frame and source in frame}
    implied |= {column: value for column, value in SINCE.items() if column not in frame and len(frame)}
    implied |= {column: frame[column].fillna(value) for column, value in SINCE.items()
                if column in frame and value is not None and frame[column].isna().any()}  # fmt: skip
    return frame.assign(**implied) if implied else frame
