"""Sweep progress on stderr: a live line on a terminal, one line per case otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from ..measure.case import Case


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return (
        f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else f"{seconds // 60}:{seconds % 60:02d}"
    )


class Progress:
    """Callable as ``progress(done, total, case, record)`` (see `harness.run.runner.run_sweep`)."""

    def __init__(self, stream: TextIO = sys.stderr, width: int = 24) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self.width = width
        self.started = time.monotonic()
        self.first_done: int | None = None

    def __call__(self, done: int, total: int, case: Case, record: dict | None) -> None:
        if self.first_done is None:
            self.first_done = done  # cases finished by an earlier, resumed run do not count for the ETA
        elapsed = time.monotonic() - self.started
        ran = done - self.first_done
        eta = _clock(elapsed / ran * (total - done)) if ran else "?"
        if self.live:
            filled = int(self.width * done / total)
            bar = "#" * filled + "-" * (self.width - filled)
            line = f"\r[{bar}] {done}/{total}  {_clock(elapsed)} elapsed, ETA {eta}  {case.label()}"
            self.stream.write(line[:160].ljust(160))
            if done == total and record is not None:
                self.stream.write("\n")
            flag = quality_flag(record) if record is not None else ""
            if flag:  # a flagged case keeps a line of its own above the live one
                self.stream.write(f"\r{case.label()}: {flag}".ljust(160)[:160] + "\n")
        elif record is not None:
            status = record["status"]
            detail = f"{record['time_median_s'] * 1e3:.3f} ms" if status == "ok" else record.get("reason", "")[:120]
            flag = quality_flag(record) if status == "ok" else ""
            detail += f" [{flag}]" if flag else ""
            self.stream.write(f"[{done}/{total}] {case.label()}: {status} {detail}  ({_clock(elapsed)}, ETA {eta})\n")
        self.stream.flush()


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
