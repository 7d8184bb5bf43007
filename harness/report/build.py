"""`build_report`: one or more run folders in, a self-contained report folder out.

    report/<name>/index.html       opens from the file system, no server
    report/<name>/summary.md       the headline tables in Markdown
    report/<name>/figures/*.png    seaborn figures (`harness.report.figures`)
    report/<name>/tables/*.csv     every table, full precision

The report reads results files only (parquet and JSON: data, not code), runs
no kernel and needs no plugin: records carry what it shows. The page is
rendered from ``templates/index.html`` by Jinja2 with autoescaping on, so
every string it takes from results -- variant names, reasons, parameters,
environment -- is escaped: a results file cannot inject markup or script.
"""

from __future__ import annotations

import time
from pathlib import Path

import jinja2
import pandas as pd

from ..analyze.energy import energy_table
from ..analyze.families import ERROR_LIMIT, RECALL_LIMIT, breaking_points, family_table
from ..analyze.layers import layer_share_table
from ..analyze.packing import packing_table
from ..analyze.paging import paging_cost_table
from ..analyze.ragged import unequal_lengths_table
from ..analyze.tables import (
    compile_table,
    crossover_table,
    failure_table,
    fastest_table,
    fit_table,
    mask_speedup_table,
    quality_table,
    score_mod_cost_table,
    with_config,
)
from ..measure.record import MEASURED
from ..run.files import replacing, write_text_atomic
from ..run.results import ResultsError, load_run
from .figure_plan import Omitted, make_figures
from .headline import findings_sections
from .human import for_people
from .launch_marks import launch_bound_line
from .text import markdown_table, markdown_text

FIGURE_CAPTIONS = {
    "time": "Time per call vs N (log-log): the median, with the interquartile range of the raw samples as a band.",
    "memory": "Peak memory vs N (log-log), from the allocator's own events in a pass of its own.",
    "speedup": "Speedup over the baseline variant (above the dashed line: faster than it).",
    "throughput": "Achieved GFLOP/s vs N; the dashed line is this machine's measured matmul ceiling for the dtype.",
    "decode": "Decoding (a few queries against an N-key cache) is memory-bound: achieved GB/s of the least traffic "
    "(q, K, V read once, the output written) against KV length, under this machine's measured copy bandwidth.",
    "packing": "Packed documents of unequal length at a fixed N: time per call against the number of documents. "
    "A kernel that skips the pairs between documents gets faster as they shorten; padding to the longest does not.",
    "families": "Approximations across input families: relative error (left) and the top-8 recall of the implied "
    "attention map (right) against the mean entropy of the exact attention rows of the inputs: uniform attention "
    "at the right, sharp attention at the left.",
    "layer_share": "Attention's share of a decoder layer's time against N, per model's layer: the variant alone over "
    "the whole layer (norm, projections, attention, MLP), both measured in the same run; dashed: one half.",
    "accuracy": "Relative Frobenius error against exact float64 attention on the same inputs, vs N.",
    "tradeoff": "Error vs time at the largest N every variant of the configuration reached: the speed/accuracy trade-off.",
    "exponents": "Fitted exponents with 95% bootstrap intervals, time (left) and memory (right); x marks the declared "
    "class. An exponent outside the axes is drawn at its edge as a triangle with its value.",
    "maps": "Each variant's implied attention matrix for one head at N=64 on structured inputs "
    "(extracted by passing V = identity), beside exact softmax's.",
    "family_maps": "The same, once per input family (--inputs): exact attention on that family's inputs, then each "
    "approximation's, with its relative error against exact's: where each blurs, misses or smears the structure "
    "that makes attention sharp. At N=64 a method with 64 landmarks or features can look exact; the errors above "
    "are at the swept N.",
}


FIT_COLUMNS = ["config", "variant", "time_alpha", "time_ci_low", "time_ci_high", "declared_time", "time_agrees",
               "mem_beta", "declared_memory", "mem_agrees", "fit_n_lo", "fit_n_hi", "note"]  # fmt: skip
TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,  # a name missing from the context is an error, not an empty string
)


