"""Timing on a CUDA device: events around each call, L2 flushed between calls.

A CUDA event pair around each call, with the L2 cache flushed (a buffer
twice its size zeroed) between calls and outside the events, and one
synchronize per block of calls; the host clock is never read without a
synchronize. Events time the device, which host preemption does not slow
unless the GPU runs dry; host load is still recorded. Warm-up and the
stopping rule are the CPU clock's (`harness.measure.sampling`).

A call whose device time is no longer than the host's time to queue it (the
GPU ran dry between kernels: small N, many small kernels) is launch-bound:
its events measured the host's launch rate, not the kernels. Such a call is
timed again as replays of its CUDA graph, one launch per call, and its row
says so (timer ``cuda_graph``, and a warning naming both times); one that
cannot be captured keeps its event timing and its "launch-bound" warning,
and the analysis leaves it out of fits and findings (`harness.analyze.launch`)
-- unless capture failed on a copy from pageable host memory: such a call
makes the host wait for the device, so its queueing time is no test of
launches ("host-synchronizing": kept, timed with events).

``graphs=True`` (``attnbench sweep --cuda-graphs``) times every call as
replays of its CUDA graph (tritonbench's cudagraph mode). A call that cannot
be captured (a host sync, a host-to-device copy, a fresh random generator)
is timed with plain events instead, and its row says why.

With NVML (``.[gpu]``), each block's SM clock is read (`harness.measure.gpu_sensor`):
a block whose clock sagged is dropped as throttled, and the measurement
carries the kept blocks' median clock.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import replace
from time import perf_counter  # bound before any plugin loads

import torch

from .gpu_sensor import THROTTLE_MARGIN, BlockMeter, Sensor, reading, sensor_for, throttled
from .interference import Interference, load_average, read_steal, steal_share
from .sampling import CAP_SAMPLES, MIN_TIME_S, TARGET_CI, Measurement, stop_rule, warm_up, with_warnings

LAUNCH_BOUND = 1.2  # device time within this factor of the host's queueing time: the GPU waited for the host
# torch's refusal to capture a copy from pageable host memory. Such a copy makes the host wait for the stream
# (CUDA's rule for pageable-to-device copies), so the host's time to queue the call holds the device's own:
# the launch-bound test cannot tell, and the events time the call as its user meets it.
HOST_COPY = "Cannot copy between CPU and CUDA tensors"
NVML = object()  # `time_cuda`'s default sensor: NVML's for the device, where it answers


def time_cuda(
    fn: Callable[[], object],
    device: torch.device | str = "cuda",
    *,
    graphs: bool = False,
    replay_launch_bound: bool = True,
    sensor: Sensor | None | object = NVML,
    **caps,
) -> Measurement:
    """Time ``fn`` on a CUDA device with events, flushing L2 between calls; ``graphs``: replays of its CUDA graph;
    a launch-bound call is timed again as graph replays unless ``replay_launch_bound`` is false (module
    docstring). ``caps`` (``max_time_s``,
    ``max_samples``, ``min_time_s``, ``cap_samples``, ``target_ci``, ``first_call_s``) as for
    `harness.measure.timing.time_cpu` (a captured graph's first replay is never made by the caller, so it is
    warmed up afresh). ``sensor``: what reads the clock (None: nothing)."""
    device = torch.device(device)
    sensor = sensor_for(device) if sensor is NVML else sensor
    clock, notes = "cuda_event", ()
    if graphs:
        fn, why_not = _captured_on(fn, device)
        clock, notes = ("cuda_event", (why_not,)) if why_not else ("cuda_graph", ())
    timed = _time_events(fn, device, clock, notes, sensor, **({**caps, "first_call_s": None} if graphs else caps))
    bound = launch_bound_warning(timed.samples, timed.enqueue) if clock == "cuda_event" else ()
    if not bound or graphs or not replay_launch_bound:  # asked for graphs and got none: the events' time, flagged
        return with_warnings(replace(timed.measurement, warnings=timed.measurement.warnings + bound))
    replay, why_not = _captured_on(fn, device)
    if why_not and HOST_COPY in why_not:
        waits = ("host-synchronizing: each call copies from pageable host memory, so the host waits for the device "
                 "and the launch-bound test does not apply; timed with events, as a caller meets it",)  # fmt: skip
        return with_warnings(replace(timed.measurement, warnings=timed.measurement.warnings + waits))
    if why_not:  # not capturable: the events' time stands, with both reasons
        return with_warnings(replace(timed.measurement, warnings=timed.measurement.warnings + bound + (why_not,)))
    replayed = _time_events(replay, device, "cuda_graph", (), sensor, **{**caps, "first_call_s": None})
    note = (f"timed as CUDA graph replays: under events the call was launch-bound "
            f"({bound[0].removeprefix('launch-bound: ').split(';')[0]})",)  # fmt: skip
    return with_warnings(replace(replayed.measurement, warnings=note + replayed.measurement.warnings))


class _Timed:
    """One timing loop's `Measurement` (warnings not yet added), and what decides a re-timing: its samples and
    the host's queueing time per call."""

    def __init__(self, measurement: Measurement, enqueue: list[float]) -> None:
        self.measurement, self.enqueue, self.samples = measurement, enqueue, list(measurement.samples)


