"""The runner against killed sweeps and misbehaving workers, through the real command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from harness.measure.record import COLUMNS
from harness.run.results import load_results, read_jsonl
from harness.run.sweep import build_sweep, expand

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = str(Path(__file__).resolve().parent / "plugins" / "misbehaving.py")


@pytest.fixture(scope="session")
def cli_env(tmp_path_factory):
    """Environment for attnbench subprocesses: a session-wide ceilings cache, so calibration runs once."""
    env = dict(os.environ)
    env["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    env["PYTHONPATH"] = str(ROOT)
    return env


def attnbench(args, env, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, env=env, timeout=600, **kwargs
    )


SMALL = ["--variants", "naive,sdpa,chunked-query", "--seq-lens", "32:256:x2", "--heads", "2", "--max-time", "0.05"]


def test_a_sweep_killed_between_rounds_resumes_losing_and_repeating_no_round(tmp_path, cli_env):
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "sweep", *SMALL, "--out", str(killed)],
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    jsonl = killed / "cases.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # past the first pass (12 cases), into the second round
        if jsonl.exists() and len(jsonl.read_text().splitlines()) >= 15:
            break
        if proc.poll() is not None:
            pytest.fail("the sweep finished before it could be killed")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = read_jsonl(jsonl)
    assert 15 <= len(partial) < 36 and len({r["case_id"] for r in partial}) == 12
    assert not (killed / "results.parquet").exists()

    resumed = attnbench(["sweep", *SMALL, "--out", str(killed), "--resume"], cli_env)
    assert resumed.returncode == 0, resumed.stderr
    assert "12 were already recorded" in resumed.stdout
    records = read_jsonl(jsonl)
    assert records[: len(partial)] == partial, "nothing recorded is lost or rewritten"
    rounds: dict[str, list[int]] = {}
    for r in records:
        rounds.setdefault(r["case_id"], []).append(len(r["round_medians_s"]))
    for case_id, counts in rounds.items():  # each line one more round than the last: none lost, none twice
        assert counts == list(range(1, len(counts) + 1)) and len(counts) >= 3, (case_id, counts)

    # The finished table holds exactly the grid's cases, as an uninterrupted sweep's would, all measured in rounds.
    grid = expand(build_sweep(variants=("naive", "sdpa", "chunked-query"), seq_lens=(32, 64, 128, 256), heads=(2,)))
    table = load_results(killed)
    assert sorted(table["case_id"]) == sorted(case.case_id for case in grid)
    assert list(table.columns[: len(COLUMNS)]) == COLUMNS and table["status"].isin(["ok", "contended"]).all()  # measured
    assert (table["rounds"] >= 2).all() and (table["time_ci_low_s"] < table["time_ci_high_s"]).all()
    assert (table["canary_ref_s"] > 0).all()


def test_torn_last_line_is_skipped_with_a_warning_and_rerun(tmp_path, cli_env):
    out = tmp_path / "torn"
    args = ["sweep", "--variants", "sdpa", "--seq-lens", "32,64", "--heads", "1", "--max-time", "0.05", "--rounds", "1",
            "--out", str(out)]  # fmt: skip
    assert attnbench(args, cli_env).returncode == 0
    jsonl = out / "cases.jsonl"
    lines = jsonl.read_text().splitlines(keepends=True)
    jsonl.write_text(lines[0] + lines[1][: len(lines[1]) // 2])  # the kill landed mid-write
    with pytest.warns(UserWarning, match="torn last line"):
        assert len(read_jsonl(jsonl)) == 1
    resumed = attnbench(args + ["--resume"], cli_env)
    assert resumed.returncode == 0, resumed.stderr
    assert "torn last line" in resumed.stderr
    records = read_jsonl(jsonl)
    assert len(records) == 2 and len({r["case_id"] for r in records}) == 2


def test_crash_timeout_and_oom_are_rows_and_the_sweep_goes_on(tmp_path, cli_env):
    out = tmp_path / "bad"
    result = attnbench(
        [
            "sweep", "--plugin", PLUGIN, "--variants", "test-segfault,test-sleeper,test-hog,sdpa",
            "--seq-lens", "32,64", "--heads", "1", "--max-time", "0.05", "--timeout", "5", "--rounds", "1", "--out", str(out),
        ],
        cli_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    frame = load_results(out).set_index(["variant", "seq_len"])
    assert frame.loc[("test-segfault", 32), "status"] == "crash"
    assert "SIGSEGV" in frame.loc[("test-segfault", 32), "reason"]
    assert frame.loc[("test-sleeper", 32), "status"] == "timeout"
    assert frame.loc[("test-hog", 32), "status"] in ("oom", "skipped")
    # After a failure the same configuration is not run again at a larger N.
    for name in ("test-segfault", "test-sleeper", "test-hog"):
        assert frame.loc[(name, 64), "status"] == "skipped"
        assert "at N=32" in frame.loc[(name, 64), "reason"]
    assert (frame.loc["sdpa", "status"] == "ok").all()
    log = (out / "worker.log").read_text()
    assert "Fatal Python error: Segmentation fault" in log


def test_a_sweep_in_which_every_case_crashed_exits_non_zero_and_keeps_its_rows(tmp_path, cli_env):
    out = tmp_path / "crashed"
    args = ["sweep", "--plugin", PLUGIN, "--variants", "test-segfault", "--seq-lens", "32", "--heads", "1", "--rounds", "1",
            "--max-time", "0.05", "--out", str(out)]  # fmt: skip
    result = attnbench(args, cli_env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("attnbench sweep: error: no case could be measured (1 crash)")
    assert load_results(out)["status"].tolist() == ["crash"]


def test_trimmed_quick_preset_end_to_end(tmp_path, cli_env):
    out = tmp_path / "quick"
    result = attnbench(
        ["sweep", "--preset", "quick", "--seq-lens", "64,128", "--variants", "naive,sdpa,linear-elu,performer-64",
         "--max-time", "0.05", "--rounds", "2", "--out", str(out)],  # two rounds: rounds at work, at two thirds the cost
        cli_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "8 cases (8 ok)" in result.stdout
    assert f"next: attnbench report {out}" in result.stdout
    # The results in the terminal: one table, a row per variant, a column per N, the fastest of each column marked.
    table = result.stdout.split("cases (")[0]
    assert "N=64" in table and "N=128" in table and table.count("★") == 3  # one per column, one in the legend
    assert all(f"│ {name} " in table for name in ("naive", "sdpa", "linear-elu", "performer-64"))
    shown = attnbench(["show", str(out)], cli_env)
    assert shown.returncode == 0 and shown.stdout.strip() and result.stdout.startswith(shown.stdout)
    frame = pd.read_parquet(out / "results.parquet")
    csv = pd.read_csv(out / "results.csv")
    assert len(frame) == len(csv) == 8
    assert frame["run_id"].unique().tolist() == ["quick"]
    assert (frame["time_median_s"] > 0).all() and (frame["peak_mem_bytes"] > 0).all()
    assert frame.loc[frame["exact"], "rel_err"].max() < 1e-5
    for row in frame.itertuples():  # every sample is kept; the statistics use the calm rounds' (all if none was)
        assert sum(row.round_samples) == len(row.time_samples_s)
        calm = [n for n, bad in zip(row.round_samples, row.round_disturbed) if not bad]
        assert row.n_samples == sum(calm or row.round_samples)
    env = json.loads((out / "env.json").read_text())
    assert env["torch"] and env["ceilings"]["cpu"]["matmul_gflops"]["float32"] > 0
    assert env["worker_env"]["MALLOC_MMAP_MAX_"] == "0" and env["worker_env"]["OMP_NUM_THREADS"]
    assert (frame["allocator"] == "pinned").all()


def test_the_system_allocator_is_a_setting_recorded_on_every_row(tmp_path, cli_env):
    out = tmp_path / "system"
    args = ["sweep", "--variants", "sdpa", "--seq-lens", "32", "--heads", "1", "--max-time", "0.05", "--out", str(out)]
    result = attnbench([*args, "--allocator", "system"], {**cli_env, "MALLOC_MMAP_MAX_": "0"})  # the shell's is dropped
    assert result.returncode == 0, result.stderr
    row = load_results(out).iloc[0]
    # Read in the worker itself: its malloc was never pinned, and the case id says which allocator it ran under.
    assert row["status"] == "ok" and row["allocator"] == "system"
    assert not any("allocator" in w for w in row["warnings"])  # no mismatch (a noise warning may come and go)
    env = json.loads((out / "env.json").read_text())
    assert env["sweep"]["allocator"] == "system" and not any(k.startswith("MALLOC") for k in env["worker_env"])
    assert "--allocator system" in result.stdout  # the console says how these times were taken
    refused = attnbench([*args, "--resume"], cli_env)
    assert refused.returncode == 2 and "--allocator 'system' -> 'pinned'" in refused.stderr
    bad = attnbench([*args[:-1], str(tmp_path / "bad"), "--allocator", "jemalloc"], cli_env)
    assert bad.returncode == 2 and "unknown allocator 'jemalloc'; known: pinned, system" in bad.stderr
