"""Numbers a user can trust on a busy machine: interference is detected, garbage is never `ok`.

The busy machine is real: the tests start their own bounded busy loops
(`tests/load.py`) and always stop them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from load import cpu_hogs

from harness.cli import main
from harness.measure.interference import SchedulerProbe, quiet_check
from harness.measure.sampling import CAP_SAMPLES, stop_rule
from harness.measure.threads import thread_count
from harness.measure.timing import time_cpu
from harness.report.build import build_report
from harness.run.progress import quality_flag

ROOT = Path(__file__).resolve().parent.parent
GARBAGE = str(Path(__file__).resolve().parent / "plugins" / "garbage.py")


def attnbench(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, timeout=600, env=env, cwd=ROOT
    )


def test_stop_rule_calls_a_measurement_contended_only_when_its_blocks_waited():
    few = [1.0e-3] * (CAP_SAMPLES - 2)
    assert stop_rule(few, elapsed=2.0, max_time_s=1.0, max_samples=1000, waited=0) is None  # no wait: sample on
    assert stop_rule(few, elapsed=2.0, max_time_s=1.0, max_samples=1000, waited=40) == "contended"
    assert stop_rule([], elapsed=1.0, max_time_s=1.0, max_samples=1000, waited=30) == "contended"
    assert stop_rule([], elapsed=1.0, max_time_s=1.0, max_samples=1000, waited=3) is None  # too few tries to judge
    # a transient: most blocks clean, so the cap stretches (up to twice) for the rest
    assert stop_rule(few, elapsed=1.2, max_time_s=1.0, max_samples=1000, waited=1) is None
    assert stop_rule(few, elapsed=2.0, max_time_s=1.0, max_samples=1000, waited=7) == "contended"  # grace spent
    spread = [1e-3, 1.2e-3, 0.9e-3, 1.5e-3, 0.7e-3, 1.1e-3]
    assert stop_rule(spread, elapsed=1.0, max_time_s=1.0, max_samples=1000, waited=50) == "time cap"
    assert stop_rule([1e-3] * 6, elapsed=0.2, max_time_s=1.0, max_samples=1000, waited=50) == "stable"


def test_scheduler_probe_counts_cpu_time_of_this_process():
    with SchedulerProbe() as probe:
        cpu0, _ = probe.read()
        a = torch.randn(256, 256)
        for _ in range(200):
            a @ a
        cpu1, _ = probe.read()
    assert cpu1 > cpu0


def test_preempted_blocks_are_discarded_under_a_cpu_hog():
    a = torch.randn(384, 384)
    with thread_count(2), cpu_hogs(seconds=60):
        m = time_cpu(lambda: a @ a, max_time_s=0.5, threads=2)
    i = m.interference
    assert i.discarded > 0 and len(m.rejected) == i.discarded
    assert i.wait_ratio > 0.05, i
    if m.contended:
        assert m.warnings and "blocks preempted" in m.warnings[0] and "run-queue wait" in m.warnings[0]


def test_quiet_check_names_a_busy_machine():
    with cpu_hogs(seconds=60):
        busy = quiet_check(2, seconds=0.5)
    assert busy["busy"] and "run queue" in busy["busy"], busy


SWEEP = [
    "sweep",
    "--variants",
    "naive,sdpa",
    "--seq-lens",
    "256,512",
    "--heads",
    "4",
    "--threads",
    "2",
    "--max-time",
    "0.3",
    "--rounds",
    "1",
]  # one round (and the extra ones a disturbed round earns): contention within a round is the subject


def test_sweep_under_a_cpu_hog_is_never_silently_inflated(tmp_path):
    quiet = attnbench(*SWEEP, "--out", str(tmp_path / "quiet"))
    assert quiet.returncode == 0, quiet.stderr
    with cpu_hogs(seconds=300):
        strict = attnbench(*SWEEP, "--strict", "--out", str(tmp_path / "strict"))
        busy = attnbench(*SWEEP, "--out", str(tmp_path / "busy"))
    assert strict.returncode == 2 and "busy" in strict.stderr and "Traceback" not in strict.stderr
    assert not (tmp_path / "strict").exists(), "a refused sweep writes nothing"
    assert busy.returncode == 0, busy.stderr
    assert "the machine is busy" in busy.stderr
    # A second quiet run after the load: this VM's own speed drifts over minutes, so the quiet
    # reference is the slower of the two runs that bracket the busy one.
    after = attnbench(*SWEEP, "--out", str(tmp_path / "after"))
    assert after.returncode == 0, after.stderr

    quiet_runs = [pd.read_parquet(tmp_path / name / "results.parquet").set_index("case_id") for name in ("quiet", "after")]
    for calm in quiet_runs:
        assert (calm["status"] == "ok").all(), calm[["variant", "seq_len", "status", "reason"]]
    reference = pd.concat([calm["time_median_s"] for calm in quiet_runs], axis=1).max(axis=1)
    loud = pd.read_parquet(tmp_path / "busy" / "results.parquet").set_index("case_id")
    ok = loud[loud["status"] == "ok"]
    ratio = ok["time_median_s"] / reference.loc[ok.index]
    assert (ratio <= 1.5).all(), pd.concat([ok[["variant", "seq_len"]], ratio.rename("busy/quiet")], axis=1)
    contended = loud[loud["status"] == "contended"]
    assert len(contended) + len(ok) == len(loud), loud[["variant", "seq_len", "status", "reason"]].to_string()
    assert contended["reason"].str.contains("blocks preempted|every round disturbed").all(), contended["reason"]
    # nor ever deflated: a contended row's time is as measured, never scaled by a canary that timed preemption
    faster = loud["time_median_s"] / reference.loc[loud.index]
    assert (faster >= 1 / 1.5).all(), pd.concat([loud[["variant", "seq_len", "status"]], faster.rename("busy/quiet")], axis=1)
    assert (loud["runqueue_wait_ratio"] > 0.05).any()
    if len(contended):
        assert "measurement quality:" in busy.stdout and f"{len(contended)} contended" in busy.stdout
        report = build_report([tmp_path / "busy"], tmp_path / "report")
        page = report.read_text()
        assert 'id="quality"' in page and "contended" in page and "run queue" in page
        fits_csv = pd.read_csv(tmp_path / "report" / "tables" / "quality.csv")
        assert (fits_csv["status"] == "contended").sum() == len(contended)


def test_nan_and_input_modifying_variants_are_errors_and_the_rest_ok(tmp_path):
    out = tmp_path / "run"
    result = attnbench("sweep", "--plugin", GARBAGE, "--variants", "test-nan,test-inplace,sdpa", "--seq-lens", "64",
                       "--heads", "2", "--max-time", "0.05", "--rounds", "1", "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = pd.read_parquet(out / "results.parquet").set_index("variant")
    assert rows.loc["test-nan", "status"] == "error"
    assert "non-finite output (128 of 8192 elements)" in rows.loc["test-nan", "reason"]  # one row of 64 x 2 heads
    assert rows.loc["test-inplace", "status"] == "error"
    assert "modified its input q" in rows.loc["test-inplace", "reason"]
    assert rows.loc["sdpa", "status"] == "ok" and rows.loc["sdpa", "rel_err"] < 1e-5


CHEATS = str(Path(__file__).resolve().parent / "plugins" / "cheats.py")


def test_variants_that_cheat_the_timer_are_errors_that_say_how_and_are_never_the_fastest(tmp_path):
    out = tmp_path / "run"
    names = "cheat-memo-id,cheat-memo-ptr,cheat-stale,cheat-timed-garbage,cheat-alias,sdpa,naive"
    result = attnbench("sweep", "--plugin", CHEATS, "--variants", names, "--seq-lens", "64,128", "--heads", "2",
                       "--max-time", "0.05", "--rounds", "1", "--out", str(out), "--report")  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = pd.read_parquet(out / "results.parquet")
    reasons = {v: set(g["reason"]) for v, g in rows.groupby("variant")}
    assert (rows.set_index("variant").loc[["sdpa", "naive"], "status"] == "ok").all()
    assert (rows[rows["variant"].str.startswith("cheat-")]["status"] == "error").all(), rows[["variant", "reason"]]
    for name in ("cheat-memo-id", "cheat-memo-ptr", "cheat-stale"):
        assert all("did not follow its inputs" in reason for reason in reasons[name]), reasons[name]
    assert all("the output of the last timed call differs" in r for r in reasons["cheat-timed-garbage"])
    assert all("returned (a view of) its input q" in r for r in reasons["cheat-alias"])
    from harness.analyze.findings import fastest_ranges

    assert set(fastest_ranges(rows)["fastest"]) <= {"sdpa", "naive", "naive ≈ sdpa"}
    report = Path(ROOT) / "report" / "run" / "index.html"
    assert not report.exists() or "cheat-" not in report.read_text().split("Fastest exact")[1].split("</table>")[0]


def test_quality_flags_reach_the_progress_line():
    assert quality_flag({"status": "ok", "noisy": True, "time_iqr_s": 0.14, "time_median_s": 1.0}) == "noisy: IQR/median 14%"
    assert quality_flag({"status": "contended", "reason": "contended: 9 of 9 blocks preempted"}).startswith("contended")
    assert quality_flag({"status": "ok", "noisy": False, "time_iqr_s": 0.01, "time_median_s": 1.0}) == ""


@pytest.mark.parametrize("scale", ["1e308", "inf", "nan", "-1", "1e5"])
def test_input_scales_beyond_reason_are_refused_before_running(tmp_path, capsys, scale):
    out = tmp_path / "run"
    code = main(["sweep", "--variants", "sdpa", "--seq-lens", "32", f"--input-scale={scale}", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "--input-scale" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_env_records_the_quiet_check(tmp_path):
    out = tmp_path / "run"
    result = attnbench("sweep", "--variants", "sdpa", "--seq-lens", "32", "--max-time", "0.05", "--out", str(out))
    assert result.returncode == 0, result.stderr
    env = json.loads((out / "env.json").read_text())
    assert set(env["quiet_check"]) >= {"busy", "wait_ratio", "load_avg", "steal", "spread"}
    frame = pd.read_parquet(out / "results.parquet")
    assert frame["runqueue_wait_ratio"].notna().all() and frame["cpu_utilization"].notna().all()
