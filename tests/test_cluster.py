"""The Ray executor on a real two-node Ray cluster started here (127.0.0.1 only), and stopped at the end.

Both nodes are on this machine, so their timings disturb each other (cases are
often ``contended``): these tests hold placement, streaming and faults, not speed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

RAY_ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
TEMP = Path(f"/tmp/abr{os.getpid()}")  # the cluster's own temp dir (short: Ray's socket paths are length-limited)
RAY = str(Path(sys.executable).with_name("ray"))
# One round a case, but in the first test: rounds add time, not placement.
SWEEP = ["--variants", "naive,sdpa,linear-elu,chunked-query", "--max-time", "0.05", "--threads", "1", "--rounds", "1"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_start(*args: str) -> None:
    subprocess.run([RAY, "start", "--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--disable-usage-stats",
                    "--temp-dir", str(TEMP), *args], env=RAY_ENV, check=True, capture_output=True, timeout=120)  # fmt: skip


def _cluster_processes() -> dict[int, list[str]]:
    """pid -> command line of every process of the test cluster: those naming its temp dir or holding a
    file in it (Ray renames its agents, so a command line alone cannot say whose a process is)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            files = [os.readlink(fd) for fd in (entry / "fd").iterdir()]
        except OSError:  # gone, or not ours
            continue
        if any(str(TEMP) in part for part in cmdline + files):
            found[int(entry.name)] = cmdline
    return found


def _raylets() -> list[int]:
    """The cluster's raylet pids, the head's first (started first: the lower pid, as pids here do not wrap)."""
    return sorted(pid for pid, cmd in _cluster_processes().items() if cmd[0].endswith("raylet/raylet"))


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def cluster():
    """HEAD:PORT of a head node and a second node, each advertising one CPU; every process of it killed after."""
    port = _free_port()
    _ray_start("--head", "--port", str(port), "--include-dashboard", "false")
    try:
        _ray_start("--address", f"127.0.0.1:{port}")
        yield f"127.0.0.1:{port}"
    finally:
        for pid in _cluster_processes():
            _kill(pid)
        shutil.rmtree(TEMP, ignore_errors=True)


def _sweep(out: Path, address: str, seq_lens: str, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "harness.cli", "sweep", "--executor", "ray", "--ray-address", address,
               "--seq-lens", seq_lens, "--out", str(out), *SWEEP, *extra]  # fmt: skip
    return subprocess.Popen(command, env=RAY_ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _rows(out: Path) -> list[dict]:
    path = out / "cases.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def _cases(rows: list[dict]) -> dict[str, dict]:
    """Each case's last line (its row), after checking that its lines count its rounds 1, 2, ...: none lost or twice."""
    counts: dict[str, list[int]] = {}
    for r in rows:
        counts.setdefault(r["case_id"], []).append(len(r.get("round_medians_s") or [None]))
    for case_id, seen in counts.items():
        assert seen == list(range(1, len(seen) + 1)), (case_id, seen)
    return {r["case_id"]: r for r in rows}


def _wait_for_rows(out: Path, count: int, proc: subprocess.Popen, limit_s: float = 120) -> None:
    deadline = time.monotonic() + limit_s
    while len(_rows(out)) < count:
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, f"fewer than {count} rows after {limit_s} s"
        time.sleep(0.2)


def test_twenty_cases_on_two_nodes_each_once_never_two_at_a_time_on_a_node(cluster, tmp_path):
    address = cluster
    proc = _sweep(tmp_path / "run", address, "64,128,256,512,1024", "--rounds", "2")
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    rows = _rows(tmp_path / "run")  # every round of every case: the placement rule holds for each
    cases = _cases(rows)
    assert len(cases) == 20 and all(len(r["round_medians_s"]) >= 2 for r in cases.values())
    assert {r["status"] for r in cases.values()} <= {"ok", "contended"}, {r["status"]: r["reason"] for r in rows}
    nodes = {r["node"] for r in rows}
    assert len(nodes) == 2 and all(r["host"] == socket.gethostname() for r in rows)
    for node in nodes:
        spans = sorted((r["started_at"], r["ended_at"]) for r in rows if r["node"] == node)
        assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:])), spans


def test_a_node_killed_mid_sweep_and_a_killed_driver_lose_nothing(cluster, tmp_path):
    address = cluster
    out = tmp_path / "run"
    seq_lens = "64,96,128,192,256,384"  # 4 variants x 6 = 24 cases
    proc = _sweep(out, address, seq_lens)
    _wait_for_rows(out, 5, proc)
    head, second = _raylets()
    _kill(second)  # the second node's raylet: its actor, and the case it was timing, go with it
    _wait_for_rows(out, 12, proc)
    proc.send_signal(signal.SIGKILL)  # the driver too
    proc.wait()
    partial = len(_cases(_rows(out)))
    resumed = _sweep(out, address, seq_lens, "--resume")
    output, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, output
    assert f"{partial} were already recorded" in output
    rows = list(_cases(_rows(out)).values())  # a round the killing disturbed may be taken again, once
    assert len(rows) == 24
    lost = [r for r in rows if r["status"] == "crash"]
    assert len(lost) <= 1 and all(r["reason"].startswith("node lost") for r in lost), lost
    assert {r["status"] for r in rows} <= {"ok", "contended", "crash"}
    assert Path(f"/proc/{head}").exists()


def test_an_unreachable_cluster_is_one_line_and_exit_2(tmp_path):
    proc = _sweep(tmp_path / "run", f"127.0.0.1:{_free_port()}", "64")
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert output.strip().startswith("attnbench sweep: error: cannot reach a Ray cluster at 127.0.0.1:"), output
    assert len(output.strip().splitlines()) == 1 and not (tmp_path / "run" / "cases.jsonl").exists()
