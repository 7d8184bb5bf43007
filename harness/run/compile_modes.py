"""A compiled variant run in a compile mode other than the default is a curve of its own when results are read.

A row's ``compile_mode`` (`harness.measure.case.Case`) says how a compiled variant (flex, naive-compiled:
`variants.compiled.FOLLOW_MODE`) was compiled. The results files keep the variant's registered name ("flex")
and the mode beside it; the table a reader loads (`harness.run.results.load_results`, `load_run`: every
analysis, report, ``show``, ``compare`` and ``export`` path goes through one of them) names such a row's variant after both, "flex
(max-autotune)", so that every table and figure that groups by variant draws it apart from the default's curve
at the same shapes. The case id is untouched: it already tells the modes apart.
"""

from __future__ import annotations

import pandas as pd

DEFAULT = "default"
# The mode's name in a curve's name: "max-autotune-no-cudagraphs" is long, and no CUDA graphs is the harness's
# own choice (--cuda-graphs), not the mode's.
SHORT = {"max-autotune-no-cudagraphs": "max-autotune"}
# What each mode means, in one sentence the report shows where a run has it.
MEANINGS = {
    "static": "compiled per shape (static shapes, --compile-mode static) in torch.compile's default mode, where "
    "the default curve compiles once for every N (dynamic shapes)",
    "max-autotune-no-cudagraphs": "compiled per shape with Inductor's autotuning (--compile-mode "
    "max-autotune-no-cudagraphs); its compile_s is kept apart from its time",
}


def curve_name(variant: str, mode: str | None) -> str:
    """The variant's name as a curve: "flex" in the default mode, "flex (max-autotune)" in another."""
    if not isinstance(mode, str) or mode == DEFAULT:
        return variant
    suffix = f" ({SHORT.get(mode, mode)})"
    return variant if variant.endswith(suffix) else variant + suffix  # named once, however often it is read


def registered_name(variant: str, mode: str | None) -> str:
    """The variant's registered name, from its name as a curve ("flex (max-autotune)" -> "flex")."""
    suffix = f" ({SHORT.get(mode, mode)})" if isinstance(mode, str) and mode != DEFAULT else ""
    return variant.removesuffix(suffix) if suffix else variant


def meaning(variant: str, mode: str) -> str:
    """The sentence saying what a curve of ``variant`` in ``mode`` is."""
    what = MEANINGS.get(mode, f"compiled with --compile-mode {mode}")
    return f"{curve_name(variant, mode)}: {what}."


def by_compile_mode(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each row in a non-default compile mode named after its variant and mode; a frame without
    such rows is returned as it is, and one read twice keeps its names."""
    if "compile_mode" not in frame or "variant" not in frame or frame.empty:
        return frame
    modes = frame["compile_mode"]
    other = modes.notna() & (modes != DEFAULT)
    if not other.any():
        return frame
    variant = frame["variant"].astype(object).copy()
    variant[other] = [curve_name(str(v), m) for v, m in zip(variant[other], modes[other])]
    return frame.assign(variant=variant)