def load_runs(run_dirs: list[str | Path]) -> tuple[pd.DataFrame, dict[str, dict], dict]:
    """(one labelled table of every run, env.json per run id, the first run's attention maps)."""
    if not run_dirs:
        raise ResultsError("no run directory given")
    frames, envs, maps = [], {}, {}
    for run_dir in run_dirs:
        frame, env, run_maps = load_run(run_dir)
        run_id = str(frame["run_id"].iloc[0]) if frame["run_id"].notna().any() else Path(run_dir).name
        if run_id in envs:  # two runs with one name (same folder name in two places)
            run_id = f"{run_id}@{Path(run_dir).resolve().parent.name}"
        frames.append(frame.assign(run_id=run_id))
        envs[run_id] = env
        maps = maps or run_maps
    return with_config(pd.concat(frames, ignore_index=True)), envs, maps


def _env_table(envs: dict[str, dict]) -> pd.DataFrame:
    rows = []
    for run, env in envs.items():
        for device, ceiling in (env.get("ceilings") or {}).items():
            rows.append(
                {
                    "run": run,
                    "device": device,
                    "device_name": ceiling.get("device_name"),
                    "threads": ceiling.get("threads"),
                    **{f"matmul_{k}_gflops": v for k, v in ceiling.get("matmul_gflops", {}).items()},
                    "copy_gbps": ceiling.get("copy_gbps"),
                    "torch": env.get("torch"),
                    "xformers": env.get("xformers"),
                    "python": env.get("python"),
                    "git_commit": env.get("git_commit"),
                }
            )
    return pd.DataFrame(rows)


def quality_lines(frame: pd.DataFrame, envs: dict[str, dict]) -> list[str]:
    """The measurement-quality summary: how far the numbers can be trusted, and on what machine."""
    measured = frame[frame["status"].isin(MEASURED)]
    contended = int((frame["status"] == "contended").sum())
    noisy = int(measured["noisy"].fillna(False).astype(bool).sum())
    retaken = int(measured["discarded_blocks"].fillna(0).gt(0).sum())
    lines = [
        f"{len(measured)} cases timed: {contended} contended (the machine preempted their blocks until the cap; "
        "left out of fits, crossovers and the fastest-per-N table), "
        f"{noisy} noisy (IQR/median over 10%; kept, and flagged in the fits), "
        f"{retaken} with blocks discarded (preempted on a CPU, and re-taken; run at a throttled SM clock on a GPU)."
    ] + [line for line in [launch_bound_line(frame)] if line]
    for run, env in envs.items():
        quiet = env.get("quiet_check") or {}
        verdict = f"busy: {quiet['busy']}" if quiet.get("busy") else "quiet" if quiet else "not run"
        lines.append(
            f"{run}: {env.get('cpu') or 'unknown CPU'}, {env.get('cpu_count')} CPUs, "
            f"{(env.get('sweep') or {}).get('threads', env.get('torch_threads'))} threads per case; "
            f"check before the sweep: {verdict}; {_allocator_words(frame, run, env)}"
        )
    return lines


def _allocator_words(frame: pd.DataFrame, run: str, env: dict) -> str:
    """How a run's CPU times were taken with respect to malloc, and why that matters."""
    rows = frame[frame["run_id"] == run]
    chosen = set(rows["allocator"].dropna()) if "allocator" in rows else set()
    malloc = ", ".join(f"{k}={v}" for k, v in (env.get("worker_env") or {}).items() if k.startswith("MALLOC"))
    if chosen == {"system"}:
        return "allocator: system (--allocator system: glibc's default malloc, as a plain Python process has it)"
    return (f"allocator: pinned ({malloc or 'mallopt'}: no mmap, blocks recycled from the heap, so CPU times are a "
            "caching allocator's steady state; a plain torch.utils.benchmark session can time the same call up to "
            "~2x slower: --allocator system measures that)")  # fmt: skip


def _html_table(frame: pd.DataFrame, empty: str = "none", *, raw: bool = True) -> dict:
    """A table as the template's macro takes it: headings and rows of cell text (``raw``: formatted for people)."""
    shown = for_people(frame) if raw else frame
    rows = [[str(v) for v in row] for row in shown.itertuples(index=False)]
    return {"columns": [str(c) for c in shown.columns], "rows": rows, "empty": empty}


