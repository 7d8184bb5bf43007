"""The findings entry for curves in a non-default compile mode: what the mode means, what it cost to compile,
and how its time compares with the default mode's at the same cases (`harness.analyze.compile_modes`)."""

from __future__ import annotations

import math

import pandas as pd

from ..analyze.compile_modes import compile_mode_table
from ..run.compile_modes import meaning
from .human import significant

COLUMNS = ["configuration", "curve", "N", "compile per case (s)", "default's time over its own"]


def _span(lo: float, hi: float, suffix: str = "") -> str:
    if not math.isfinite(lo):
        return "–"
    a, b = significant(lo, 2), significant(hi, 2)
    return f"{a}{suffix}" if a == b else f"{a}–{b}{suffix}"


def compile_mode_finding(frame: pd.DataFrame) -> dict | None:
    """A findings entry, one row per curve in a non-default compile mode; None when the run has none."""
    table = compile_mode_table(frame)
    if table.empty:
        return None
    rows = [{"configuration": r.config, "curve": r.variant,
             "N": f"{r.n_from:,}" if r.n_from == r.n_to else f"{r.n_from:,}–{r.n_to:,}",
             "compile per case (s)": _span(r.compile_s_min, r.compile_s_max),
             "default's time over its own": _span(r.default_over_this_min, r.default_over_this_max, "×")}
            for r in table.itertuples(index=False)]  # fmt: skip
    meanings = sorted({meaning(v, m) for v, m in zip(table["variant"], table["compile_mode"])})
    return {"title": "Compile modes", "table": pd.DataFrame(rows, columns=COLUMNS),
            "note": " ".join(meanings) + " Each is a curve of its own in every table and figure, beside the same "
                    "variant compiled in the default mode (dynamic shapes: one compile for every N). 'compile per "
                    "case': the wall time of a case's untimed first calls (compilation, autotuning, one call), never "
                    "in its time; 'default's time over its own': above 1×, the mode is faster at the same case "
                    "(launch-bound cases left out)."}  # fmt: skip
