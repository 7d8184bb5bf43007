"""Where cases run: the local executor (this machine's worker processes), and what every executor shares.

An executor takes the cases still to run and yields ``(case, record)`` for
each, in the order they finish; the runner alone writes them (`harness.run.runner`).
Every case is measured by the same isolated worker process (`WorkerSlot`,
`harness.run.client`), whichever executor placed it; the Ray executor
(`harness.run.cluster`) runs a `WorkerSlot` on each node. Each record is
stamped with where and when it ran (`stamp`).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from ..measure.case import Case, configuration
from ..measure.measure_case import record_for
from .budget import over_budget, worker_memory_limit
from .client import Worker, WorkerDied

Skip = Callable[[Case], "str | None"]  # why not to run a case (a smaller N failed), or None
Started = Callable[[Case], None]  # told when a case is handed to a worker


def utc_now() -> str:
    """Now, UTC, ISO 8601 to the millisecond."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def stamp(record: dict, node: str, started_at: str) -> dict:
    """``record`` with where (``node``, this host) and when (``started_at``, now as the end) it ran."""
    record.update(node=node, host=socket.gethostname(), started_at=started_at, ended_at=utc_now())
    return record


class WorkerSlot:
    """The live worker: kept while consecutive cases share (variant, device), replaced after any failure.

    ``budgets`` maps a device to the bytes its cases may use on this machine: a
    case predicted past it is recorded ``skipped`` without running.
    """

    def __init__(
        self, plugins: list[str], log: Path, budgets: dict[str, int], peaks: dict[tuple, tuple[int, float]] | None = None
    ) -> None:
        self.plugins, self.log, self.budgets = plugins, log, budgets
        self.worker: Worker | None = None
        self.key: tuple | None = None
        # configuration -> (N, peak bytes) of its largest N measured (`harness.run.budget.measured_peaks`)
        self.peaks: dict[tuple, tuple[int, float]] = dict(peaks or {})

    def measure(self, case: Case, max_time_s: float, timeout_s: float) -> dict:
        """The case's record: a budget skip, the worker's own record, or a ``timeout`` or ``crash`` row."""
        config = configuration(case)
        measured = self.peaks.get(config)
        skip = over_budget(case, self.budgets[case.device], measured) if case.device in self.budgets else None
        if skip:
            return record_for(case, "skipped", skip).to_dict()
        record = self._run(case, max_time_s, timeout_s)
        if record.get("peak_mem_bytes") and (measured is None or case.seq_len > measured[0]):
            self.peaks[config] = (case.seq_len, record["peak_mem_bytes"])
        return record

    def _run(self, case: Case, max_time_s: float, timeout_s: float) -> dict:
        key = (case.variant, case.device, case.threads, case.allocator)  # the last two are fixed at a worker's start
        if self.key != key:
            self.close()
        try:
            if self.worker is None:
                limit = worker_memory_limit(case.device, self.budgets.get("cpu"))
                self.worker, self.key = Worker(self.plugins, case.threads, limit, self.log, case.allocator), key
            record = self.worker.run(case, max_time_s, timeout_s)
        except WorkerDied as died:
            self.close()
            return record_for(case, "crash", str(died)).to_dict()
        if record is None:  # the worker overran its timeout and was killed
            self.worker = None
            return record_for(case, "timeout", f"no result within {timeout_s:g} s; worker killed").to_dict()
        if record["status"] in ("oom", "error"):
            self.close()  # its state is suspect
        return record

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()
        self.worker, self.key = None, None


class LocalExecutor:
    """Cases one at a time on this machine, through one `WorkerSlot`: a timing never shares the machine with another."""

    def __init__(
        self, plugins: list[str], log: Path, budgets: dict[str, int], peaks: dict[tuple, tuple[int, float]] | None = None
    ) -> None:
        self.slot = WorkerSlot(plugins, log, budgets, peaks)
        self.node = socket.gethostname()

    def run(
        self, cases: Iterable[Case], max_time_s: float, timeout_s: float, skip: Skip, started: Started
    ) -> Iterator[tuple[Case, dict]]:
        for case in cases:
            started(case)
            began, reason = utc_now(), skip(case)
            record = record_for(case, "skipped", reason).to_dict() if reason else self.slot.measure(case, max_time_s, timeout_s)
            yield case, stamp(record, self.node, began)

    def close(self) -> None:
        self.slot.close()
