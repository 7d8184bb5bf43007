"""Run-to-run comparison, export to pytest-benchmark JSON, and the benchmark suite's collection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pytest_benchmark.storage.file import FileStorage

from harness.analyze.compare import compare_runs
from harness.measure.stats import summarize
from harness.run.results import load_results, to_frame

ROOT = Path(__file__).resolve().parent.parent


def record(case_id: str, variant: str, median: float, spread: float, *, seed: int = 0) -> dict:
    """An ok record whose 21 raw samples spread evenly, ±spread around the given median."""
    rng = np.random.default_rng(seed)
    samples = list(rng.permutation(median * (1 + spread * np.linspace(-1, 1, 21))))
    s = summarize(samples)
    return {
        "run_id": "r", "case_id": case_id, "variant": variant, "family": "t", "exact": True, "device": "cpu",
        "device_name": "cpu", "dtype": "float32", "mode": "fwd", "causal": False, "batch": 1, "heads": 8,
        "seq_len": 1024, "head_dim": 64, "threads": 2, "input_scale": 1.0, "seed": 0, "params": "{}",
        "status": "ok", "reason": "", "time_median_s": s.median, "time_iqr_s": s.iqr, "time_p20_s": s.p20,
        "time_p80_s": s.p80, "time_min_s": s.min, "time_mean_s": s.mean, "n_samples": s.n, "block_size": 1,
        "noisy": s.noisy, "time_samples_s": samples, "peak_mem_bytes": 1000, "flops": 1e9,
        "gflops_per_s": 1e9 / s.median / 1e9, "rel_err": 1e-7,
    }  # fmt: skip


def write_run(path: Path, records: list[dict]) -> Path:
    path.mkdir(parents=True)
    to_frame(records).to_parquet(path / "results.parquet", index=False)
    (path / "env.json").write_text(json.dumps({"python": "3.11", "cpu": "test cpu", "git_commit": "abc123-dirty"}))
    return path


@pytest.fixture
def two_runs(tmp_path):
    base = [
        record("slow-quiet", "a", 1.0e-3, 0.01),
        record("slow-noisy", "b", 1.0e-3, 0.60),
        record("faster", "c", 1.0e-3, 0.01),
        record("same", "d", 1.0e-3, 0.01),
        record("missing", "e", 1.0e-3, 0.01),
    ]
    new = [
        record("slow-quiet", "a", 1.3e-3, 0.01, seed=1),  # 30% slower, IQR ~1%: a regression
        record("slow-noisy", "b", 1.3e-3, 0.60, seed=1),  # 30% slower inside a ~60% IQR: noise
        record("faster", "c", 0.6e-3, 0.01, seed=1),
        record("same", "d", 1.02e-3, 0.01, seed=1),
    ]
    return write_run(tmp_path / "base", base), write_run(tmp_path / "new", new)


def test_compare_verdicts(two_runs):
    base, new = (load_results(p) for p in two_runs)
    table = compare_runs(base, new, threshold=0.10).set_index("case_id")
    assert table.loc["slow-quiet", "verdict"] == "regression"
    assert table.loc["slow-quiet", "ratio"] == pytest.approx(1.3)
    assert table.loc["slow-noisy", "verdict"] == "within noise"
    assert table.loc["faster", "verdict"] == "improvement"
    assert table.loc["same", "verdict"] == "unchanged"
    assert table.loc["missing", "verdict"] == "only in base"
    memory = compare_runs(base, new, metric="memory").set_index("case_id")
    assert memory.loc["slow-quiet", "verdict"] == "unchanged"


def in_rounds(case_id: str, medians: list[float], canaries: list[float], ref: float) -> dict:
    """An ok record measured in rounds, summarized as a run would (against a quiet machine's pooled spread)."""
    from harness.measure.rounds import Machine, summarize_rounds

    row = record(case_id, "a", medians[0], 0.01)
    row.update(threads=2, round_medians_s=medians, round_canary_s=canaries, round_contended=[False] * len(medians),
               round_samples=[21] + [0] * (len(medians) - 1))  # fmt: skip
    return summarize_rounds(row, Machine({("cpu", 2): ref}, log_var=0.02**2, dof=40))


def test_compare_reads_both_runs_at_one_machine_speed_and_tests_the_change(tmp_path):
    # The same code on a machine 20 % slower all through the new run: the canary says so.
    base = [in_rounds("same-code", [1.00e-3, 1.01e-3, 0.99e-3], [100e-6] * 3, 100e-6),
            in_rounds("slower-code", [1.00e-3, 1.01e-3, 0.99e-3], [100e-6] * 3, 100e-6)]  # fmt: skip
    new = [in_rounds("same-code", [1.20e-3, 1.21e-3, 1.19e-3], [120e-6] * 3, 120e-6),
           in_rounds("slower-code", [1.56e-3, 1.57e-3, 1.55e-3], [120e-6] * 3, 120e-6)]  # fmt: skip
    base_run, new_run = write_run(tmp_path / "b", base), write_run(tmp_path / "n", new)
    table = compare_runs(load_results(base_run), load_results(new_run)).set_index("case_id")
    assert table.loc["same-code", "verdict"] == "unchanged"
    assert table.loc["same-code", "ratio"] == pytest.approx(1.0, rel=1e-3)
    assert table.loc["same-code", "speed"] == pytest.approx(1.2)
    assert table.loc["slower-code", "verdict"] == "regression"
    assert table.loc["slower-code", "ratio"] == pytest.approx(1.3, rel=1e-3)
    assert 1.1 < table.loc["slower-code", "ratio_low"] < 1.3 < table.loc["slower-code", "ratio_high"] < 1.5
    raw = compare_runs(load_results(base_run), load_results(new_run), adjusted=False).set_index("case_id")
    assert raw.loc["same-code", "verdict"] == "regression" and raw.loc["same-code", "ratio"] == pytest.approx(1.2, rel=1e-3)
    result = attnbench("compare", str(base_run), str(new_run))
    assert "the new run's machine was 20% slower" in result.stdout, result.stdout


def test_a_change_inside_the_rounds_spread_is_within_noise(tmp_path):
    base = [in_rounds("x", [1.0e-3, 1.4e-3, 0.7e-3], [None] * 3, None)]
    new = [in_rounds("x", [1.3e-3, 1.0e-3, 1.7e-3], [None] * 3, None)]
    table = compare_runs(load_results(write_run(tmp_path / "b", base)), load_results(write_run(tmp_path / "n", new)))
    assert table.loc[0, "verdict"] == "within noise" and table.loc[0, "ratio_low"] < 1 < table.loc[0, "ratio_high"]


def attnbench(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, env=env, timeout=300)


def test_compare_command_exit_codes(two_runs):
    base, new = two_runs
    result = attnbench("compare", str(base), str(new))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].startswith("regression") and " a " in f" {lines[1]} "
    assert "1 regression" in lines[-1] and "1 within noise" in lines[-1] and "1 only in base" in lines[-1]
    assert attnbench("compare", str(base), str(base)).returncode == 0
    assert attnbench("compare", str(base), str(new), "--threshold", "0.5").returncode == 0
    bad = attnbench("compare", str(base), str(new), "--threshold", "x")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_export_loads_with_pytest_benchmarks_storage(two_runs, tmp_path):
    base, _ = two_runs
    out = tmp_path / "store" / "0001_attnbench.json"
    out.parent.mkdir()
    result = attnbench("export", str(base), "--format", "pytest-benchmark", "--out", str(out))
    assert result.returncode == 0, result.stderr
    storage = FileStorage(out.parent, logger=None, default_machine_id="x")
    [(path, data)] = list(storage.load())
    frame = load_results(base).set_index("case_id")
    assert len(data["benchmarks"]) == len(frame)
    assert data["commit_info"] == {"id": "abc123", "dirty": True, "project": "attnbench"}
    for bench in data["benchmarks"]:
        row = frame.loc[bench["extra_info"]["case_id"]]
        stats = bench["stats"]
        assert stats["median"] == pytest.approx(row["time_median_s"])
        assert stats["min"] == pytest.approx(row["time_min_s"])
        assert stats["mean"] == pytest.approx(row["time_mean_s"])
        assert stats["rounds"] == row["n_samples"]
    loaded = list(storage.load_benchmarks())
    assert {b["name"] for b in loaded} == {b["name"] for b in data["benchmarks"]}


def test_benchmark_suite_is_collected_from_the_registry_with_plugins():
    from variants import get_variant, list_variants

    env = {**os.environ, "PYTHONPATH": str(ROOT), "ATTNBENCH_PLUGINS": str(ROOT / "tests" / "plugins" / "good.py")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/benchmarks", "--collect-only", "-q", "-p", "no:cacheprovider"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    ids = [line for line in result.stdout.splitlines() if "::test_attention_forward[" in line]
    names = {n for n in list_variants() if get_variant(n).in_all} | {"test-plugin-attn"}  # as "--variants all"
    assert len(ids) == len(names) * 2 * 2  # variants x N x causal
    assert any("test-plugin-attn" in i for i in ids)


def test_export_without_pytest_benchmark_installed_is_one_line(two_runs, tmp_path):
    # The default install has no pytest-benchmark (a test tool): export says how to get it, nothing else breaks.
    script = ("import sys; sys.modules['pytest_benchmark'] = None; from harness.cli import main; "
              f"sys.exit(main(['export', {str(two_runs[0])!r}, '--out', {str(tmp_path / 'x.json')!r}]))")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "attnbench export: error: needs pytest-benchmark: pip install -e '.[bench]'"
    assert not (tmp_path / "x.json").exists()
