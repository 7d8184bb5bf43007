"""Workers run only what was asked: nothing a variant started outlives the sweep (a plain child, one in a session of
its own, a double-forked daemon) whether it finished, was terminated or killed; nothing runs from the working directory."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.run.results import load_results

ROOT = Path(__file__).resolve().parent.parent
GARBAGE = str(ROOT / "tests" / "plugins" / "garbage.py")


def alive(pid: int) -> bool:
    """Running, and not a zombie waiting for a parent to reap it."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False


def wait_for(path: Path, process: subprocess.Popen, within_s: float = 120) -> None:
    deadline = time.monotonic() + within_s
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the variant never started its children"
        time.sleep(0.05)


@pytest.mark.parametrize("end", ["finished", "SIGTERM", "SIGKILL"])
def test_nothing_a_variant_started_outlives_the_sweep(tmp_path, end):
    pidfile = tmp_path / "pids"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ATTNBENCH_TEST_PIDFILE": str(pidfile),
           "ATTNBENCH_TEST_SLEEP": "0" if end == "finished" else "600"}  # fmt: skip
    sweep = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "sweep", "--plugin", GARBAGE, "--variants", "test-escaper", "--seq-lens",
         "16", "--heads", "1", "--max-time", "0.01", "--rounds", "1", "--out", str(tmp_path / "run")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    pids: list[int] = []
    try:
        wait_for(pidfile, sweep)
        pids = [int(p) for p in pidfile.read_text().split()]
        assert len(pids) == 3 and all(alive(pid) for pid in pids)
        if end != "finished":
            os.kill(sweep.pid, getattr(signal, end))
        _, err = sweep.communicate(timeout=120)
        if end == "SIGTERM":  # one line, like Ctrl-C
            assert sweep.returncode == 143 and err.strip().splitlines()[-1].endswith(
                "terminated; finished cases are kept (use --resume)"
            ), err
            assert "Traceback" not in err
        elif end == "finished":
            assert sweep.returncode == 0, err
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [pid for pid in pids if alive(pid)] == [], "outlived the sweep"
    finally:
        sweep.kill()
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


README_PLUGIN = re.search(r"```python\n([^`]*?@register[^`]*?)```", (ROOT / "README.md").read_text(), re.S).group(1)  # its plugin


def test_workers_import_nothing_from_the_working_directory(tmp_path):
    (tmp_path / "numpy.py").write_text(f"open({str(tmp_path / 'imported')!r}, 'w').close()\nraise ImportError('fake')\n")
    (tmp_path / "variants.py").write_text(README_PLUGIN)  # the README's plugin, saved under an obvious name
    done = subprocess.run(  # -P: the working directory is not on the CLI's path either, as with the attnbench script
        [sys.executable, "-P", "-m", "harness.cli", "sweep", "--plugin", "variants.py", "--variants", "sdpa,my-attn",
         "--seq-lens", "16", "--heads", "1", "--max-time", "0.01", "--rounds", "1", "--out", "run"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    statuses = load_results(tmp_path / "run").set_index("variant")["status"]
    assert statuses.isin(["ok", "contended"]).all() and len(statuses) == 2, done.stdout  # measured, not crashed
    assert not (tmp_path / "imported").exists(), "a numpy.py in the working directory ran"
