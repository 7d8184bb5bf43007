"""What a sweep says while it runs and when it ends."""

from __future__ import annotations

import io
from pathlib import Path

from harness.measure.case import Case
from harness.run.progress import Progress, quality_flag, summary_lines
from harness.run.runner import RunSummary

CASE = Case("naive", 128, threads=1)
OK = {"status": "ok", "time_median_s": 2e-3, "time_iqr_s": 1e-4, "noisy": False}


def test_a_pipe_gets_one_line_per_finished_case_with_time_and_eta():
    stream = io.StringIO()  # not a terminal: no live bar
    progress = Progress(stream)
    progress(0, 2, CASE, None)
    assert stream.getvalue() == ""  # nothing before a case finishes
    progress(1, 2, CASE, OK)
    progress(2, 2, CASE, {"status": "oom", "reason": "RuntimeError: out of memory"})
    first, second = stream.getvalue().splitlines()
    assert first.startswith("[1/2] naive N=128 cpu float32 fwd: ok 2.000 ms  (0:00, ETA 0:00)")
    assert second.startswith("[2/2] naive N=128 cpu float32 fwd: oom RuntimeError: out of memory")


def test_noisy_and_contended_cases_are_flagged_and_clean_ones_are_not():
    assert quality_flag(OK) == ""
    assert quality_flag({**OK, "noisy": True, "time_iqr_s": 2.8e-4}) == "noisy: IQR/median 14%"
    assert quality_flag({"status": "contended", "reason": "contended: 9 of 9 blocks preempted"}).startswith("contended: 9")
    stream = io.StringIO()
    progress = Progress(stream)
    progress(0, 1, CASE, None)
    progress(1, 1, CASE, {**OK, "noisy": True, "time_iqr_s": 2.8e-4})
    assert stream.getvalue().rstrip().endswith("[noisy: IQR/median 14%]  (0:00, ETA 0:00)")


def test_the_end_summary_counts_statuses_quality_and_timed_share():
    summary = RunSummary(run_dir=Path("r"), counts={"ok": 3, "contended": 1}, noisy=2, total=4, resumed=1, wall_s=10.0,
                         timed_s=2.5, busy="threads waited 30% on run queues", paths=[Path("r/cases.jsonl")])  # fmt: skip
    assert summary_lines(summary) == [
        "4 cases (1 contended, 3 ok); 1 were already recorded",
        "measurement quality: 1 contended (the machine kept preempting them; not timed), 2 noisy (IQR/median over 10%); "
        "before the sweep: threads waited 30% on run queues",
        "wall time 10.0 s, of which 2.5 s (25%) inside timed calls",
        "wrote r/cases.jsonl",
    ]
    clean = RunSummary(run_dir=Path("r"), counts={"ok": 4}, noisy=0, total=4, resumed=0, wall_s=1.0, timed_s=0.5)
    assert not any(line.startswith("measurement quality") for line in summary_lines(clean))


def test_on_a_terminal_a_rich_bar_with_flagged_cases_above_it():
    stream = io.StringIO()
    progress = Progress(stream, live=True)  # drawn as on a terminal
    progress(0, 3, CASE, None)
    progress(1, 3, CASE, OK)
    progress(2, 3, CASE, {**OK, "noisy": True, "time_iqr_s": 2.8e-4})
    assert progress.bar is not None  # still live: one case to go
    progress(3, 3, CASE, OK)
    assert progress.bar is None  # the last case stopped it
    shown = stream.getvalue()
    assert "naive N=128 cpu float32 fwd: noisy: IQR/median 14%" in shown
    assert "3/3" in shown and "ETA 0:00" in shown and "\x1b[" in shown  # rich's terminal drawing
    progress.close()  # idempotent
