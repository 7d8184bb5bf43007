"""How much the machine disturbed a measurement: run-queue wait, CPU share, host load, steal.

On Linux every thread of this process has ``/proc/self/task/<tid>/schedstat``:
nanoseconds it ran on a CPU, nanoseconds it sat runnable on a run queue while
another task had its CPU, and its time-slice count. Reading the sums before and
after a timed block says whether the block was preempted, which the block's
own time cannot: on a busy machine every block of a sample can lose the same
~4 ms time slice, so the blocks agree with each other, the IQR is tiny, and the
median is wrong by the slice. Elsewhere (macOS, no procfs) the probe falls back
to the timing thread's CPU time against the wall clock: time not on a CPU
while a compute-bound call runs is time it waited.

Host-wide facts come from ``os.getloadavg()`` and ``/proc/stat`` (steal: time a
hypervisor gave this VM's virtual CPUs to another guest).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from time import perf_counter, perf_counter_ns, thread_time_ns  # bound before any plugin loads

TASKS_DIR = "/proc/self/task"


class SchedulerProbe:
    """Cumulative (cpu_ns, wait_ns) of this process's threads, cheap enough to read around every block.

    ``wait_ns`` summed over threads can grow faster than the wall clock (two
    threads waiting at once count twice). The files stay open between reads
    (``pread`` at offset 0 re-reads a procfs file), and the thread list is
    re-read each time, so threads a kernel starts late are counted too.
    """

    def __init__(self) -> None:
        self.procfs = os.path.isdir(TASKS_DIR) and os.path.exists(f"{TASKS_DIR}/{os.getpid()}/schedstat")
        self._fds: dict[str, int] = {}

    def read(self) -> tuple[int, int]:
        if not self.procfs:
            # Fallback: the calling thread's CPU time; the rest of the wall clock counts as waiting.
            cpu = thread_time_ns()
            return cpu, perf_counter_ns() - cpu
        cpu = wait = 0
        tids = os.listdir(TASKS_DIR)
        for tid in tids:
            fd = self._fds.get(tid)
            try:
                if fd is None:
                    fd = self._fds[tid] = os.open(f"{TASKS_DIR}/{tid}/schedstat", os.O_RDONLY)
                fields = os.pread(fd, 96, 0).split()
            except OSError:  # the thread ended between listing and reading
                self._forget(tid)
                continue
            cpu += int(fields[0])
            wait += int(fields[1])
        for gone in set(self._fds) - set(tids):
            self._forget(gone)
        return cpu, wait

    def _forget(self, tid: str) -> None:
        fd = self._fds.pop(tid, None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        for tid in list(self._fds):
            self._forget(tid)

    def __enter__(self) -> SchedulerProbe:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_steal() -> tuple[int, int] | None:
    """(steal jiffies, total jiffies) of all CPUs from ``/proc/stat``, or None without procfs."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    values = [int(x) for x in fields[1:]]
    steal = values[7] if len(values) > 7 else 0
    # guest time is already counted inside user time: leave it out of the total
    return steal, sum(values[:8])


def steal_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """Share of all CPU time stolen by the hypervisor between two `read_steal` readings."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def load_average() -> float | None:
    """The 1-minute load average, or None where the platform has none."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


@dataclass(frozen=True)
class Interference:
    """What the machine did to one measurement's timed blocks.

    ``wait_ratio``: run-queue wait of this process's threads as a share of
    wall time × threads, over every timed block (discarded ones included);
    ``cpu_utilization``: CPU time of the timed calls over wall time × threads;
    ``discarded``: blocks dropped because they waited or, warm-up, faulted new pages in; ``load_avg`` and
    ``steal`` describe the host when the measurement began and across it.
    """

    wait_ratio: float | None
    cpu_utilization: float | None
    discarded: int
    load_avg: float | None
    steal: float | None


QUIET_WAIT = 0.05  # a quiet machine: threads waited under 5% of the check
QUIET_STEAL = 0.05
QUIET_SPREAD = 1.25  # a quiet machine: the check's median block within 25% of its best


def quiet_check(threads: int, seconds: float = 1.0) -> dict:
    """Is the machine quiet enough to time on? A ``seconds``-long matmul loop on ``threads`` threads.

    Returns ``{"busy": reason or None, "wait_ratio", "steal", "load_avg", "spread", "cpus"}``.
    Busy means: the loop's threads waited on a run queue (another process
    holds the CPUs they need), the hypervisor stole time, or the loop's blocks
    ran well over their best (contention procfs cannot see, e.g. a sibling
    hyperthread or memory bandwidth).
    """
    import torch

    from .threads import thread_count

    cpus = os.cpu_count() or 1
    load = load_average()
    a = torch.randn(256, 256)
    blocks: list[float] = []
    with thread_count(threads), SchedulerProbe() as probe:
        (a @ a).sum()  # start the thread pool before the first reading
        steal_before = read_steal()
        _cpu0, wait0 = probe.read()
        began = end = perf_counter()
        while end - began < seconds:
            t0 = perf_counter()
            for _ in range(10):
                a @ a
            end = perf_counter()
            blocks.append(end - t0)
        _cpu1, wait1 = probe.read()
    wait = (wait1 - wait0) * 1e-9 / ((end - began) * threads)
    steal = steal_share(steal_before, read_steal())
    blocks.sort()
    spread = blocks[len(blocks) // 2] / blocks[0]
    reasons = []
    if probe.procfs and wait > QUIET_WAIT:
        reasons.append(f"this process's threads waited on a run queue {wait:.0%} of a {seconds:g}-s check")
    if steal is not None and steal > QUIET_STEAL:
        reasons.append(f"the hypervisor stole {steal:.0%} of CPU time")
    if spread > QUIET_SPREAD:
        reasons.append(f"a calibration loop's median block ran {spread:.2f}x its best")
    if reasons and load is not None:
        reasons.append(f"load average {load:.1f} on {cpus} CPUs")
    return {
        "busy": "; ".join(reasons) or None,
        "wait_ratio": wait if probe.procfs else None,
        "steal": steal,
        "load_avg": load,
        "spread": spread,
        "cpus": cpus,
    }
