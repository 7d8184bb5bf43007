"""`build_report`: one or more run directories in, a self-contained report folder out.

    report/<name>/index.html       opens from the file system, no server
    report/<name>/summary.md       the headline tables in Markdown
    report/<name>/figures/*.png    seaborn figures (`harness.figures`)
    report/<name>/tables/*.csv     every table, full precision

The report reads results files only (parquet and JSON: data, not code) and runs
no kernel. Every string it takes from results -- variant names, reasons,
parameters, environment -- is HTML-escaped, so a results file cannot inject
markup or script into the page.
"""

from __future__ import annotations

import html
import json
import time
from pathlib import Path

import pandas as pd

from .analysis import crossover_table, failure_table, fastest_table, fit_table, quality_table
from .figures import make_figures
from .results import CASES_FILE, ENV_FILE, MAPS_FILE, PARQUET_FILE, ResultsError

FIGURE_CAPTIONS = {
    "time": "Time per call vs N (log-log): the median, with the interquartile range of the raw samples as a band.",
    "memory": "Peak memory vs N (log-log), from the allocator's own events in a pass of its own.",
    "speedup": "Speedup over the baseline variant (above the dashed line: faster than it).",
    "throughput": "Achieved GFLOP/s vs N; the dashed line is this machine's measured matmul ceiling for the dtype.",
    "accuracy": "Relative Frobenius error against exact float64 attention on the same inputs, vs N.",
    "tradeoff": "Error vs time at the largest N every variant of the configuration reached: the speed/accuracy trade-off.",
    "exponents": "Fitted exponents with 95% bootstrap intervals, time (left) and memory (right); x marks the declared class.",
    "maps": "Each variant's implied attention matrix for one head at N=64 on structured inputs "
    "(extracted by passing V = identity), beside exact softmax's.",
}


