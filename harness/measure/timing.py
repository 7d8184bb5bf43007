"""Honest wall-clock timing of one callable on the CPU, and `time_callable` for any device.

CPU: ``perf_counter_ns`` around blocks of k calls, k chosen so a block lasts
at least 1 ms (so clock resolution and loop overhead are < 0.1%); each sample
is a block's time divided by k. Blocks start 100 µs after the previous one
ended, so a sample does not pay for its predecessor's memory traffic. The
run-queue wait of this process's threads is read around every block
(`harness.measure.interference`): a block that waited more than 2% of its wall
time was preempted and is discarded and re-taken, so a busy machine cannot
inflate the median quietly. A measurement that cannot collect enough clean
blocks within its cap is ``contended``.

The process's minor page faults are read around every block too. On the
pinned heap (`harness.measure.allocator`) a warm call touches no new page; a
block that faulted in more than one page per 100 µs of its time (over ~1 % of
it, at a few hundred ns a fault) first-touched memory because the heap was
still growing: glibc places large blocks by fit, and a sequence of N x N
tensors can need a few calls, not one, before every block fits in the holes
earlier calls left. Such a block is warm-up, not a sample, and is retaken, up
to ``GROWTH_RETAKES`` times; a call that keeps faulting past them faults in its
steady state, and its blocks are kept. (Measured: naive at N=4096, H=8 in a
fresh worker read 1.65, 0.32, 0.99 s in one round, the slow two faulting 0.5-1.5
GB in.) Warm-up and the stopping rule: `harness.measure.sampling`; CUDA:
`harness.measure.cuda_timing`.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable
from resource import RUSAGE_SELF, getrusage

# The clock as it was when the harness loaded, before any plugin could replace time.perf_counter_ns.
from time import perf_counter_ns

import torch

from .cuda_timing import time_cuda
from .interference import Interference, SchedulerProbe, load_average, read_steal, steal_share
from .sampling import CAP_SAMPLES, MIN_TIME_S, TARGET_CI, Measurement, stop_rule, warm_up, with_warnings

MIN_BLOCK_S = 1e-3
SETTLE_S = 100e-6
WAIT_TOLERANCE = 0.02  # a block whose threads waited over 2% of its wall time was preempted
FAULTS_PER_S = 10_000  # a block that faulted in more pages than this per second of it first-touched memory
GROWTH_RETAKES = 4  # faulting blocks retaken as warm-up, at most, before faulting counts as the steady state


def _minor_faults() -> int:
    """Minor page faults of this process so far (every thread's)."""
    return getrusage(RUSAGE_SELF).ru_minflt


def _settle(since_ns: int) -> None:
    """Busy-wait until SETTLE_S after ``since_ns``: the previous block's memory traffic drains first.

    The CPU analogue of flushing L2 between CUDA calls: a memory-bound call
    started the instant the previous one returned competes with its write-back
    (naive at N=512 ran up to 6% slower back-to-back on a shared 2-vCPU
    machine), so a sample would depend on its predecessor. A busy wait, not a
    sleep: an idle vCPU may be descheduled and woken late.
    """
    deadline = since_ns + SETTLE_S * 1e9
    while perf_counter_ns() < deadline:
        pass


def _block_size(fn: Callable[[], object], per_call: float) -> int:
    """Calls per block, so that a block lasts at least MIN_BLOCK_S.

    A call under a millisecond is sized by timing growing batches of it, not
    from single-call timings: for a microsecond call those are mostly the
    clock's own overhead, and would give blocks too short.
    """
    if per_call >= MIN_BLOCK_S:
        return 1
    k = max(1, math.ceil(MIN_BLOCK_S / max(per_call, 1e-9)))
    while True:
        t0 = perf_counter_ns()
        for _ in range(k):
            fn()
        elapsed = (perf_counter_ns() - t0) * 1e-9
        if elapsed >= MIN_BLOCK_S:
            return k
        k = math.ceil(k * 1.2 * MIN_BLOCK_S / max(elapsed, 1e-9))


def time_cpu(
    fn: Callable[[], object],
    *,
    max_time_s: float = 5.0,
    max_samples: int = 1000,
    threads: int | None = None,
    min_time_s: float = MIN_TIME_S,
    cap_samples: int = CAP_SAMPLES,
    target_ci: float = TARGET_CI,
    first_call_s: float | None = None,
    retake_faults: bool = True,
) -> Measurement:
    """Time ``fn`` on the CPU in blocks of k calls, discarding preempted blocks; see the module docstring.

    ``threads``: how many threads the call runs on (default torch's count), the
    denominator of the recorded wait and CPU shares. ``cap_samples``: the
    fewest clean blocks at a cap, ``target_ci`` the median's interval that stops
    sampling (`harness.measure.sampling.stop_rule`);
    ``first_call_s``: the caller made the untimed first call already. ``retake_faults``: retake blocks that
    page-faulted as warm-up (up to ``GROWTH_RETAKES``); off where faulting is the allocator's steady state
    (glibc's defaults map a large block afresh on every call).
    """
    threads = threads or torch.get_num_threads()
    load, steal_before = load_average(), read_steal()
    per_call = warm_up(fn, lambda: perf_counter_ns() * 1e-9, first_call_s)
    k = _block_size(fn, per_call)

    # Preallocated: a list growing between calls is reallocated into the heap
    # among the op's own freed buffers and moves where the next call's land.
    # Whatever else is allocated between blocks is freed before the next one.
    capacity = 2 * max(1, max_samples)  # room for the transient grace of `stop_rule`
    clean, waited = [0.0] * capacity, [0.0] * capacity
    n = n_waited = n_grown = 0
    with SchedulerProbe() as probe:
        began = perf_counter_ns()
        first_cpu, first_wait = cpu0, wait0 = probe.read()
        faults0 = _minor_faults()
        while True:
            t0 = perf_counter_ns()
            for _ in range(k):
                fn()
            t1 = perf_counter_ns()
            cpu1, wait1 = probe.read()
            faults1 = _minor_faults()
            sample = (t1 - t0) * 1e-9 / k
            if wait1 - wait0 > WAIT_TOLERANCE * (t1 - t0):  # preempted: discard, take another
                waited[n_waited] = sample
                n_waited += 1
            elif retake_faults and n_grown < GROWTH_RETAKES and faults1 - faults0 > FAULTS_PER_S * (t1 - t0) * 1e-9:
                n_grown += 1  # the heap grew during it: warm-up, take another
            else:
                clean[n] = sample
                n += 1
            reason = stop_rule(
                clean[:n], (t1 - began) * 1e-9, max_time_s, max_samples, n_waited, min_time_s, cap_samples, target_ci
            )
            if reason:
                break
            _settle(t1)
            cpu0, wait0 = probe.read()
            faults0 = _minor_faults()
    # Shares over the whole sampling span: a thread's CPU time is only brought
    # up to date at scheduler ticks, so a single block's CPU delta is coarse.
    span = (t1 - began) * threads
    interference = Interference(
        wait_ratio=(wait1 - first_wait) / span if span else None,
        cpu_utilization=(cpu1 - first_cpu) / span if span and probe.procfs else None,
        discarded=n_waited + n_grown,
        load_avg=load,
        steal=steal_share(steal_before, read_steal()),
    )
    m = Measurement(tuple(clean[:n]), k, "perf_counter_ns", reason, (), tuple(waited[:n_waited]), interference)
    return with_warnings(m)


def time_callable(fn: Callable[[], object], device: torch.device | str = "cpu", *, graphs: bool = False, **caps) -> Measurement:
    """Time ``fn()`` on ``device``: a `Measurement` with raw samples, ``.summary.median`` and interference.

    Dispatches to `time_cpu` or `time_cuda` by device type, with Python's GC
    paused: as in ``timeit`` (and so ``torch.utils.benchmark``), a cyclic-GC
    pass landing in one sample is the interpreter's cost, not the kernel's.
    """
    on_cuda = torch.device(device).type == "cuda"
    if graphs and not on_cuda:
        raise ValueError(f"graphs=True times CUDA graph replays; {device} is not a CUDA device")
    retake_faults = caps.pop("retake_faults", True)  # the CPU's page faults; CUDA's caching allocator has none
    replay = caps.pop("replay_launch_bound", True)  # CUDA's: a launch-bound call timed again as graph replays
    paused = gc.isenabled()
    gc.disable()
    try:
        if on_cuda:
            return time_cuda(fn, device, graphs=graphs, replay_launch_bound=replay, **caps)
        return time_cpu(fn, retake_faults=retake_faults, **caps)
    finally:
        if paused:
            gc.enable()
