"""Honest wall-clock timing of one callable: warm-up, blocks, adaptive stopping, interference.

CPU: ``perf_counter_ns`` around blocks of k calls, k chosen so a block lasts
at least 1 ms (so clock resolution and loop overhead are < 0.1%); each sample
is a block's time divided by k. Blocks start 100 µs after the previous one
ended, so a sample does not pay for its predecessor's memory traffic. The
run-queue wait of this process's threads is read around every block
(`harness.interference`): a block that waited more than 2% of its wall time
was preempted and is discarded and re-taken, so a busy machine cannot inflate
the median quietly. A measurement that cannot collect enough clean blocks
within its cap is ``contended``.

CUDA: a CUDA event pair around each call, with the L2 cache flushed (a buffer
twice its size zeroed) between calls and outside the events, and one
synchronize per batch of calls; the host clock is never read without a
synchronize. Events time the device, which host preemption does not slow
unless the GPU runs dry; host load is still recorded.

Both: one untimed call (lazy initialization), then a warm-up that lasts until
the per-call time stops falling (at least 2 calls, at most ~100 ms; one call
when the untimed call took over 1 s), then samples until the median is known:
its distribution-free 95% confidence interval (order statistics, at least 6
samples) within +-2.5%, or a cap (time or count) is hit. Unlike a spread
threshold met by four lucky samples, the interval narrows as samples come in
even when the spread is wide (a bimodal kernel stops; it does not run to its
cap). Calls over 1 s take 3 samples. The raw samples are kept; statistics
come from `harness.stats`.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .interference import Interference, SchedulerProbe, load_average, read_steal, steal_share
from .stats import Summary, summarize

MIN_BLOCK_S = 1e-3
WARMUP_MAX_S = 0.1
WARMUP_MIN_CALLS = 2
WARMUP_SETTLED = 0.97  # warm once a call is no faster than 97% of the best before it
MIN_SAMPLES = 6  # the fewest from which a 95% interval of the median can be formed
CAP_SAMPLES = 5  # at a cap, the fewest clean samples a median is reported from
MIN_TIME_S = 0.02
TARGET_CI = 0.025  # stop once the median's 95% interval is within +-2.5%
TARGET_IQR_RATIO = 0.05  # torch.utils.benchmark's adaptive threshold, for comparisons (harness.selfcheck)
SLOW_CALL_S = 1.0
SLOW_CALL_SAMPLES = 3
SETTLE_S = 100e-6
WAIT_TOLERANCE = 0.02  # a block whose threads waited over 2% of its wall time was preempted


@dataclass(frozen=True)
class Measurement:
    """Raw per-call samples (seconds) and how they were taken; statistics derived on demand.

    ``samples`` are the clean blocks; ``rejected`` the blocks discarded because
    this process waited on a run queue during them. A ``contended``
    measurement got too few clean blocks within its cap: its ``summary`` then
    covers every block and is not to be trusted as a time.
    """

    samples: tuple[float, ...]
    block_size: int
    clock: str  # "perf_counter_ns" or "cuda_event"
    stop_reason: str  # "stable", "time cap", "count cap", "slow call", "contended"
    warnings: tuple[str, ...] = field(default=())
    rejected: tuple[float, ...] = field(default=())
    interference: Interference | None = None

    @property
    def contended(self) -> bool:
        return self.stop_reason == "contended"

    @property
    def used(self) -> tuple[float, ...]:
        """The samples the statistics come from: the clean ones, or every block when contended."""
        return self.samples + self.rejected if self.contended else self.samples

    @property
    def summary(self) -> Summary:
        return summarize(self.used)

    @property
    def median(self) -> float:
        return self.summary.median


def _warn_if_noisy(summary: Summary) -> tuple[str, ...]:
    if summary.noisy:
        return (f"IQR/median {summary.iqr_ratio:.0%}: the machine was noisy during this measurement",)
    return ()


def _stop(
    samples: list[float], elapsed: float, max_time_s: float, max_samples: int, waited: int = 0, min_time_s: float = MIN_TIME_S
) -> str | None:
    """Why to stop now, or None to keep sampling.

    ``samples`` are the clean blocks so far, ``waited`` how many were discarded.
    At a cap with too few clean blocks, a measurement whose blocks mostly
    waited (of at least 2 x CAP_SAMPLES tried) is ``contended``; a transient
    preemption gets up to twice the cap; one whose blocks did not wait (a cap
    shorter than CAP_SAMPLES blocks) samples on until it has them.
    """
    n = len(samples)
    if n >= SLOW_CALL_SAMPLES and min(samples) > SLOW_CALL_S:
        return "slow call"
    if n >= MIN_SAMPLES and elapsed >= min_time_s and summarize(samples).ci_half_width <= TARGET_CI:
        return "stable"
    capped = "time cap" if elapsed >= max_time_s else "count cap" if n + waited >= max_samples else None
    if capped is None:
        return None
    if n >= min(CAP_SAMPLES, max_samples):
        return capped
    if not waited or n + waited < 2 * CAP_SAMPLES:
        return None  # too few attempts to judge the machine by
    # A transient (most blocks clean) gets up to twice the cap to finish; a busy machine does not.
    transient = waited <= n and elapsed < 2 * max_time_s and n + waited < 2 * max_samples
    return None if transient else "contended"


def _settle(since_ns: int) -> None:
    """Busy-wait until SETTLE_S after ``since_ns``: the previous block's memory traffic drains first.

    The CPU analogue of flushing L2 between CUDA calls: a memory-bound call
    started the instant the previous one returned competes with its write-back
    (naive at N=512 ran up to 6% slower back-to-back on a shared 2-vCPU
    machine), so a sample would depend on its predecessor. A busy wait, not a
    sleep: an idle vCPU may be descheduled and woken late.
    """
    deadline = since_ns + SETTLE_S * 1e9
    while time.perf_counter_ns() < deadline:
        pass


def _warm_up(fn: Callable[[], object], clock: Callable[[], float]) -> float:
    """Call ``fn`` until its time stops falling; returns the per-call time of the warm calls.

    A first call over SLOW_CALL_S is warm-up enough by itself (it has already
    warmed caches, the allocator and the clock frequency; more would cost seconds).
    """
    start = clock()
    fn()  # untimed: lazy initialization, first-touch page faults
    first = clock() - start
    if first > SLOW_CALL_S:
        return first
    times: list[float] = []
    began = clock()
    while True:
        t0 = clock()
        fn()
        times.append(clock() - t0)
        settled = len(times) >= WARMUP_MIN_CALLS and times[-1] >= WARMUP_SETTLED * min(times[:-1])
        if settled or clock() - began >= WARMUP_MAX_S:
            break
    warm = sorted(times[-3:])
    return warm[len(warm) // 2]


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
        t0 = time.perf_counter_ns()
        for _ in range(k):
            fn()
        elapsed = (time.perf_counter_ns() - t0) * 1e-9
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
) -> Measurement:
    """Time ``fn`` on the CPU in blocks of k calls, discarding preempted blocks; see the module docstring.

    ``threads``: how many threads the call runs on (default torch's count), the
    denominator of the recorded wait and CPU shares.
    """
    threads = threads or torch.get_num_threads()
    load, steal_before = load_average(), read_steal()
    per_call = _warm_up(fn, lambda: time.perf_counter_ns() * 1e-9)
    k = _block_size(fn, per_call)

    # Preallocated: a list growing between calls is reallocated into the heap
    # among the op's own freed buffers and moves where the next call's land.
    # Whatever else is allocated between blocks is freed before the next one.
    capacity = 2 * max(1, max_samples)  # room for the transient grace of `_stop`
    clean, waited = [0.0] * capacity, [0.0] * capacity
    n = n_waited = 0
    with SchedulerProbe() as probe:
        began = time.perf_counter_ns()
        first_cpu, first_wait = cpu0, wait0 = probe.read()
        while True:
            t0 = time.perf_counter_ns()
            for _ in range(k):
                fn()
            t1 = time.perf_counter_ns()
            cpu1, wait1 = probe.read()
            sample = (t1 - t0) * 1e-9 / k
            if wait1 - wait0 > WAIT_TOLERANCE * (t1 - t0):  # preempted: discard, take another
                waited[n_waited] = sample
                n_waited += 1
            else:
                clean[n] = sample
                n += 1
            reason = _stop(clean[:n], (t1 - began) * 1e-9, max_time_s, max_samples, n_waited, min_time_s)
            if reason:
                break
            _settle(t1)
            cpu0, wait0 = probe.read()
    # Shares over the whole sampling span: a thread's CPU time is only brought
    # up to date at scheduler ticks, so a single block's CPU delta is coarse.
    span = (t1 - began) * threads
    interference = Interference(
        wait_ratio=(wait1 - first_wait) / span if span else None,
        cpu_utilization=(cpu1 - first_cpu) / span if span and probe.procfs else None,
        discarded=n_waited,
        load_avg=load,
        steal=steal_share(steal_before, read_steal()),
    )
    m = Measurement(tuple(clean[:n]), k, "perf_counter_ns", reason, (), tuple(waited[:n_waited]), interference)
    return _with_warnings(m)


def _with_warnings(m: Measurement) -> Measurement:
    """``m`` with its warnings: contention (naming the measured wait) or noise."""
    i = m.interference
    if m.contended and i is not None:
        total = len(m.samples) + len(m.rejected)
        warning = (
            f"contended: {len(m.rejected)} of {total} blocks preempted "
            f"(run-queue wait {i.wait_ratio:.0%} of wall x threads"
            + (f", load average {i.load_avg:.1f}" if i.load_avg is not None else "")
            + ")"
        )
        return Measurement(m.samples, m.block_size, m.clock, m.stop_reason, (warning,), m.rejected, i)
    return Measurement(m.samples, m.block_size, m.clock, m.stop_reason, _warn_if_noisy(m.summary), m.rejected, i)


def time_cuda(
    fn: Callable[[], object],
    device: torch.device | str = "cuda",
    *,
    max_time_s: float = 5.0,
    max_samples: int = 1000,
    min_time_s: float = MIN_TIME_S,
) -> Measurement:
    """Time ``fn`` on a CUDA device with events, flushing L2 between calls."""
    device = torch.device(device)
    load, steal_before = load_average(), read_steal()
    with torch.cuda.device(device):
        props = torch.cuda.get_device_properties(device)
        l2_bytes = getattr(props, "L2_cache_size", 0) or 64 * 2**20
        flush = torch.empty(2 * l2_bytes, dtype=torch.uint8, device=device)

        def synchronized() -> float:
            torch.cuda.synchronize(device)  # the host clock needs the work finished
            return time.perf_counter()

        per_call = _warm_up(fn, synchronized)
        # Calls per batch: about 50 ms of work between synchronizes, at least 1.
        batch = max(1, min(100, int(0.05 / max(per_call, 1e-6))))

        samples: list[float] = []
        elapsed = 0.0
        while True:
            events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(batch)]
            for begin, end in events:
                flush.zero_()  # evict the inputs from L2: every call starts cold, as in a real model
                begin.record()
                fn()
                end.record()
            torch.cuda.synchronize(device)
            batch_samples = [begin.elapsed_time(end) * 1e-3 for begin, end in events]
            samples.extend(batch_samples)
            elapsed += sum(batch_samples)
            reason = _stop(samples, elapsed, max_time_s, max_samples, 0, min_time_s)
            if reason:
                break
    interference = Interference(None, None, 0, load, steal_share(steal_before, read_steal()))
    return _with_warnings(Measurement(tuple(samples), 1, "cuda_event", reason, (), (), interference))


def time_callable(fn: Callable[[], object], device: torch.device | str = "cpu", **caps) -> Measurement:
    """Time ``fn()`` on ``device``: a `Measurement` with raw samples, ``.summary.median`` and interference.

    Dispatches to `time_cpu` or `time_cuda` by device type, with Python's GC
    paused: as in ``timeit`` (and so ``torch.utils.benchmark``), a cyclic-GC
    pass landing in one sample is the interpreter's cost, not the kernel's.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        if torch.device(device).type == "cuda":
            return time_cuda(fn, device, **caps)
        return time_cpu(fn, **caps)
    finally:
        if paused:
            gc.enable()
