"""The GPU's power and clocks over timed blocks (harness.measure.gpu_sensor), and what the rows make of them.

The CPU tests drive `BlockMeter` with a scripted sensor (a device whose counters are written out by hand);
the CUDA ones time real kernels with a scripted sensor whose clock sags in one block, and with NVML's."""

from __future__ import annotations

import pytest
import torch

from harness.measure.gpu_sensor import Block, BlockMeter, reading, throttled
from harness.measure.rounds import Machine, add_round

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


class Scripted:
    """A sensor whose readings are given: an energy counter rising by ``watts`` per wall second, and the SM
    clock of each block in turn (one value per `during` call)."""

    def __init__(self, clocks: list[float], watts: float = 500.0, counter: bool = True) -> None:
        from time import perf_counter

        self.clocks, self.watts, self.counter, self.now = list(clocks), watts, counter, perf_counter
        self.t0 = perf_counter()

    def energy_j(self) -> float | None:
        return (self.now() - self.t0) * self.watts if self.counter else None

    def power_w(self) -> float | None:
        return self.watts

    def sm_clock_mhz(self) -> float | None:
        return self.clocks.pop(0) if self.clocks else 1980.0


def test_a_block_whose_clock_sagged_is_throttled_and_the_rest_are_not():
    blocks = [Block(0.05, 25.0, 500.0, c) for c in (1980, 1965, 1500, 1980, 1790)]
    assert throttled(blocks) == [False, False, True, False, False]  # 1790 is within 10 % of the 1965 median
    assert throttled([Block(0.05, None, None, None)] * 3) == [False] * 3  # no clocks: nothing to judge


def test_power_is_the_kept_blocks_energy_over_their_time():
    blocks = [Block(0.05, 30.0, 999.0, 1980), Block(0.05, 20.0, 999.0, 1980), Block(0.10, 90.0, 999.0, 1200)]
    got = reading(blocks, throttled(blocks))
    assert got.power_w == pytest.approx(500.0)  # (30 + 20) J over 0.1 s; the throttled block's 900 W left out
    assert got.sm_clock_mhz == 1980 and got.throttled_blocks == 1
    without_counter = [Block(0.05, None, 400.0, 1980), Block(0.05, None, 600.0, 1980)]
    assert reading(without_counter, [False, False]).power_w == pytest.approx(500.0)  # the readings' mean instead


def test_the_meter_reads_the_sensor_around_each_block():
    sensor = Scripted([1980, 1200], watts=300.0)
    meter = BlockMeter(sensor)
    for _ in range(2):
        meter.begin()
        sum(range(100_000))  # some wall time for the counter to rise over
        meter.during()
        meter.end()
    first, second = meter.blocks
    assert first.clock_mhz == 1980 and second.clock_mhz == 1200 and first.watts == 300.0
    assert first.joules == pytest.approx(first.seconds * 300.0, rel=0.05)


def test_rounds_average_the_power_and_energy_follows_the_time():
    def timing(median: float, power: float) -> dict:
        return {"status": "ok", "round_medians_s": [median], "time_samples_s": [median] * 6, "round_canary_s": [None],
                "power_w": power, "sm_clock_mhz": 1980.0, "warnings": []}  # fmt: skip

    record = {"variant": "sdpa", "device": "cuda", "threads": 1, "round_medians_s": [], "time_samples_s": [],
              "round_canary_s": [], "status": "ok"}  # fmt: skip
    machine = Machine({}, 0.0, 0)
    for median, power in ((1e-3, 400.0), (1e-3, 600.0)):
        record = add_round(record, timing(median, power), machine)
    assert record["power_w"] == pytest.approx(500.0)
    assert record["energy_j"] == pytest.approx(500.0 * record["time_median_s"])


@needs_cuda
def test_cuda_blocks_run_at_a_sagging_clock_are_left_out():
    from harness.measure.cuda_timing import time_cuda

    x = torch.randn(2048, 2048, device="cuda")
    m = time_cuda(lambda: x @ x, sensor=Scripted([1980, 1980, 900] + [1980] * 200), max_time_s=0.3, min_time_s=0.2)
    assert m.gpu.throttled_blocks == 1 and m.interference.discarded == 1 and m.rejected
    assert any(w.startswith("throttled: 1 of") for w in m.warnings)
    assert m.gpu.power_w == pytest.approx(500.0, rel=0.05)


@needs_cuda
def test_cuda_rows_carry_nvml_power_where_it_answers():
    from harness.measure.cuda_timing import time_cuda
    from harness.measure.gpu_sensor import sensor_for

    if sensor_for(torch.device("cuda")) is None:
        pytest.skip("NVML (nvidia-ml-py) does not answer here")
    x = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
    m = time_cuda(lambda: x @ x, max_time_s=0.3)
    assert 20.0 < m.gpu.power_w < 2000.0 and 100.0 < m.gpu.sm_clock_mhz < 4000.0


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
