"""Timing on a CUDA device: events around each call, L2 flushed between calls.

A CUDA event pair around each call, with the L2 cache flushed (a buffer
twice its size zeroed) between calls and outside the events, and one
synchronize per batch of calls; the host clock is never read without a
synchronize. Events time the device, which host preemption does not slow
unless the GPU runs dry; host load is still recorded, and a call whose device
time is no longer than the host's time to queue it (the GPU ran dry between
kernels) gets a "launch-bound" warning on its row. Warm-up and the
stopping rule are the CPU clock's (`harness.measure.sampling`).

``graphs=True`` (``attnbench sweep --cuda-graphs``) captures the call once in
a CUDA graph and times its replays: one launch per call, so the events time
the kernels without the host's launch gaps (tritonbench's cudagraph mode).
A call that cannot be captured (a host sync, a host-to-device copy, a fresh
random generator) is timed with plain events instead, and its row says why.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from time import perf_counter  # bound before any plugin loads

import torch

from .interference import Interference, load_average, read_steal, steal_share
from .sampling import CAP_SAMPLES, MIN_TIME_S, TARGET_CI, Measurement, stop_rule, warm_up, with_warnings

LAUNCH_BOUND = 1.2  # device time within this factor of the host's queueing time: the GPU waited for the host


def time_cuda(
    fn: Callable[[], object],
    device: torch.device | str = "cuda",
    *,
    max_time_s: float = 5.0,
    max_samples: int = 1000,
    min_time_s: float = MIN_TIME_S,
    graphs: bool = False,
    cap_samples: int = CAP_SAMPLES,
    target_ci: float = TARGET_CI,
    first_call_s: float | None = None,
) -> Measurement:
    """Time ``fn`` on a CUDA device with events, flushing L2 between calls; ``graphs``: replays of its CUDA graph.
    ``cap_samples``, ``target_ci`` and ``first_call_s`` as for `harness.measure.timing.time_cpu` (a captured graph's first
    replay is never made by the caller, so it is warmed up afresh)."""
    device = torch.device(device)
    load, steal_before = load_average(), read_steal()
    clock, notes = "cuda_event", ()
    with torch.cuda.device(device):
        if graphs:
            fn, why_not = captured(fn, device)
            clock, notes = ("cuda_event", (why_not,)) if why_not else ("cuda_graph", ())
        props = torch.cuda.get_device_properties(device)
        l2_bytes = getattr(props, "L2_cache_size", 0) or 64 * 2**20
        flush = torch.empty(2 * l2_bytes, dtype=torch.uint8, device=device)

        def synchronized() -> float:
            torch.cuda.synchronize(device)  # the host clock needs the work finished
            return perf_counter()

        per_call = warm_up(fn, synchronized, None if graphs else first_call_s)
        # Calls per batch: about 50 ms of work between synchronizes, at least 1.
        batch = max(1, min(100, int(0.05 / max(per_call, 1e-6))))

        samples: list[float] = []
        enqueue: list[float] = []  # host seconds to queue each call
        elapsed = 0.0
        while True:
            events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(batch)]
            for begin, end in events:
                flush.zero_()  # evict the inputs from L2: every call starts cold, as in a real model
                queued = perf_counter()
                begin.record()
                fn()
                end.record()
                enqueue.append(perf_counter() - queued)
            torch.cuda.synchronize(device)
            batch_samples = [begin.elapsed_time(end) * 1e-3 for begin, end in events]
            samples.extend(batch_samples)
            elapsed += sum(batch_samples)
            reason = stop_rule(samples, elapsed, max_time_s, max_samples, 0, min_time_s, cap_samples, target_ci)
            if reason:
                break
    interference = Interference(None, None, 0, load, steal_share(steal_before, read_steal()))
    warnings = notes + (launch_bound_warning(samples, enqueue) if clock == "cuda_event" else ())
    return with_warnings(Measurement(tuple(samples), 1, clock, reason, warnings, (), interference))


def captured(fn: Callable[[], object], device: torch.device) -> tuple[Callable[[], object], str | None]:
    """(the replay of ``fn``'s CUDA graph, None), or (``fn``, why it could not be captured).

    Warmed up on a side stream first, as capture requires (lazy
    initialisation, cuBLAS workspaces and compiled kernels happen outside the
    graph). The graph's outputs live in its private memory pool, released
    with the graph when the timing ends.
    """
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.stream(side):
            for _ in range(3):
                fn()
        torch.cuda.current_stream(device).wait_stream(side)
        with torch.cuda.graph(graph):
            fn()
    except Exception as exc:  # capture refused: the call does something a graph cannot replay
        torch.cuda.synchronize(device)
        first = (str(exc).strip().splitlines() or [""])[0]
        return fn, f"no CUDA graph ({type(exc).__name__}: {first}); timed with events, launch gaps included"
    return graph.replay, None


def launch_bound_warning(samples: list[float], enqueue: list[float]) -> tuple[str, ...]:
    """A warning when the device time of a call is no longer than the host's time to queue it.

    Events bracket the device's work; when the GPU finishes each kernel before
    the host has queued the next (a loop of small kernels at small N), the gap
    between events is the host's launch rate, not the kernel's speed.
    """
    device, host = statistics.median(samples), statistics.median(enqueue)
    if device > LAUNCH_BOUND * host:
        return ()
    return (f"launch-bound: {device * 1e6:.0f} us on the device per call against {host * 1e6:.0f} us for the host "
            "to queue it; the events measured the launches, not the kernels",)  # fmt: skip
