"""Run folders and commands that never lie or lose data: locking, torn lines (a full disk: tests/test_full_disk.py),
isolated checks, worker hygiene, honest counts. Real processes throughout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest

from harness.run.results import load_results, read_jsonl, to_frame

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = Path(__file__).resolve().parent / "plugins"
GARBAGE = str(PLUGINS / "garbage.py")
MISBEHAVING = str(PLUGINS / "misbehaving.py")
# One round a case: these tests are about the folder, and count one line per case (rounds: tests/test_runner.py).
SMALL = ["--variants", "naive,sdpa", "--seq-lens", "32:256:x2", "--heads", "2", "--max-time", "0.05", "--rounds", "1"]


def attnbench(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        capture_output=True, text=True, timeout=600, cwd=ROOT, env={**os.environ, **(env or {})}, **kwargs,
    )  # fmt: skip


def one_line(result: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    # progress lines ("[3/8] ...") and warnings aside, exactly one line: the error
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("[") and "warning" not in line]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def test_a_second_sweep_on_a_locked_folder_is_refused(tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "sweep", *SMALL, "--out", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (out / "cases.jsonl").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.poll() is None, "the first sweep ended before the second could race it"
        second = attnbench("sweep", *SMALL, "--out", str(out), "--resume")
        one_line(second, 2, "in use by another sweep")
    finally:
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    # Each case's lines count its rounds 1, 2, ... (a round the racing sweep disturbed is taken again, once):
    # the refused resume ran nothing.
    rounds = [(r["case_id"], len(r["round_medians_s"])) for r in read_jsonl(out / "cases.jsonl")]
    assert len(rounds) == len(set(rounds)) and len({case for case, _ in rounds}) == 8
    assert all(n == 1 or (case, n - 1) in rounds for case, n in rounds)


def test_a_complete_last_line_without_its_newline_is_kept(tmp_path):
    out = tmp_path / "run"
    assert attnbench("sweep", *SMALL, "--out", str(out)).returncode == 0
    jsonl = out / "cases.jsonl"
    lines = jsonl.read_text().splitlines()
    jsonl.write_text("\n".join(lines[:3]))  # three cases, the third missing only its newline
    (out / "results.parquet").unlink()
    resumed = attnbench("sweep", *SMALL, "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "3 were already recorded" in resumed.stdout
    records = read_jsonl(jsonl)
    assert [json.dumps(r) for r in records[:3]] == lines[:3], "the three recorded cases kept, byte for byte"
    rounds = [(r["case_id"], len(r["round_medians_s"])) for r in records]  # a disturbed round is taken again
    assert len({case for case, _ in rounds}) == 8 and len(rounds) == len(set(rounds))


def test_check_never_passes_a_variant_that_kills_its_process():
    result = attnbench("check", "test-exit-third", "--plugin", GARBAGE)
    assert result.returncode == 1, result.stdout
    lines = result.stdout.splitlines()
    # Every check is reported; each one that makes a third call in its (fresh) worker could not run.
    assert [line.split()[0] for line in lines[:6]] == ["pass", "pass", "FAIL", "FAIL", "FAIL", "FAIL"], result.stdout
    assert lines[2].count("could not run: worker died: exited with status 0") == 1
    assert "4 check(s) failed or could not run: deterministic, exact, masks and GQA, backward" in lines[-1]


@pytest.mark.parametrize("name, needle", [("test-inplace", "modified its input q"), ("test-nan", "NaN")])
def test_check_reports_every_check_of_a_garbage_variant(name, needle):
    result = attnbench("check", name, "--plugin", GARBAGE)
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    names = ["contract", "contract (causal)", "deterministic", "exact", "masks and GQA", "backward"]
    assert [line[6:24].strip() for line in result.stdout.splitlines()[:6]] == names, result.stdout
    assert needle in result.stdout


def test_check_that_applies_to_nothing_here_fails():
    result = attnbench("check", "sdpa-cudnn")
    if "no check can run here" not in result.stdout:
        pytest.skip("this machine can run sdpa-cudnn")
    assert result.returncode == 1


def test_check_names_the_case_a_misaligned_causal_mask_fails(tmp_path):
    plugin = tmp_path / "bottom_right.py"
    plugin.write_text(
        "import torch\nfrom variants import register\n"
        "@register('test-bottom-right', family='test', exact=True, time='O(N^2 d)', memory='O(N^2)')\n"
        "def br(q, k, v, *, causal=False, scale=None):\n"
        "    s = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5\n"
        "    if causal:\n"
        "        n_q, n_kv = s.shape[-2:]\n"
        "        s = s.masked_fill(torch.ones(n_q, n_kv, dtype=torch.bool).triu(1 + n_kv - n_q), float('-inf'))\n"
        "    return s.softmax(-1) @ v\n"
    )
    result = attnbench("check", "test-bottom-right", "--plugin", str(plugin))
    assert result.returncode == 1
    exact = next(line for line in result.stdout.splitlines() if line[6:24].strip() == "exact")
    assert "N_q=100 N_kv=160 causal" in exact and "only causal cases with N_q != N_kv fail" in exact, exact


def test_resume_with_other_settings_names_them(tmp_path):
    out = tmp_path / "run"
    assert attnbench("sweep", *SMALL, "--out", str(out)).returncode == 0
    env_before = (out / "env.json").read_text()
    refused = attnbench("sweep", *SMALL, "--timeout", "30", "--out", str(out), "--resume")
    one_line(refused, 2, "other settings", "--timeout 120.0 -> 30.0")
    assert (out / "env.json").read_text() == env_before
    again = attnbench("sweep", *SMALL, "--out", str(out), "--resume")
    assert again.returncode == 0, again.stderr
    assert "8 were already recorded" in again.stdout
    assert "0.0 s (0%) inside timed calls" in again.stdout, "a resume that ran nothing timed nothing"


def test_workers_are_capped_and_leave_nothing_running(tmp_path):
    out, pidfile = tmp_path / "run", tmp_path / "child.pid"
    result = attnbench("sweep", "--plugin", GARBAGE, "--plugin", MISBEHAVING, "--variants", "test-spawner,test-chatty,test-hog",
                       "--seq-lens", "32", "--heads", "1", "--max-time", "0.05", "--rounds", "1", "--out", str(out),
                       env={"ATTNBENCH_TEST_PIDFILE": str(pidfile)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    # a variant's child process ends with its worker's process group
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the plugin's child process outlived the sweep")
    # a chatty variant cannot grow the log past its cap
    log = out / "worker.log"
    assert log.stat().st_size <= 8 * 2**20 + 4096
    assert "bytes of worker output dropped" in log.read_text(errors="replace")[-200:]
    # the attention-maps worker is under the same memory cap as the case workers
    maps = json.loads((out / "attention_maps.json").read_text())
    assert maps["non_causal"]["test-hog"]["status"] != "ok"
    rows = pd.read_parquet(out / "results.parquet").set_index("variant")
    assert rows.loc["test-hog", "status"] == "oom"
    assert rows.loc["test-spawner", "status"] == "ok"
    assert rows.loc["test-chatty", "status"] in ("ok", "contended")  # its own 1 MiB writes may preempt it


def test_a_case_named_twice_runs_once(tmp_path):
    out = tmp_path / "run"
    result = attnbench("sweep", "--variants", "sdpa,sdpa", "--batch", "1,1", "--seq-lens", "32,64", "--heads", "1",
                       "--max-time", "0.05", "--rounds", "1", "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2 cases (" in result.stdout  # ok, or contended on a busy machine: measured, either way
    assert len(read_jsonl(out / "cases.jsonl")) == 2


def test_load_results_reports_duplicated_cases(tmp_path):
    rows = [{"run_id": "r", "case_id": "a", "status": "ok"}, {"run_id": "r", "case_id": "a", "status": "error"}]
    with pytest.warns(UserWarning, match="1 case\\(s\\) recorded more than once"):
        frame = to_frame(rows)
    assert len(frame) == 1 and frame["status"].iloc[0] == "error"
    path = tmp_path / "cases.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_results(path)
    assert any("more than once" in str(w.message) for w in caught)


@pytest.mark.slow
def test_twenty_random_kill_points_lose_and_duplicate_nothing(tmp_path):
    """Opt-in (``pytest -m slow``): SIGKILL a sweep at 20 random moments, resuming after each; then exact."""
    import random

    rng = random.Random(20)
    args = ["sweep", "--variants", "naive,sdpa,chunked-query", "--seq-lens", "32:256:x2", "--heads", "2",
            "--max-time", "0.05", "--rounds", "1"]  # fmt: skip
    kills = runs = 0
    while kills < 20:
        out = tmp_path / f"run{runs}"
        runs += 1
        first = True
        while True:
            proc = subprocess.Popen(
                [sys.executable, "-m", "harness.cli", *args, "--out", str(out), *([] if first else ["--resume"])],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            first = False
            try:
                proc.wait(timeout=rng.uniform(2.0, 9.0))  # a torch import, the quiet check, then cases
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                if kills < 20:
                    continue
                finished = attnbench(*args, "--out", str(out), "--resume")
                assert finished.returncode == 0, finished.stderr
            assert proc.returncode in (0, -signal.SIGKILL)
            break
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a torn line left behind would warn here
            records = read_jsonl(out / "cases.jsonl")
        ids = [r["case_id"] for r in records]
        assert len(ids) == len(set(ids)) == 12, f"{out}: {len(ids)} records, {len(set(ids))} distinct; want 12"
        assert len(pd.read_parquet(out / "results.parquet")) == 12
