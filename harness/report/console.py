"""A run's results in the terminal: variants x N, one table per configuration (``attnbench show``).

Like ``torch.utils.benchmark.Compare``: each cell is the median time with its
noise (IQR over median) and, beneath, the peak memory; the fastest measured
cell of each column is marked, noisy and contended cells are flagged, and a
case that did not run says why in a word. A launch-bound cell (`harness.analyze.launch`: the GPU waited on the
host's launches) is marked ‡ and never starred: its time is the host's, not the kernel's. A variant that could not run any
case of a table (xformers on a CPU) is one line under it, not a row of dashes.
Drawn with ``rich``; without a terminal the same tables print as plain text.
"""

from __future__ import annotations

import math

import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..analyze.launch import launch_bound
from ..analyze.tables import with_config
from ..measure.record import MEASURED
from ..run.compile_modes import by_compile_mode

SHORT = {"unsupported": "n/a", "skipped": "skip", "oom": "oom", "timeout": "timeout", "crash": "crash", "error": "error"}
LEGEND = (
    "★ fastest in its column · ~ noisy (IQR/median > 10%) · ! contended (preempted past repair: no timing) · "
    "±: half the 95% interval across rounds · ‡ launch-bound (the host's launch rate, not the kernel; never the fastest)"
)


def seconds_text(value: float) -> str:
    """3 significant digits in s, ms or µs."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if value >= scale or unit == "µs":
            return f"{value / scale:.3g} {unit}"
    return ""  # unreachable


def bytes_text(value: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.0f} B"


def _cell(row: pd.Series, fastest: bool, host_bound: bool = False) -> Text:
    status = row["status"]
    if status == "contended":  # the machine preempted every block: there is no timing to show
        return Text("contended !", style="bold red")
    if status not in MEASURED or not _number(row.get("time_median_s")):
        return Text(SHORT.get(status, status), style="dim" if status in ("unsupported", "skipped") else "red")
    median = row["time_median_s"]
    noise = _half_width(row, median)
    text = Text(seconds_text(median), style="bold green" if fastest else "")
    if not math.isnan(noise):
        text.append(f" ±{noise:.0%}", style="dim")
    if row.get("noisy"):
        text.append(" ~", style="yellow")
    if host_bound:
        text.append(" ‡", style="magenta")
    if fastest:
        text.append(" ★", style="bold green")
    if _number(row.get("peak_mem_bytes")):
        text.append("\n" + bytes_text(row["peak_mem_bytes"]), style="dim")
    return text


def _half_width(row: pd.Series, median: float) -> float:
    """Half the row's 95 % interval across rounds over its time; a run from before rounds: IQR/median."""
    low, high = row.get("time_ci_low_s"), row.get("time_ci_high_s")
    if _number(low) and _number(high) and median > 0:
        return (high - low) / 2 / median
    return row["time_iqr_s"] / median if _number(row.get("time_iqr_s")) and median > 0 else math.nan


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value))


def results_tables(frame: pd.DataFrame) -> list[tuple[Table, list[str]]]:
    """One (table, lines under it) per configuration: the variants that ran as rows, N as columns."""
    out = []
    labelled = with_config(by_compile_mode(frame))  # a tuned flex is a row of its own, as loaded
    for config, group in labelled.groupby("config", sort=True):
        seq_lens = sorted(group["seq_len"].unique())
        table = Table(title=str(config), title_justify="left", show_lines=False, header_style="bold")
        table.add_column("variant", no_wrap=True)
        for n in seq_lens:
            table.add_column(f"N={n}", justify="right", no_wrap=True)
        host_bound = set(group.loc[launch_bound(group), "case_id"])
        timed = group[(group["status"] == "ok") & ~group["case_id"].isin(host_bound)]  # a launch-bound time never wins
        best = timed.loc[timed.groupby("seq_len")["time_median_s"].idxmin()] if len(timed) else timed
        best_ids = set(best["case_id"])
        notes = []
        for variant, rows in group.groupby("variant", sort=True):
            if (rows["status"] == "unsupported").all():
                notes.append(f"{variant}: not run here: {rows['reason'].iloc[0]}")
                continue
            by_n = {row["seq_len"]: row for _, row in rows.iterrows()}
            cells = [_cell(by_n[n], by_n[n]["case_id"] in best_ids, by_n[n]["case_id"] in host_bound) if n in by_n
                     else Text("") for n in seq_lens]  # fmt: skip
            table.add_row(variant, *cells)
        out.append((table, notes))
    return out


def print_results(frame: pd.DataFrame, console: Console | None = None) -> None:
    """Print every configuration's table, the variants that could not run, and the legend."""
    console = console or Console(width=None if Console().is_terminal else 200)
    for table, notes in results_tables(frame):
        console.print(table)
        for note in notes:
            console.print(Text(note[:200], style="dim"), soft_wrap=True)
    console.print(Text(LEGEND, style="dim"))
    line = allocator_line(frame)
    if line:
        console.print(Text(line, style="dim"), soft_wrap=True)


def allocator_line(frame: pd.DataFrame) -> str:
    """How the CPU times were taken with respect to malloc: why they may differ from a plain Python session's."""
    cpu = frame[(frame["device"] == "cpu") & frame["status"].isin(MEASURED)]
    allocators = set(cpu["allocator"].dropna()) if "allocator" in cpu else set()
    if allocators == {"system"}:
        return "CPU times with --allocator system: glibc's default malloc, as a plain Python process has it."
    if "pinned" in allocators:
        return ("CPU times with malloc pinned to the heap (a caching allocator's steady state): a plain Python "
                "session can time the same call up to ~2x slower; --allocator system measures that instead.")  # fmt: skip
    return ""
