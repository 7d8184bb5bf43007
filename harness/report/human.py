"""Tables for people: column names in words with units, 2-3 significant digits, ✓/✗ for yes/no.

The report's HTML shows these; ``tables/*.csv`` keep the raw columns at full
precision for anyone who computes with them. A column this module does not
know keeps its name and gets the generic treatment (3 significant digits).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandas as pd


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def significant(value: float, digits: int = 3) -> str:
    """``digits`` significant digits, without exponent notation between 0.001 and 10^6 (1234 -> "1,234")."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    if abs(value) >= 10 ** (digits - 1):
        return f"{value:,.0f}"
    if abs(value) >= 1e-3:
        decimals = digits - 1 - math.floor(math.log10(abs(value)))
        return f"{value:.{max(decimals, 0)}f}"
    return f"{value:.{digits - 1}e}"


def mark(value: Any) -> str:
    """✓, ✗, or – when there is no verdict."""
    return "–" if _missing(value) else "✓" if bool(value) else "✗"


def _number(digits: int = 3, scale: float = 1.0, suffix: str = "") -> Callable[[Any], str]:
    return lambda v: significant(float(v) * scale, digits) + suffix


def _percent(value: Any) -> str:
    return f"{float(value):.0%}"


def _integer(value: Any) -> str:
    return f"{int(value):,}"


def _error(value: Any) -> str:
    return f"{float(value):.1e}"


# raw column -> (heading, formatter)
COLUMNS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "config": ("configuration", str),
    "variant": ("variant", str),
    "seq_len": ("N", _integer),
    "time_median_s": ("time (ms)", _number(3, 1e3)),
    "time_s": ("time (ms)", _number(3, 1e3)),
    "exact_time_s": ("fastest exact: time (ms)", _number(3, 1e3)),
    "fastest_exact": ("fastest exact", str),
    "time_alpha": ("time exponent α", _number(3)),
    "time_ci_low": ("α, 95% low", _number(3)),
    "time_ci_high": ("α, 95% high", _number(3)),
    "declared_time": ("declared time", str),
    "time_agrees": ("time agrees", mark),
    "mem_beta": ("memory exponent β", _number(3)),
    "mem_ci_low": ("β, 95% low", _number(3)),
    "mem_ci_high": ("β, 95% high", _number(3)),
    "declared_memory": ("declared memory", str),
    "mem_agrees": ("memory agrees", mark),
    "fit_n_lo": ("fit from N", _integer),
    "fit_n_hi": ("fit to N", _integer),
    "time_local_slopes": ("local slopes of time", str),
    "noisy_points": ("noisy points", _integer),
    "ahead_beyond": ("ahead beyond", str),
    "behind_beyond": ("behind beyond", str),
    "crossover_n": ("crossover N", _number(3)),
    "n_range": ("N measured", str),
    "iqr_over_median": ("IQR / median", _percent),
    "runqueue_wait": ("run-queue wait", _percent),
    "discarded_blocks": ("blocks discarded", _integer),
    "load_avg": ("load average", _number(2)),
    "cases": ("cases", _integer),
    "compiled_cases": ("cases that compiled", _integer),
    "compile_s_total": ("compile, total (s)", _number(3)),
    "compile_s_first": ("first compile (s)", _number(3)),
    "recompiled_in_timing": ("recompiled while timed", _integer),
    "speedup": ("speedup over dense", _number(3, suffix="×")),
    "ideal": ("ideal speedup", _number(3, suffix="×")),
    "of_ideal": ("of ideal", _percent),
    "of_fastest": ("time / fastest", _number(3, suffix="×")),
    "padding_fraction": ("padding", _percent),
    "documents": ("documents", _integer),
    "attn_entropy": ("exact entropy (nats)", _number(3)),
    "attn_tv": ("total variation", _number(3)),
    "attn_recall": ("top-8 recall", _percent),
    "breaks_below_entropy": ("breaks below entropy", _number(3)),
    "best_inputs": ("best on", str),
    "best_paged": ("fastest paged", str),
    "best_contiguous": ("fastest contiguous", str),
    "paged_s": ("paged (ms)", _number(3, 1e3)),
    "contiguous_s": ("contiguous (ms)", _number(3, 1e3)),
    "cost": ("paged / contiguous", _number(3, suffix="×")),
    "kv_layout": ("KV layout", str),
    "kv_lens": ("KV lengths", str),
    "power_w": ("power (W)", _number(3)),
    "energy_j": ("energy per call (J)", _number(3)),
    "tflops_per_watt": ("TFLOP/s per watt", _number(3)),
    "best_unequal": ("fastest unequal", str),
    "unequal_s": ("unequal (ms)", _number(3, 1e3)),
    "best_equal": ("fastest equal", str),
    "equal_s": ("equal (ms)", _number(3, 1e3)),
    "unequal_cost": ("unequal / equal", _number(3, suffix="×")),
    "work_left": ("ideal (work left)", _number(3, suffix="×")),
    "worst_inputs": ("worst on", str),
    "best_rel_err": ("its error", _error),
    "worst_rel_err": ("its error", _error),
    "threads": ("threads", _integer),
    "copy_gbps": ("copy (GB/s)", _number(3)),
    "device_name": ("device model", str),
    "rel_err": ("relative error", _error),
}


def heading(column: str) -> str:
    """The words for a raw column ("matmul_float32_gflops" -> "matmul float32 (GFLOP/s)")."""
    if column in COLUMNS:
        return COLUMNS[column][0]
    if column.startswith("matmul_") and column.endswith("_gflops"):
        return f"matmul {column.removeprefix('matmul_').removesuffix('_gflops')} (GFLOP/s)"
    return column.replace("_", " ")


def cell(column: str, value: Any) -> str:
    """One value of ``column`` as people read it; missing values are empty."""
    if _missing(value):
        return "–" if COLUMNS.get(column, ("", None))[1] is mark else ""  # a verdict column: "no verdict"
    if column in COLUMNS:
        return COLUMNS[column][1](value)
    if isinstance(value, bool):
        return mark(value)
    if isinstance(value, float):
        return significant(value)
    return str(value)


def for_people(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with headings in words and every cell as formatted text."""
    return pd.DataFrame(
        {heading(c): [cell(c, v) for v in frame[c].tolist()] for c in frame.columns}, columns=[heading(c) for c in frame.columns]
    )
