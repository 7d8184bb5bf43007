"""Sweep progress on stderr: a live rich progress bar on a terminal, one plain line per case otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress

from ..measure.case import Case


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return (
        f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else f"{seconds // 60}:{seconds % 60:02d}"
    )


class Progress:
    """Callable as ``progress(done, total, case, record)`` (see `harness.run.runner.run_sweep`).

    On a terminal (or with ``live=True``) a rich progress bar: done/total,
    elapsed, ETA and the case being timed, with a flagged case (noisy,
    contended) printed above it as it finishes. Otherwise one plain line per
    finished case. The ETA extrapolates the cases this process ran, not those
    a resumed sweep found recorded. `close` ends the live display (the runner
    calls it however the sweep ends).
    """

    def __init__(self, stream: TextIO = sys.stderr, *, live: bool | None = None) -> None:
        self.stream = stream
        self.live = stream.isatty() if live is None else live
        self.started = time.monotonic()
        self.first_done: int | None = None
        self.bar: RichProgress | None = None
        self.task: TaskID | None = None

    def __call__(self, done: int, total: int, case: Case, record: dict | None) -> None:
        if self.first_done is None:
            self.first_done = done  # cases finished by an earlier, resumed run do not count for the ETA
        elapsed = time.monotonic() - self.started
        ran = done - self.first_done
        eta = _clock(elapsed / ran * (total - done)) if ran else "?"
        if self.live:
            self._draw(done, total, case, record, eta)
        elif record is not None:
            status = record["status"]
            detail = f"{record['time_median_s'] * 1e3:.3f} ms" if status == "ok" else record.get("reason", "")[:120]
            flag = quality_flag(record) if status == "ok" else ""
            detail += f" [{flag}]" if flag else ""
            self.stream.write(f"[{done}/{total}] {case.label()}: {status} {detail}  ({_clock(elapsed)}, ETA {eta})\n")
            self.stream.flush()

    def _draw(self, done: int, total: int, case: Case, record: dict | None, eta: str) -> None:
        if self.bar is None:
            console = Console(file=self.stream, force_terminal=self.live, width=None if self.stream.isatty() else 120)
            self.bar = RichProgress(
                BarColumn(bar_width=24), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}"),
                TextColumn("{task.description}"), console=console, refresh_per_second=4,
            )  # fmt: skip
            self.task = self.bar.add_task(case.label(), total=total, completed=done, eta=eta)
            self.bar.start()
        flag = quality_flag(record) if record is not None else ""
        if flag:  # a flagged case keeps a line of its own above the live one
            self.bar.console.print(f"{case.label()}: {flag}", style="yellow", markup=False, highlight=False)
        self.bar.update(self.task, completed=done, description=case.label(), eta=eta)
        if done == total and record is not None:
            self.close()

    def close(self) -> None:
        """End the live display (idempotent); plain-line output needs nothing."""
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def quality_flag(record: dict) -> str:
    """'contended: ...' or 'noisy: IQR/median 14%' for a record whose time is not to be taken at face value."""
    if record.get("status") == "contended":
        return record.get("reason", "contended")[:140]
    if record.get("status") == "ok" and record.get("noisy"):
        ratio = record["time_iqr_s"] / record["time_median_s"] if record.get("time_median_s") else float("nan")
        return f"noisy: IQR/median {ratio:.0%}"
    return ""


def summary_lines(summary) -> list[str]:
    """What a finished sweep says (a `harness.run.runner.RunSummary`): counts, quality, time, files."""
    counts = ", ".join(f"{n} {status}" for status, n in sorted(summary.counts.items()))
    fraction = summary.timed_s / summary.wall_s if summary.wall_s else 0.0
    lines = [f"{summary.total} cases ({counts}); {summary.resumed} were already recorded"]
    contended = summary.counts.get("contended", 0)
    if contended or summary.noisy:
        lines.append(
            f"measurement quality: {contended} contended (the machine kept preempting them; not timed), "
            f"{summary.noisy} noisy (IQR/median over 10%)" + (f"; before the sweep: {summary.busy}" if summary.busy else "")
        )
    lines.append(f"wall time {summary.wall_s:.1f} s, of which {summary.timed_s:.1f} s ({fraction:.0%}) inside timed calls")
    lines += [f"wrote {path}" for path in summary.paths]
    return lines
