"""Peak memory of one call, measured in a pass of its own (never during timing).

CUDA: the caching allocator's own counter, ``max_memory_allocated`` after
``reset_peak_memory_stats``, minus what was allocated before the call.

CPU: the PyTorch allocator's allocation and free events, recorded by the
profiler with ``profile_memory=True``, summed in time order; the peak is the
running sum's maximum. This counts tensor bytes exactly (what an analytic
model predicts), unlike process RSS, which glibc's page reuse blurs, or
``tracemalloc``, which does not see tensor storage at all.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.autograd.profiler import profile

# Kineto prints "profiler_start/stop" lines on stderr at every profile unless
# its log level is raised; it reads the variable when profiling first starts.
os.environ.setdefault("KINETO_LOG_LEVEL", "6")


@dataclass(frozen=True)
class PeakMemory:
    """Bytes allocated at the call's high-water mark beyond those live before it."""

    peak_bytes: int
    method: str  # "cpu-profiler" or "cuda-max-allocated"


def peak_memory(fn: Callable[[], object], device: str | torch.device = "cpu") -> PeakMemory:
    """Run ``fn()`` once and return its peak extra memory on ``device``.

    The result of ``fn`` is dropped inside the measured region, so a returned
    output counts towards the peak (it was allocated) but nothing leaks out.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return _cuda_peak(fn, device)
    if device.type == "cpu":
        return _cpu_peak(fn)
    raise ValueError(f"peak_memory: unsupported device {device}")


def warm_peak_bytes(fn: Callable[[], object], device: str | torch.device = "cpu") -> int:
    """Peak extra bytes of one ``fn()`` in inference mode, after an untimed call
    (so lazy initialization and first-call caches are not counted)."""
    with torch.inference_mode():
        fn()
        return peak_memory(fn, device).peak_bytes


def _cuda_peak(fn: Callable[[], object], device: torch.device) -> PeakMemory:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    result = fn()
    torch.cuda.synchronize(device)  # the kernels, and so their allocations, have finished
    del result
    return PeakMemory(torch.cuda.max_memory_allocated(device) - base, "cuda-max-allocated")


def _cpu_peak(fn: Callable[[], object]) -> PeakMemory:
    # The autograd profiler that torch.profiler.profile wraps, used directly: the
    # wrapper's first start imports torch._inductor (about a second in every
    # worker process) only to read a CUDA-graphs setting; the events are the same.
    with profile(use_kineto=True, profile_memory=True) as prof:
        result = fn()
        del result
    return PeakMemory(allocation_peak(prof), "cpu-profiler")


def allocation_peak(prof: profile) -> int:
    """Maximum of the running sum of CPU allocation (+) and free (-) sizes, in time order."""
    events = [
        e for e in prof.kineto_results.events() if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU
    ]
    events.sort(key=lambda e: e.start_ns())
    running = peak = 0
    for e in events:
        running += e.nbytes()
        peak = max(peak, running)
    return peak
