"""Honest wall-clock timing of one callable: warm-up, blocks, adaptive stopping.

CPU: ``perf_counter_ns`` around blocks of k calls, k chosen so a block lasts
at least 1 ms (so clock resolution and loop overhead are < 0.1%); each sample
is a block's time divided by k. Blocks start 100 µs after the previous one
ended, so a sample does not pay for its predecessor's memory traffic.

CUDA: a CUDA event pair around each call, with the L2 cache flushed (a buffer
twice its size zeroed) between calls and outside the events, and one
synchronize per batch of calls; the host clock is never read without a
synchronize.

Both: one untimed call (lazy initialization), a warm-up of at least 3 calls
and ~100 ms (one call when the untimed call took over 1 s), then samples until at least 5 samples and ~0.3 s are in and the
IQR/median is below 5%, or a cap (time or count) is hit. Calls over 1 s take 3
samples. The raw samples are kept; statistics come from `harness.stats`.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .stats import Summary, summarize

MIN_BLOCK_S = 1e-3
WARMUP_S = 0.1
WARMUP_CALLS = 3
MIN_SAMPLES = 5
MIN_TIME_S = 0.3
TARGET_IQR_RATIO = 0.05
SLOW_CALL_S = 1.0
SLOW_CALL_SAMPLES = 3
SETTLE_S = 100e-6


@dataclass(frozen=True)
class Measurement:
    """Raw per-call samples (seconds) and how they were taken; statistics derived on demand."""

    samples: tuple[float, ...]
    block_size: int
    clock: str  # "perf_counter_ns" or "cuda_event"
    stop_reason: str  # "stable", "time cap", "count cap", "slow call"
    warnings: tuple[str, ...] = field(default=())

    @property
    def summary(self) -> Summary:
        return summarize(self.samples)

    @property
    def median(self) -> float:
        return self.summary.median


def _warn_if_noisy(summary: Summary) -> tuple[str, ...]:
    if summary.noisy:
        return (f"IQR/median {summary.iqr_ratio:.0%}: the machine was noisy during this measurement",)
    return ()


def _warmup_calls(first_call_s: float) -> int:
    """Warm-up length: WARMUP_CALLS, or one call after a first call over SLOW_CALL_S.

    A call that long has already warmed caches, the allocator and the clock
    frequency by itself; three more would cost seconds and change nothing.
    """
    return 1 if first_call_s > SLOW_CALL_S else WARMUP_CALLS


def _stop(samples: list[float], elapsed: float, max_time_s: float, max_samples: int) -> str | None:
    """Why to stop now, or None to keep sampling."""
    if len(samples) >= SLOW_CALL_SAMPLES and min(samples) > SLOW_CALL_S:
        return "slow call"
    if len(samples) >= MIN_SAMPLES and elapsed >= MIN_TIME_S and summarize(samples).iqr_ratio < TARGET_IQR_RATIO:
        return "stable"
    if elapsed >= max_time_s and len(samples) >= min(MIN_SAMPLES, max_samples):
        return "time cap"
    if len(samples) >= max_samples:
        return "count cap"
    return None


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


def time_cpu(fn: Callable[[], object], *, max_time_s: float = 5.0, max_samples: int = 1000) -> Measurement:
    """Time ``fn`` on the CPU in blocks of k calls; see the module docstring."""
    start = time.perf_counter_ns()
    fn()  # untimed: lazy initialization, first-touch page faults
    warmup_calls = _warmup_calls((time.perf_counter_ns() - start) * 1e-9)
    calls, start = 0, time.perf_counter_ns()
    while calls < warmup_calls or time.perf_counter_ns() - start < WARMUP_S * 1e9:
        fn()
        calls += 1
    per_call = (time.perf_counter_ns() - start) * 1e-9 / calls
    k = max(1, math.ceil(MIN_BLOCK_S / per_call)) if per_call > 0 else 1000

    # Preallocated: a list growing between calls is reallocated into the heap
    # among the op's own freed buffers and moves where the next call's land.
    # Whatever else is allocated between blocks is freed before the next one.
    samples = [0.0] * max(1, max_samples)
    n = 0
    began = time.perf_counter_ns()
    while True:
        t0 = time.perf_counter_ns()
        for _ in range(k):
            fn()
        t1 = time.perf_counter_ns()
        samples[n] = (t1 - t0) * 1e-9 / k
        n += 1
        reason = _stop(samples[:n], (t1 - began) * 1e-9, max_time_s, max_samples)
        if reason:
            break
        _settle(t1)
    kept = tuple(samples[:n])
    return Measurement(kept, k, "perf_counter_ns", reason, _warn_if_noisy(summarize(kept)))


def time_cuda(
    fn: Callable[[], object], device: torch.device | str = "cuda", *, max_time_s: float = 5.0, max_samples: int = 1000
) -> Measurement:
    """Time ``fn`` on a CUDA device with events, flushing L2 between calls."""
    device = torch.device(device)
    props = torch.cuda.get_device_properties(device)
    l2_bytes = getattr(props, "L2_cache_size", 0) or 64 * 2**20
    flush = torch.empty(2 * l2_bytes, dtype=torch.uint8, device=device)

    start = time.perf_counter()
    fn()  # untimed
    torch.cuda.synchronize(device)
    warmup_calls = _warmup_calls(time.perf_counter() - start)
    calls, start = 0, time.perf_counter()
    while calls < warmup_calls or time.perf_counter() - start < WARMUP_S:
        fn()
        calls += 1
        torch.cuda.synchronize(device)  # warm-up only: the host clock needs the work finished
    per_call = (time.perf_counter() - start) / calls
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
        reason = _stop(samples, elapsed, max_time_s, max_samples)
        if reason:
            break
    summary = summarize(samples)
    return Measurement(tuple(samples), 1, "cuda_event", reason, _warn_if_noisy(summary))


def time_callable(fn: Callable[[], object], device: torch.device | str = "cpu", **caps) -> Measurement:
    """Dispatch to `time_cpu` or `time_cuda` by device type, with Python's GC paused.

    As in ``timeit`` (and so ``torch.utils.benchmark``): a cyclic-GC pass
    landing in one sample is the interpreter's cost, not the kernel's.
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