def _sections(tables: dict[str, pd.DataFrame], headline: pd.DataFrame, figures: dict) -> list[dict]:
    """The page's sections after findings and quality, in order: the figures, then every table in full."""
    figure_list = [
        {"name": name, "caption": FIGURE_CAPTIONS[name], **({"omitted": f} if isinstance(f, Omitted) else {"file": f.name})}
        for name, f in figures.items()
    ]
    return [
        {"title": "Figures", "id": "figures", "figures": figure_list},
        {"title": "Complexity fits", "table": _html_table(headline),
         "note": "Log-log least squares over the largest points spanning >= 8x in N; 95% intervals from resampling "
                 "the raw timing samples; launch-bound points left out of the time fit. 'agrees': within 0.3 of the "
                 "declared class."},
        {"title": "Crossovers (all pairs)", "table": _html_table(tables["crossovers"]),
         "note": "The last N where one variant's curve crosses another's (interpolated in log space); "
                 "'ahead beyond' is lower (faster, or smaller) past it; time curves without their launch-bound points."},
        {"title": "Fastest variant per N", "table": _html_table(tables["fastest_per_n"]),
         "note": "Among the ok cases that are not launch-bound."},
        {"title": "Masked against dense", "table": _html_table(tables["mask_speedup"]),
         "note": "Time of the dense case (mask none) over the masked one, same variant and shape; 'ideal' is dense "
                 "over masked visible pairs (N/W for sliding:W): a kernel that skips hidden work gets near it."},
        {"title": "Cost of the score modification", "table": _html_table(tables["score_mod_cost"], "no score modification"),
         "note": "Time (and peak memory) of a case with a score modification (ALiBi, a soft cap, a relative-position "
                 "bias) over the same case without one. A kernel that fuses it stays near 1; SDPA's dense float bias "
                 "(H·N² values) does not. FLOPs count the two matmuls over visible pairs, as FlashAttention counts them: "
                 "the modification's own arithmetic shows in time, not in GFLOP/s."},
        {"title": "Packed documents", "table": _html_table(tables["packing"], "no packed-document case"),
         "note": "Documents of unequal length packed into one sequence (docs:K, lengths drawn log-normal with "
                 "sigma 1 from a fixed seed; or given, docs:a+b+...). 'of fastest': the time over the fastest "
                 "variant's at that case. 'ideal': N² over the visible pairs, what skipping every hidden pair saves "
                 "against the dense case. sdpa-padded pads each document to the longest and counts the padding as "
                 "work done; 'padding' is the share of its tokens that are padding."},
        {"title": "The cost of a paged KV cache", "table": _html_table(tables["paging_cost"], "no paged decode case"),
         "note": "Decoding from a cache kept in pages of P tokens in a shared pool, in a shuffled order, read through "
                 "a block table: the fastest variant reading the pages over the fastest reading a contiguous cache "
                 "of the same shape. 'gather' copies the pages out first; chunked-online gathers one key block at a "
                 "time."},
        {"title": "Caches of unequal length", "table": _html_table(tables["unequal_lengths"], "no unequal-length case"),
         "note": "A decode batch whose sequences hold different numbers of keys (--kv-lens: drawn log-normal with "
                 "sigma 1, the longest N; or given), N slots each: the fastest variant's time over the fastest on the "
                 "same batch with every cache full. 'ideal (work left)': the work left (each sequence's pairs at its own length "
                 "over the full batch's), what reading each cache to its own length alone would take; a padded "
                 "batch that computes every slot and masks stays near 1, or above it (the mask is work too)."},
        {"title": "Energy per call", "table": _html_table(tables["energy"], "no case measured with --energy"),
         "note": "CUDA cases run with --energy: the mean power over a window of back-to-back calls between two ticks "
                 "of NVML's energy counter (at least 0.5 s, the L2 warm), the joules per call, and TFLOP/s per watt."},
        {"title": "Approximations across input families", "table": _html_table(tables["breaking_points"],
         "no approximation ran on more than one input family"),
         "note": f"Per approximation and N: the highest exact-attention entropy (nats) at which its error exceeds "
                 f"{ERROR_LIMIT} or its top-8 recall falls under {RECALL_LIMIT} (below it, sharper attention: where it "
                 "breaks; empty: it held on every family), and the families it did best and worst on. Every case: "
                 "tables/families.csv."},
        {"title": "Cases that did not finish ok", "table": _html_table(tables["failures"])},
        {"title": "Compilation (torch.compile)", "table": _html_table(tables["compilation"], "no variant compiled"),
         "note": "compile: wall time of a case's untimed first calls that ran torch.compile (compilation plus one "
                 "call), never part of its timed samples; a later N served by the same dynamic-shape graph compiles "
                 "nothing. A recompile while timing is a warning on that row. A curve named with a compile mode "
                 "(flex (max-autotune)) compiled in that mode, per shape: see Compile modes under Findings."},
        {"title": "Environment and measured ceilings", "table": _html_table(tables["environment"])},
        {"title": "All fit details (local slopes: dlog t / dlog N between neighbouring N)",
         "table": _html_table(tables["complexity_fits"])},
    ]  # fmt: skip


