"""Rows a damaged or hand-edited results file cannot be trusted with, and columns parquet cannot hold.

Every table is read through `harness.run.results.with_all_columns`, which
calls `distrust_damaged`: an ``ok`` row must carry what a measurement gives
it, a time that is finite and above zero and the samples it came from. One
that does not becomes an ``error`` saying what is wrong, so no command stars,
fits, exports or compares a time nobody measured.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd


def _samples(value) -> list:
    return list(value) if isinstance(value, list | tuple | np.ndarray) else []


def _why_damaged(row) -> str | None:
    try:
        time = float(row["time_median_s"])
    except (TypeError, ValueError):
        time = math.nan
    if not (math.isfinite(time) and time > 0):
        return f"time_median_s is {row['time_median_s']!r}"
    samples = _samples(row["time_samples_s"])
    if not samples:
        return "no time_samples_s"
    if not all(isinstance(x, int | float) and math.isfinite(x) and x > 0 for x in samples):
        return "time_samples_s holds a value that is not a positive finite time"
    return None


def distrust_damaged(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each ``ok`` row that lacks a valid timing made an ``error`` naming the fault; samples
    that are missing become empty lists."""
    frame = frame.assign(time_samples_s=frame["time_samples_s"].map(_samples))
    for index in frame.index[frame["status"] == "ok"]:
        why = _why_damaged(frame.loc[index])
        if why:
            frame.loc[index, ["status", "reason"]] = ["error", f"damaged row: {why}"]
    return frame


def storable(frame: pd.DataFrame, known: list[str]) -> pd.DataFrame:
    """``frame`` with every column outside ``known`` that mixes types (a field a plugin or a hand edit added)
    written as JSON text, which parquet can hold."""
    mixed = [c for c in frame.columns if c not in known and frame[c].dropna().map(lambda v: type(v).__name__).nunique() > 1]
    return frame.assign(**{c: frame[c].map(lambda v: json.dumps(v, default=str)) for c in mixed})