def load_run(run_dir: str | Path) -> tuple[pd.DataFrame, dict, dict]:
    """(results table, env.json, attention maps) of a finished run; `ResultsError` saying why not."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise ResultsError(f"{run_dir}: no such directory")
    if not run_dir.is_dir():
        raise ResultsError(f"{run_dir} is not a run directory")
    parquet = run_dir / PARQUET_FILE
    if not parquet.is_file():
        if (run_dir / CASES_FILE).is_file():
            raise ResultsError(
                f"{run_dir}: the sweep did not finish (no {PARQUET_FILE}); "
                f"finish it with attnbench sweep --resume --out {run_dir}"
            )
        raise ResultsError(f"{run_dir} holds no results ({PARQUET_FILE})")
    try:
        frame = pd.read_parquet(parquet)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise ResultsError(
            f"{parquet}: unreadable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    if frame.empty:
        raise ResultsError(f"{parquet} has no rows")
    env, maps = {}, {}
    for name, target in ((ENV_FILE, env), (MAPS_FILE, maps)):
        path = run_dir / name
        if path.is_file():
            try:
                target.update(json.loads(path.read_text()))
            except ValueError:
                raise ResultsError(f"{path}: not valid JSON") from None
    return frame, env, maps


def _table_html(frame: pd.DataFrame, title: str, note: str = "") -> str:
    body = (
        frame.to_html(index=False, escape=True, border=0, na_rep="", float_format=lambda x: f"{x:.4g}")
        if len(frame)
        else "<p><em>none</em></p>"
    )
    note_html = f"<p class='note'>{html.escape(note)}</p>" if note else ""
    return f"<section><h2>{html.escape(title)}</h2>{note_html}<div class='scroll'>{body}</div></section>"


def _markdown(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_none_\n"

    def cell(v) -> str:
        text = f"{v:.4g}" if isinstance(v, float) else str(v)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


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


def _quality_html(frame: pd.DataFrame, table: pd.DataFrame, envs: dict[str, dict]) -> str:
    """The measurement-quality section: how far the numbers can be trusted, and on what machine."""
    measured = frame[frame["status"].isin(["ok", "contended"])]
    contended = int((frame["status"] == "contended").sum())
    noisy = int(measured["noisy"].fillna(False).astype(bool).sum())
    retaken = int(measured.get("discarded_blocks", pd.Series(dtype=float)).fillna(0).gt(0).sum())
    lines = [
        f"{len(measured)} cases timed: {contended} contended (the machine preempted their blocks until the cap; "
        "left out of fits, crossovers and the fastest-per-N table), "
        f"{noisy} noisy (IQR/median over 10%; kept, and flagged in the fits), "
        f"{retaken} with preempted blocks discarded and re-taken."
    ]
    for run, env in envs.items():
        quiet = env.get("quiet_check") or {}
        verdict = f"busy: {quiet['busy']}" if quiet.get("busy") else "quiet" if quiet else "not run"
        malloc = ", ".join(f"{k}={v}" for k, v in (env.get("worker_env") or {}).items() if k.startswith("MALLOC"))
        lines.append(
            f"{run}: {env.get('cpu') or 'unknown CPU'}, {env.get('cpu_count')} CPUs, "
            f"{(env.get('sweep') or {}).get('threads', env.get('torch_threads'))} threads per case; "
            f"check before the sweep: {verdict}; workers' allocator: {malloc or 'default glibc malloc'}"
            " (pinned to the heap, so CPU times are a caching allocator's steady state; an unpinned process, "
            "as in a plain torch.utils.benchmark session, can time the same call up to ~2x slower)."
        )
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    body = (
        table.to_html(index=False, escape=True, border=0, na_rep="", float_format=lambda x: f"{x:.3g}")
        if len(table)
        else "<p><em>every timed case was clean</em></p>"
    )
    return f"<section id='quality'><h2>Measurement quality</h2><ul>{items}</ul><div class='scroll'>{body}</div></section>"


def build_report(run_dirs: list[str | Path], out: str | Path, *, baseline: str = "sdpa") -> Path:
    """Write the report for ``run_dirs`` into ``out``; returns the path of index.html."""
    if not run_dirs:
        raise ResultsError("no run directory given")
    frames, envs, maps = [], {}, {}
    for run_dir in run_dirs:
        frame, env, run_maps = load_run(run_dir)
        run_id = str(frame["run_id"].iloc[0]) if "run_id" in frame and frame["run_id"].notna().any() else Path(run_dir).name
        if run_id in envs:  # two runs with one name (same folder name in two places)
            run_id = f"{run_id}@{Path(run_dir).resolve().parent.name}"
        frames.append(frame.assign(run_id=run_id))
        envs[run_id] = env
        maps = maps or run_maps
    frame = pd.concat(frames, ignore_index=True)
    out = Path(out)
    (out / "tables").mkdir(parents=True, exist_ok=True)

    fits = fit_table(frame)
    tables = {
        "complexity_fits": fits,
        "crossovers": crossover_table(frame),
        "fastest_per_n": fastest_table(frame),
        "failures": failure_table(frame),
        "quality": quality_table(frame),
        "environment": _env_table(envs),
    }
    for name, table in tables.items():
        table.to_csv(out / "tables" / f"{name}.csv", index=False)
    ceilings = {(run, device): c for run, env in envs.items() for device, c in (env.get("ceilings") or {}).items()}
    figures = make_figures(frame, fits, ceilings, maps.get("non_causal", {}), out / "figures", baseline)

    headline = fits[
        ["config", "variant", "time_alpha", "time_ci_low", "time_ci_high", "declared_time", "time_agrees",
         "mem_beta", "declared_memory", "mem_agrees", "fit_n_lo", "fit_n_hi", "note"]
    ] if len(fits) else fits  # fmt: skip
    counts = frame["status"].value_counts().to_dict()
    runs = ", ".join(envs)
    summary = [
        f"# attnbench report: {runs}\n",
        f"{len(frame)} cases: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + "\n",
        "## Measurement quality\n",
        _markdown(tables["quality"]),
        "\n## Complexity fits (time ~ N^alpha, memory ~ N^beta)\n",
        _markdown(headline),
        "\n## Crossovers\n",
        _markdown(tables["crossovers"]),
        "\n## Failures\n",
        _markdown(tables["failures"]),
    ]
    (out / "summary.md").write_text("\n".join(summary))

    figure_html = "".join(
        f"<figure><img src='figures/{html.escape(path.name)}' alt='{html.escape(name)}'>"
        f"<figcaption>{html.escape(FIGURE_CAPTIONS[name])}</figcaption></figure>"
        for name, path in figures.items()
    )
    sections = [
        _quality_html(frame, tables["quality"], envs),
        _table_html(
            headline,
            "Complexity fits",
            "Log-log least squares over the largest points spanning >= 8x in N; "
            "95% intervals from resampling the raw timing samples. 'agrees': within 0.3 of the declared class.",
        ),
        _table_html(
            tables["crossovers"],
            "Crossovers",
            "The last N where one variant's curve crosses another's "
            "(interpolated in log space); 'ahead_beyond' is lower (faster, or smaller) past it.",
        ),
        f"<section><h2>Figures</h2>{figure_html}</section>",
        _table_html(tables["fastest_per_n"], "Fastest variant per N"),
        _table_html(tables["failures"], "Cases that did not finish ok"),
        _table_html(tables["environment"], "Environment and measured ceilings"),
        _table_html(fits, "All fit details (local slopes: dlog t / dlog N between neighbouring N)"),
    ]
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self'; style-src 'unsafe-inline'">
<title>attnbench report: {html.escape(runs)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ padding: 3px 8px; border-bottom: 1px solid #ddd; text-align: left; }}
.scroll {{ max-height: 32em; overflow: auto; }}
figure {{ margin: 1.5em 0; }} img {{ max-width: 100%; }}
figcaption, .note {{ color: #555; font-size: 14px; }}
</style></head><body>
<h1>attnbench report</h1>
<p>Runs: {html.escape(runs)}. {len(frame)} cases: {html.escape(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))}.
Generated {html.escape(time.strftime("%Y-%m-%d %H:%M:%S"))}.</p>
{"".join(sections)}
</body></html>
"""
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
