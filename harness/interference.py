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
import time
from dataclasses import dataclass

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
            cpu = time.thread_time_ns()
            return cpu, time.perf_counter_ns() - cpu
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
    ``discarded``: blocks dropped because they waited; ``load_avg`` and
    ``steal`` describe the host when the measurement began and across it.
    """

    wait_ratio: float | None
    cpu_utilization: float | None
    discarded: int
    load_avg: float | None
    steal: float | None
