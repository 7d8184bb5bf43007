"""Where cases run: the local executor (this machine's worker processes), and what every executor shares.

An executor takes the cases still to run and yields ``(case, record)`` for
each, in the order they finish; the runner alone writes them (`harness.run.runner`).
Every case is measured by the same isolated worker process (`WorkerSlot`,
`harness.run.client`), whichever executor placed it; the Ray executor
(`harness.run.cluster`) runs a `WorkerSlot` on each node. Each record is
stamped with where and when it ran (`stamp`).
"""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from variants.plugins import plugins_for

from ..measure.case import Case, configuration
from ..measure.measure_case import record_for
from .budget import over_budget, worker_memory_limit
from .client import Worker, WorkerDied, process_env
from .forkserver import ForkServer, ForkServerDied

Skip = Callable[[Case], "str | None"]  # why not to run a case (a smaller N failed), or None
Started = Callable[[Case], None]  # told when a case is handed to a worker


def utc_now() -> str:
    """Now, UTC, ISO 8601 to the millisecond."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def stamp(record: dict, node: str, started_at: str) -> dict:
    """``record`` with where (``node``, this host) and when (``started_at``, now as the end) it ran."""
    record.update(node=node, host=socket.gethostname(), started_at=started_at, ended_at=utc_now())
    return record


def _memory_death(record: dict) -> bool:
    """Whether a worker failed for memory: ``oom``, or killed by SIGKILL (the kernel's OOM killer's signal)."""
    return record["status"] == "oom" or (record["status"] == "crash" and "SIGKILL" in str(record.get("reason")))


class WorkerSlot:
    """The live worker: kept while consecutive cases share (variant, device), replaced after any failure.

    Each round's workers are fresh forks (`new_round`), but for a variant that compiles
    (``torch.compile``: a record with ``compile_s``): its worker is parked between rounds and
    taken up again, since a fresh process would compile again (5-6 s a round on a 2-core CPU,
    a fifth of a quick sweep). Its rounds then differ in time, not in process; a parked worker
    idles, holding what its allocator kept. ``budgets`` maps a device to the bytes its cases
    may use on this machine: a case predicted past it is recorded ``skipped`` without running. A case
    ``oom``, or killed by SIGKILL, in a worker that had run earlier cases runs once more in a fresh one: the
    pinned allocator keeps a worker's heap, so the failure can be the worker's history (decode at N=65536,
    B=8: 4 GiB past the address-space cap after N <= 32768 in the same worker; a naive worker grown to 16 GB
    over N = 1K..4K, taken by the kernel's OOM killer; alone, each ok). Its second failure stands.
    The slot owns a temporary directory where its workers share each input set's float64 reference
    (`harness.measure.reference_cache`), removed when it closes.
    """

    def __init__(
        self, plugins: list[str], log: Path, budgets: dict[str, int], peaks: dict[tuple, tuple[int, float]] | None = None
    ) -> None:
        self.plugins, self.log, self.budgets = plugins, log, budgets
        self.worker: Worker | None = None
        self.key: tuple | None = None
        self.servers: dict[tuple[int, str], ForkServer] = {}  # (threads, allocator) -> the server workers fork from
        self.compiles: set[tuple] = set()  # worker keys whose variant compiled: parked between rounds
        self.parked: dict[tuple, Worker] = {}
        self.retired: list[ForkServer] = []  # servers of earlier rounds, kept for their parked workers
        # configuration -> (N, peak bytes) of its largest N measured (`harness.run.budget.measured_peaks`)
        self.peaks: dict[tuple, tuple[int, float]] = dict(peaks or {})
        self.references = tempfile.mkdtemp(prefix="attnbench-references-")

    def measure(self, case: Case, max_time_s: float, timeout_s: float, round_index: int = 0, rounds: int = 1) -> dict:
        """The case's record (a later round: its timing only): a budget skip, the worker's own record, or a
        ``timeout`` or ``crash`` row."""
        config = configuration(case)
        measured = self.peaks.get(config)
        skip = over_budget(case, self.budgets[case.device], measured) if case.device in self.budgets else None
        if skip and round_index == 0:
            return record_for(case, "skipped", skip).to_dict()
        key = self._key(case)
        reused = (self.key == key and self.worker is not None) or key in self.parked
        record = self._run(case, max_time_s, timeout_s, round_index, rounds)
        if reused and _memory_death(record):  # the worker's history may be why: once more, in a fresh one
            record = self._run(case, max_time_s, timeout_s, round_index, rounds)
        if record.get("peak_mem_bytes") and (measured is None or case.seq_len > measured[0]):
            self.peaks[config] = (case.seq_len, record["peak_mem_bytes"])
        return record

    @staticmethod
    def _key(case: Case) -> tuple:
        """The worker a case runs in: its variant, device, threads and allocator (the last two fixed at its start)."""
        return case.variant, case.device, case.threads, case.allocator

    def _run(self, case: Case, max_time_s: float, timeout_s: float, round_index: int, rounds: int) -> dict:
        key = self._key(case)
        if self.key != key:
            self._put_away()
            self.worker, self.key = self.parked.pop(key, None), key
        try:
            if self.worker is None:
                limit = worker_memory_limit(case.device, self.budgets.get("cpu"))
                server = self._server(case.threads, case.allocator)
                plugins = plugins_for([case.variant], self.plugins)  # its own plugin only, none for a built-in
                self.worker, self.key = Worker(plugins, case.threads, limit, self.log, case.allocator, server), key
            record = self.worker.run(case, max_time_s, timeout_s, round_index, rounds, self.references)
        except WorkerDied as died:
            self.close_worker()
            for key, server in list(self.servers.items()):
                if server.proc.poll() is not None:  # a server that died (the OOM killer?) is started again next time
                    server.close()
                    del self.servers[key]
            return record_for(case, "crash", str(died)).to_dict()
        if record is None:  # the worker overran its timeout and was killed
            self.worker = None
            return record_for(case, "timeout", f"no result within {timeout_s:g} s; worker killed").to_dict()
        if record["status"] in ("oom", "error"):
            self.close_worker()  # its state is suspect
        elif record.get("compile_s"):
            self.compiles.add(key)
        return record

    def _server(self, threads: int, allocator: str) -> ForkServer | None:
        """The fork server workers of this environment come from, started on first use; None if it cannot start
        (the worker then starts one of its own, and says why it cannot)."""
        key = (threads, allocator)
        if key not in self.servers:
            try:
                self.servers[key] = ForkServer(process_env(threads, allocator))
            except ForkServerDied:
                return None
        return self.servers[key]

    def new_round(self) -> None:
        """Start the next round: fresh workers, but for the parked ones of variants that compile, forked
        from fresh fork servers (a server serving a parked worker is kept until that worker ends)."""
        self._put_away()
        serving = {id(worker.server) for worker in self.parked.values()}
        for server in self.servers.values():
            if id(server) in serving:
                self.retired.append(server)
            else:
                server.close()
        self.servers = {}

    def _put_away(self) -> None:
        """Park the live worker if its variant compiles, else end it."""
        if self.worker is not None and self.key in self.compiles:
            self.parked[self.key], self.worker, self.key = self.worker, None, None
        self.close_worker()

    def close_worker(self) -> None:
        if self.worker is not None:
            self.worker.close()
        self.worker, self.key = None, None

    def close(self) -> None:
        self.close_worker()
        for worker in self.parked.values():
            worker.close()
        self.parked = {}
        for server in [*self.servers.values(), *self.retired]:
            server.close()
        self.servers, self.retired = {}, []
        shutil.rmtree(self.references, ignore_errors=True)


class LocalExecutor:
    """Cases one at a time on this machine, through one `WorkerSlot`: a timing never shares the machine with another."""

    def __init__(
        self, plugins: list[str], log: Path, budgets: dict[str, int], peaks: dict[tuple, tuple[int, float]] | None = None
    ) -> None:
        self.slot = WorkerSlot(plugins, log, budgets, peaks)
        self.node = socket.gethostname()

    def run(
        self, cases: Iterable[Case], max_time_s: float, timeout_s: float, skip: Skip, started: Started,
        round_index: int = 0, rounds: int = 1,
    ) -> Iterator[tuple[Case, dict]]:  # fmt: skip
        for case in cases:
            started(case)
            began, reason = utc_now(), skip(case)
            if reason:
                record = record_for(case, "skipped", reason).to_dict()
            else:
                record = self.slot.measure(case, max_time_s, timeout_s, round_index, rounds)
            yield case, stamp(record, self.node, began)

    def new_round(self) -> None:
        self.slot.new_round()

    def errand_server(self, threads: int, allocator: str) -> ForkServer | None:
        """A fork server of this sweep's for one-off workers (the attention maps), started if none is running."""
        return self.slot._server(threads, allocator)

    def close(self) -> None:
        self.slot.close()
