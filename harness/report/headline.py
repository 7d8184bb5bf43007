"""The report's findings section in words: the frames of `harness.analyze.findings` as small tables.

Each entry is ``{"title", "note", "table"}`` with ``table`` a frame of text,
ready for the page (`harness.report.build`) and for summary.md.
"""

from __future__ import annotations

import math

import pandas as pd

from ..analyze.families import ERROR_LIMIT, RECALL_LIMIT, family_verdicts
from ..analyze.findings import (
    approximation_errors,
    baseline_crossovers,
    class_verdicts,
    fastest_ranges,
    without_work_model,
)
from ..analyze.implementations import implementation_table
from ..analyze.layers import half_table, layer_share_table
from .compile_notes import compile_mode_finding
from .human import mark, significant
from .launch_marks import launch_bound_finding


def _n_range(lo: int, hi: int) -> str:
    return f"{lo:,}" if lo == hi else f"{lo:,}–{hi:,}"


def _lead(lo: float, hi: float) -> str:
    if not math.isfinite(lo):
        return "alone"
    return f"{significant(lo, 2)}×" if significant(lo, 2) == significant(hi, 2) else f"{significant(lo, 2)}–{significant(hi, 2)}×"


def _exponents(lo: float, hi: float) -> str:
    if not math.isfinite(lo):
        return ""
    return f"{lo:.2f}" if f"{lo:.2f}" == f"{hi:.2f}" else f"{lo:.2f} … {hi:.2f}"


def _agreement(agree: int, judged: int) -> str:
    return "–" if not judged else f"{mark(agree == judged)} {agree} of {judged}"


def fastest_table(frame: pd.DataFrame) -> pd.DataFrame:
    ranges = fastest_ranges(frame)
    approximations = [
        "" if pd.isna(name) else f"{name}: {_lead(lo, hi)}"  # None, or NaN once a column holds one
        for name, lo, hi in zip(ranges["approximation"], ranges["approx_speedup_min"], ranges["approx_speedup_max"])
    ]
    return pd.DataFrame(
        {
            "configuration": ranges["config"],
            "N": [_n_range(a, b) for a, b in zip(ranges["n_from"], ranges["n_to"])],
            "fastest exact": ranges["fastest"],
            "lead over the next exact": [_lead(a, b) for a, b in zip(ranges["lead_min"], ranges["lead_max"])],
            "next exact (largest N)": ranges["runner_up"].fillna(""),
            "fastest approximation: its speedup": approximations,
        }
    )


def _configurations(where: list[str], every: list[str]) -> str:
    """The configurations a finding holds in: listed, or counted with the exceptions named when most."""
    if len(where) == len(every) > 1:
        return f"all {len(every)} configurations"
    if len(where) > len(every) / 2 and len(every) > 2:
        return f"{len(where)} of {len(every)} configurations; not in: " + "; ".join(c for c in every if c not in where)
    return "; ".join(where)