def _time_events(
    fn: Callable[[], object],
    device: torch.device,
    clock: str,
    notes: tuple[str, ...],
    sensor: Sensor | None,
    *,
    max_time_s: float = 5.0,
    max_samples: int = 1000,
    min_time_s: float = MIN_TIME_S,
    cap_samples: int = CAP_SAMPLES,
    target_ci: float = TARGET_CI,
    first_call_s: float | None = None,
) -> _Timed:
    load, steal_before = load_average(), read_steal()
    meter = BlockMeter(sensor) if sensor is not None else None
    with torch.cuda.device(device):
        props = torch.cuda.get_device_properties(device)
        l2_bytes = getattr(props, "L2_cache_size", 0) or 64 * 2**20
        flush = torch.empty(2 * l2_bytes, dtype=torch.uint8, device=device)

        def synchronized() -> float:
            torch.cuda.synchronize(device)  # the host clock needs the work finished
            return perf_counter()

        per_call = warm_up(fn, synchronized, first_call_s)
        # Calls per block: about 50 ms of work between synchronizes, at least 1.
        batch = max(1, min(100, int(0.05 / max(per_call, 1e-6))))

        blocks: list[list[float]] = []
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
            if meter:
                meter.during()  # the queued calls are running now
            torch.cuda.synchronize(device)
            blocks.append([begin.elapsed_time(end) * 1e-3 for begin, end in events])
            elapsed += sum(blocks[-1])
            samples = [x for block in blocks for x in block]
            reason = stop_rule(samples, elapsed, max_time_s, max_samples, 0, min_time_s, cap_samples, target_ci)
            if reason:
                break
    dropped = throttled(meter.clocks) if meter else [False] * len(blocks)
    kept = tuple(x for block, out in zip(blocks, dropped, strict=True) if not out for x in block)
    rejected = tuple(x for block, out in zip(blocks, dropped, strict=True) if out for x in block)
    gpu = reading(meter.clocks, dropped) if meter else None
    if gpu and gpu.throttled_blocks:
        notes += (f"throttled: {gpu.throttled_blocks} of {len(blocks)} blocks ran with the SM clock more than "
                  f"{THROTTLE_MARGIN:.0%} below the median block's and were left out (the kept blocks' median: "
                  f"{gpu.sm_clock_mhz:.0f} MHz)",)  # fmt: skip
    interference = Interference(None, None, sum(dropped), load, steal_share(steal_before, read_steal()))
    return _Timed(Measurement(kept, 1, clock, reason, notes, rejected, interference, gpu), enqueue)


def _captured_on(fn: Callable[[], object], device: torch.device) -> tuple[Callable[[], object], str | None]:
    """`captured`, with ``device`` current: a graph is captured on the current device (cuda:1's case on cuda:1)."""
    with torch.cuda.device(device):
        return captured(fn, device)


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
