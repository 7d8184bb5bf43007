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


def test_each_round_forks_its_workers_from_a_fresh_server(tmp_path):
    """Workers of one server share its address-space layout (fork keeps it); a new server per round re-draws it,
    so the rounds of a case differ as separate runs do. A server serving a parked worker is kept for it."""
    from harness.run.executor import WorkerSlot

    slot = WorkerSlot([], tmp_path / "worker.log", {})
    naive = Case(variant="naive", seq_len=16, heads=1, threads=1)
    try:
        assert slot.measure(CASE, 0.01, 60)["status"] == "ok"
        slot.compiles.add(slot.key)  # as `_run` marks a variant that compiled: its worker is parked between rounds
        parked, first = slot.worker, slot.worker.server
        assert slot.measure(naive, 0.01, 60)["status"] == "ok" and slot.worker.server is first
        slot.new_round()
        assert slot.measure(naive, 0.01, 60, round_index=1, rounds=2)["status"] == "ok"
        second = slot.worker.server
        assert second is not first and first.proc.poll() is None  # the first is kept for the parked worker
        assert slot.measure(CASE, 0.01, 60, round_index=1, rounds=2)["status"] == "ok" and slot.worker is parked
        slot.new_round()  # no parked worker comes from the second server: it ends
        assert second.proc.wait(timeout=10) is not None and first.proc.poll() is None
    finally:
        slot.close()
    assert first.proc.poll() is not None and parked.proc.poll() is not None