def crossover_lines(crossovers: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """One line per (variant, metric, direction): the range of crossover N and the configurations it holds in."""
    mine = baseline_crossovers(crossovers, baseline)
    words = {
        ("time", "ahead"): f"faster than {baseline}",
        ("time", "behind"): f"slower than {baseline}",
        ("memory", "ahead"): f"less memory than {baseline}",
        ("memory", "behind"): f"more memory than {baseline}",
    }
    all_configs = sorted(crossovers["config"].unique()) if len(crossovers) else []
    rows = []
    for (metric, variant, beyond), group in mine.groupby(["metric", "variant", "beyond"], sort=True):
        lo, hi = group["crossover_n"].min(), group["crossover_n"].max()
        where = sorted(group["config"].unique())
        low, high = group["crossover_n_low"].min(), group["crossover_n_high"].max()
        rows.append({
            "finding": f"{variant}: {words[(metric, beyond)]}",
            "beyond N ≈": significant(lo, 2) if significant(lo, 2) == significant(hi, 2)
            else f"{significant(lo, 2)}–{significant(hi, 2)}",
            "95% interval of N": "–" if not (math.isfinite(low) and math.isfinite(high)) or (low == lo and high == hi)
            else f"{significant(low, 2)}–{significant(high, 2)}",
            "in": _configurations(where, all_configs),
        })  # fmt: skip
    rows.sort(key=lambda row: "memory" in row["finding"])  # time first
    return pd.DataFrame(rows, columns=["finding", "beyond N ≈", "95% interval of N", "in"])


def class_table(fits: pd.DataFrame) -> pd.DataFrame:
    verdicts = class_verdicts(fits)
    return pd.DataFrame(
        {
            "variant": verdicts["variant"],
            "time ~ N^α, fitted": [_exponents(a, b) for a, b in zip(verdicts["time_alpha_min"], verdicts["time_alpha_max"])],
            "declared time": verdicts["declared_time"].fillna("–"),
            "time agrees": [_agreement(a, j) for a, j in zip(verdicts["time_agree"], verdicts["time_judged"])],
            "memory ~ N^β, fitted": [_exponents(a, b) for a, b in zip(verdicts["mem_beta_min"], verdicts["mem_beta_max"])],
            "declared memory": verdicts["declared_memory"].fillna("–"),
            "memory agrees": [_agreement(a, j) for a, j in zip(verdicts["mem_agree"], verdicts["mem_judged"])],
        }
    )


def error_table(frame: pd.DataFrame) -> pd.DataFrame:
    errors = approximation_errors(frame)
    return pd.DataFrame(
        {
            "variant": errors["variant"],
            "dtype": errors["dtype"],
            "error at smallest N": [f"{e:.1e} (N={n:,})" for e, n in zip(errors["err_small"], errors["n_small"])],
            "error at largest N": [f"{e:.1e} (N={n:,})" for e, n in zip(errors["err_large"], errors["n_large"])],
            "worst": [f"{e:.1e}" for e in errors["err_max"]],
        }
    )


def _family(name: str, error: float, recall: float) -> str:
    return f"{name} (error {significant(error, 2)}" + ("" if math.isnan(recall) else f", recall {recall:.2f}") + ")"


def family_lines(frame: pd.DataFrame) -> pd.DataFrame:
    """One sentence per approximation measured on several input families: where it breaks, best and worst family."""
    rows = []
    for v in family_verdicts(frame).itertuples(index=False):
        span = f"{v.entropy_low:.1f}–{v.entropy_high:.1f} nats"
        if v.broken_everywhere:
            verdict = f"error over {ERROR_LIMIT} or top-8 recall under {RECALL_LIMIT} on every family ({span})"
        elif math.isnan(v.breaks_below_entropy):
            verdict = f"within {ERROR_LIMIT} of exact, recall {RECALL_LIMIT} or more, on every family ({span})"
        else:
            verdict = f"breaks at {v.breaks_below_entropy:.1f} nats and below; holds on the smoother families ({span} measured)"
        rows.append({"approximation": v.variant, "on attention that looks real": verdict,
                     "best family": _family(v.best_inputs, v.best_rel_err, v.best_recall),
                     "worst family": _family(v.worst_inputs, v.worst_rel_err, v.worst_recall)})  # fmt: skip
    return pd.DataFrame(rows, columns=["approximation", "on attention that looks real", "best family", "worst family"])


def findings_sections(frame: pd.DataFrame, fits: pd.DataFrame, crossovers: pd.DataFrame, baseline: str) -> list[dict]:
    """The findings, most useful first; when some rows are launch-bound, first the list of what they leave out,
    and when some curves are in a non-default compile mode, what their names mean."""
    no_model = without_work_model(frame)
    errors_note = "Relative Frobenius error against exact float64 attention on the same inputs (median over configurations)."
    if no_model:
        errors_note += (f" No work model (FLOP count), so absent from the GFLOP/s figure: {', '.join(no_model)}"
                        " (declare flops= when registering).")  # fmt: skip
    host_bound = launch_bound_finding(frame)  # why some N are missing below: read before the findings it explains
    modes = compile_mode_finding(frame)  # what the names of curves in another compile mode mean, likewise
    return [*([host_bound] if host_bound else []), *([modes] if modes else []),
        {"title": "Fastest exact variant per range of N", "table": fastest_table(frame),
         "note": "Per configuration, consecutive sequence lengths won by one exact variant (median time; contended "
                 "and launch-bound cases left out); variants whose 95% intervals across rounds overlap tie (a ≈ b); "
                 "its lead: the next exact variant's time over its own, smallest to largest; the "
                 "fastest approximation at the largest N, and its speedup over the fastest exact one (below 1×: "
                 "slower). Approximations' errors are below."},
        {"title": f"Crossovers against the baseline ({baseline})", "table": crossover_lines(crossovers, baseline),
         "empty": f"no variant's time or memory curve crosses {baseline}'s",
         "note": "Where a variant's curve crosses the baseline's for the last time (interpolated in log space), "
                 "over the configurations where it does; all pairs are under Crossovers, further down."},
        {"title": "Fitted complexity against the declared class",
         "table": class_table(fits[fits["scope"] == "attention"] if "scope" in fits else fits),
         "note": "Exponents of a log-log fit over the largest N (range over configurations; attention timed alone, "
                 "not inside a layer); agrees: within 0.3 of the declared class, in how many configurations (– : no "
                 "verdict, e.g. too few or noisy points); launch-bound points are left out of the time fit."},
        {"title": "Error of the approximations", "table": error_table(frame), "empty": "no approximate variant ran",
         "note": errors_note},
        {"title": "Transformers' attn_implementation per model", "table": implementation_table(frame),
         "empty": "no two of Transformers' attention functions ran on one case (.[hf]: hf-sdpa, hf-eager)",
         "note": "Per configuration (a model's, under --model) and N: which of Transformers' own attention functions "
                 "(attn_implementation) is fastest, by how much, and the fastest exact variant of any kind beside "
                 "it (its time over the winner's; below 1×: faster than what Transformers offers)."},
        {"title": "Attention's share of the layer", "table": half_table(layer_share_table(frame)),
         "empty": "no layer case (--scope layer)",
         "note": "A decoder layer (norm, Q/K/V/O projections, MLP) around each variant, timed against the variant "
                 "alone in the same run: the share of the layer's time its attention takes at the largest N, and "
                 "the N where it passes half (measured: interpolated between the neighbouring N, or extrapolated "
                 "from the two largest), beside the N where the attention's FLOPs pass the rest of the layer's."},
        {"title": "Approximations as attention sharpens", "table": family_lines(frame),
         "empty": "no approximation ran on more than one input family (--inputs)",
         "note": "Over the input families (--inputs), each placed by the mean entropy of its exact attention rows "
                 "(lower: sharper). Breaks: error over 0.1 or top-8 recall under 0.5; 'at X nats and below' is "
                 "the highest entropy where it broke. Best and worst family by median error over N."},
    ]  # fmt: skip
