"""Workers forked from a fork server: a session of their own, honest death reasons, gone with their server."""

from __future__ import annotations

import os
import signal
import time

import pytest

from harness.measure.case import Case
from harness.run.client import Worker, WorkerDied, process_env
from harness.run.forkserver import ForkServer

CASE = Case(variant="sdpa", seq_len=16, heads=1, threads=1)


def gone(pid: int, within_s: float = 10.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_forked_workers_answer_in_sessions_of_their_own_and_die_with_their_server(tmp_path):
    server = ForkServer(process_env(1))
    try:
        first, second = (Worker([], 1, 0, tmp_path / "worker.log", server=server) for _ in range(2))
        assert first.proc.pid != second.proc.pid
        for worker in (first, second):
            assert os.getsid(worker.proc.pid) == worker.proc.pid  # whatever it starts ends with its group
            assert worker.run(CASE, 0.01, 60)["status"] == "ok"
        first.close()
        assert gone(first.proc.pid) and first.proc.returncode is not None
        pid = second.proc.pid
    finally:
        server.close()
    assert gone(pid), "a worker outlived its fork server"


def test_a_forked_worker_killed_by_a_signal_is_reported_by_that_signal(tmp_path):
    server = ForkServer(process_env(1))
    try:
        worker = Worker([], 1, 0, tmp_path / "worker.log", server=server)
        os.kill(worker.proc.pid, signal.SIGSEGV)
        with pytest.raises(WorkerDied, match="killed by SIGSEGV"):
            worker.run(CASE, 0.01, 60)
        assert Worker([], 1, 0, tmp_path / "worker.log", server=server).run(CASE, 0.01, 60)["status"] == "ok"
    finally:
        server.close()