def _summary_markdown(runs: str, counts: str, tables: dict[str, pd.DataFrame], headline: pd.DataFrame,
                      findings: list[dict]) -> str:  # fmt: skip
    parts = [f"# attnbench report: {markdown_text(runs)}\n", f"{markdown_text(counts)}\n", "\n## Findings\n"]
    for finding in findings:
        parts += [f"\n### {markdown_text(finding['title'])}\n", markdown_table(finding["table"])]
    for title, table in (("Measurement quality", tables["quality"]),
                         ("Complexity fits (time ~ N^alpha, memory ~ N^beta)", headline),
                         ("Crossovers", tables["crossovers"]), ("Failures", tables["failures"])):  # fmt: skip
        parts += [f"\n## {title}\n", markdown_table(for_people(table))]
    return "\n".join(parts)


DEFAULT_BASELINE = "sdpa"


def build_report(run_dirs: list[str | Path], out: str | Path, *, baseline: str | None = None) -> Path:
    """Write the report for ``run_dirs`` into ``out``; returns the path of index.html."""
    frame, envs, maps = load_runs(run_dirs)
    if baseline is None:  # the default: sdpa where it ran, and the speedup figure says when it did not
        baseline = DEFAULT_BASELINE
    elif baseline not in set(frame["variant"]):  # one asked for by name must be there
        known = ", ".join(sorted(set(frame["variant"])))
        raise ResultsError(f"--baseline {baseline}: no such variant in {', '.join(map(str, run_dirs))} (they hold {known})")
    out = Path(out)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    fits = fit_table(frame)
    tables = {
        "complexity_fits": fits,
        "crossovers": crossover_table(frame),
        "fastest_per_n": fastest_table(frame),
        "mask_speedup": mask_speedup_table(frame),
        "score_mod_cost": score_mod_cost_table(frame),
        "packing": packing_table(frame),
        "families": family_table(frame),
        "breaking_points": breaking_points(frame),
        "paging_cost": paging_cost_table(frame),
        "unequal_lengths": unequal_lengths_table(frame),
        "energy": energy_table(frame),
        "layer_share": layer_share_table(frame),
        "failures": failure_table(frame),
        "compilation": compile_table(frame),
        "quality": quality_table(frame),
        "environment": _env_table(envs),
    }
    for name, table in tables.items():
        with replacing(out / "tables" / f"{name}.csv") as temporary:
            table.to_csv(temporary, index=False)
    ceilings = {(run, device): c for run, env in envs.items() for device, c in (env.get("ceilings") or {}).items()}
    figures = make_figures(frame, fits, ceilings, maps.get("non_causal", {}), out / "figures", baseline, maps.get("families"))

    headline = fits[FIT_COLUMNS] if len(fits) else fits
    findings = findings_sections(frame, fits, tables["crossovers"], baseline)
    runs = ", ".join(envs)
    counts = f"{len(frame)} cases: " + ", ".join(f"{n} {s}" for s, n in sorted(frame["status"].value_counts().items()))
    write_text_atomic(out / "summary.md", _summary_markdown(runs, counts, tables, headline, findings))
    page = TEMPLATES.get_template("index.html").render(
        runs=runs,
        case_count=len(frame),
        counts=counts.split(": ", 1)[1],
        generated=time.strftime("%Y-%m-%d %H:%M:%S"),
        findings=[{**f, "table": _html_table(f["table"], f.get("empty", "none"), raw=False)} for f in findings],
        quality_lines=quality_lines(frame, envs),
        quality=_html_table(tables["quality"], "every timed case was clean"),
        sections=_sections(tables, headline, figures),
    )
    index = out / "index.html"
    write_text_atomic(index, page)
    return index
