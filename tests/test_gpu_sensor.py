"""The GPU's clock over timed blocks (harness.measure.gpu_sensor) and its energy per call (harness.measure.energy).

The CPU tests drive them with a scripted sensor (a device whose counter and clocks are written out by
hand, the counter ticking as NVML's does); the CUDA ones time real kernels with a scripted sensor whose clock
sags in one block, and read NVML's where it answers."""

from __future__ import annotations

import math
from time import perf_counter

import pytest
import torch

from harness.measure.energy import energy_per_call
from harness.measure.gpu_sensor import BlockMeter, reading, throttled

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


class Scripted:
    """A sensor whose readings are given: the energy counter of a device drawing ``watts`` that ticks every
    ``tick_s`` (0: continuously), and the SM clock of each block in turn."""

    def __init__(self, clocks: list[float] = (), watts: float = 500.0, tick_s: float = 0.0) -> None:
        self.clocks, self.watts, self.tick_s = list(clocks), watts, tick_s
        self.t0 = perf_counter()

    def energy_j(self) -> float | None:
        elapsed = perf_counter() - self.t0
        if self.tick_s:
            elapsed = math.floor(elapsed / self.tick_s) * self.tick_s  # the counter as of its last tick
        return elapsed * self.watts

    def sm_clock_mhz(self) -> float | None:
        return self.clocks.pop(0) if self.clocks else 1980.0


def test_a_block_whose_clock_sagged_is_throttled_and_the_rest_are_not():
    clocks = [1980, 1965, 1500, 1980, 1790]
    assert throttled(clocks) == [False, False, True, False, False]  # 1790 is within 10 % of the 1965 median
    assert throttled([None] * 3) == [False] * 3  # no clocks: nothing to judge
    got = reading(clocks, throttled(clocks))
    assert got.sm_clock_mhz == pytest.approx((1965 + 1980) / 2) and got.throttled_blocks == 1


def test_the_meter_reads_the_clock_during_each_block():
    meter = BlockMeter(Scripted([1980, 1200]))
    meter.during()
    meter.during()
    assert meter.clocks == [1980, 1200]


def _busy(seconds: float):
    """A call that takes ``seconds`` of wall time: a stand-in for a kernel the counter sees."""

    def call():
        end = perf_counter() + seconds
        while perf_counter() < end:
            pass

    return call


@pytest.mark.parametrize(("tick_s", "window_s"), [(0.0, 0.3), (0.1, 0.3), (0.1, 0.35), (0.07, 0.3)])
def test_energy_is_read_between_two_ticks_of_the_counter(tick_s, window_s):
    # 500 W and 1 ms a call: 0.5 J a call. A counter that ticks every 100 ms, read across one 50-ms block,
    # says 0 W or 1000 W; between two of its ticks the window holds whole tick periods, whether or not the
    # window's length is a multiple of the tick's.
    sensor = Scripted(watts=500.0, tick_s=tick_s)
    energy = energy_per_call(_busy(1e-3), lambda: None, sensor, 1e-3, window_s=window_s)
    assert energy.watts == pytest.approx(500.0, rel=0.05)
    assert energy.joules_per_call == pytest.approx(0.5, rel=0.05)
    assert energy.window_s >= window_s and energy.calls >= 0.8 * window_s / 1e-3


def test_no_counter_or_one_that_never_ticks_gives_no_energy():
    class Frozen(Scripted):
        def energy_j(self):
            return 42.0

    class Absent(Scripted):
        def energy_j(self):
            return None

    class Vanishing(Scripted):  # answers, then stops (a driver reset): no reading, and no exception
        def energy_j(self):
            return super().energy_j() if perf_counter() - self.t0 < 0.05 else None

    assert energy_per_call(_busy(1e-4), lambda: None, Frozen(), 1e-4, max_wait_s=0.05) is None
    assert energy_per_call(_busy(1e-4), lambda: None, Absent(), 1e-4) is None
    assert energy_per_call(_busy(1e-4), lambda: None, Vanishing(), 1e-4, window_s=0.2) is None


@needs_cuda
def test_cuda_blocks_run_at_a_sagging_clock_are_left_out():
    from harness.measure.cuda_timing import time_cuda

    x = torch.randn(2048, 2048, device="cuda")
    m = time_cuda(lambda: x @ x, sensor=Scripted([1980, 1980, 900] + [1980] * 200), max_time_s=0.3, min_time_s=0.2)
    assert m.gpu.throttled_blocks == 1 and m.interference.discarded == 1 and m.rejected
    assert any(w.startswith("throttled: 1 of") for w in m.warnings) and m.gpu.sm_clock_mhz == 1980


@needs_cuda
def test_cuda_energy_per_call_through_nvml_where_it_answers():
    from harness.measure.energy import case_energy
    from harness.measure.gpu_sensor import sensor_for

    if sensor_for(torch.device("cuda")) is None:
        pytest.skip("NVML (nvidia-ml-py) does not answer here")
    x = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    energy = case_energy(lambda: x @ x, "cuda", 2e-3)
    assert energy is not None and 50.0 < energy.watts < 1500.0  # a matmul-bound H100/H200 draws ~400-700 W
    assert energy.joules_per_call == pytest.approx(energy.watts * energy.window_s / energy.calls)


@needs_cuda
def test_a_launch_bound_call_is_timed_again_as_graph_replays():
    from harness.measure.cuda_timing import time_cuda

    x = torch.randn(64, device="cuda")

    def many_small_kernels():
        y = x
        for _ in range(200):  # each kernel done before the host queues the next
            y = y + 1
        return y

    m = time_cuda(many_small_kernels, sensor=None, max_time_s=0.2)
    assert m.clock == "cuda_graph"
    assert m.warnings[0].startswith("timed as CUDA graph replays: under events the call was launch-bound")


def test_energy_is_asked_for_cuda_cases_only():
    from harness.measure.case import Case
    from harness.measure.parsers import SweepError
    from harness.run.sweep import build_sweep

    with pytest.raises(ValueError, match="Case.energy is true only on a CUDA device"):
        Case("sdpa", 64, energy=True)
    with pytest.raises(SweepError, match="--energy reads a GPU's energy counter; this sweep's devices are cpu"):
        build_sweep(energy=True)
    assert Case("sdpa", 64, threads=1).case_id == Case("sdpa", 64, threads=1, energy=False).case_id  # off: older ids
    # A GPU preset rehearsed on the CPU (tests/gpu/session.sh --dry-run): its grids' energy is for CUDA cases only.
    from harness.run.sweep import expand

    rehearsal = expand(build_sweep(preset="gpu", devices=["cpu"], seq_lens=[64], dtypes=["float32"]))
    assert rehearsal and not any(case.energy for case in rehearsal)
