"""A disk that fills at any write of a run or its report, then is freed: one line, nothing finished lost, `--resume`
(or the report again) finishes.

The disk is real: a small tmpfs mounted for the test (root only; skipped elsewhere), filled by a file that
leaves ``free`` pages, so the first write past them fails with ENOSPC wherever in the run it falls.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from harness.run.results import load_results, read_jsonl

ROOT = Path(__file__).resolve().parent.parent
PAGE = 4096
TINY = ["--variants", "sdpa", "--seq-lens", "32,64", "--heads", "1", "--max-time", "0.01", "--rounds", "1"]
# Pages the tiny sweep's files take, in the order written: sweep.json 1, env.json 1, worker.log 1 and
# cases.jsonl 2 while cases run, then attention_maps.json ~74, results.parquet ~11, results.csv 1.
STAGES = {
    "sweep.json": (0, ("sweep.json",)),
    "env.json": (1, ("env.json",)),
    "cases": (2, ("cases.jsonl",)),
    "tables": (7, ("attention_maps.json", "results.parquet", "results.csv")),
    "last tables": (83, ("results.parquet", "results.csv")),
}


def attnbench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, free_pages: int) -> Path:
    """A file taking all of ``disk`` but ``free_pages`` pages."""
    filler = disk / "filler"
    stats = os.statvfs(disk)
    filler.write_bytes(b"\0" * ((stats.f_bavail - free_pages) * stats.f_frsize))
    assert os.statvfs(disk).f_bavail == free_pages
    return filler


# One stage in the default run (about 10 s): while cases run; the other four with -m slow (the report's own full
# disk, below, covers a write after the cases in the default run).
OPT_IN = [pytest.param(stage, marks=pytest.mark.slow) for stage in ("tables", "sweep.json", "env.json", "last tables")]


@pytest.mark.parametrize("stage", ["cases", *OPT_IN])
def test_a_disk_full_at_each_write_then_freed_loses_nothing_and_resume_finishes(small_disk, stage):
    free, files = STAGES[stage]
    out = small_disk / "run"
    filler = fill(small_disk, free)
    full = attnbench("sweep", *TINY, "--out", str(out))
    assert full.returncode == 1 and "Traceback" not in full.stderr, full.stderr
    errors = [line for line in full.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "No space left on device" in errors[0] and "--resume" in errors[0], full.stderr
    assert any(f"{out / name}:" in errors[0] for name in files), (stage, errors[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a torn last line
        kept = read_jsonl(out / "cases.jsonl")
    assert not [p.name for p in out.iterdir() if p.name.endswith(".partial")]  # no half-written file left behind
    filler.unlink()
    resumed = attnbench("sweep", *TINY, "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    records = read_jsonl(out / "cases.jsonl")
    rounds = [(r["case_id"], len(r["round_medians_s"])) for r in records]  # a disturbed round is taken again
    assert records[: len(kept)] == kept and len({case for case, _ in rounds}) == 2 and len(rounds) == len(set(rounds))
    assert load_results(out)["status"].isin(["ok", "contended"]).all()  # measured (a busy machine may contend)


def test_a_disk_full_while_writing_the_report_is_one_line_and_it_can_be_written_again(small_disk, tmp_path):
    run = tmp_path / "run"
    assert attnbench("sweep", *TINY, "--out", str(run)).returncode == 0
    filler = fill(small_disk, 4)  # room for a table or two, not for the figures
    full = attnbench("report", str(run), "--out", str(small_disk / "report"))
    errors = [line for line in full.stderr.splitlines() if "error:" in line]
    assert full.returncode == 1 and "Traceback" not in full.stderr, full.stderr
    assert len(errors) == 1 and "cannot write the report" in errors[0] and "No space left on device" in errors[0]
    filler.unlink()
    again = attnbench("report", str(run), "--out", str(small_disk / "report"))
    assert again.returncode == 0, again.stderr
    assert (small_disk / "report" / "figures" / "time_vs_n.png").stat().st_size > 1000
