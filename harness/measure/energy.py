"""Energy per call on a CUDA device: NVML's energy counter across a window of back-to-back calls (``--energy``).

NVML's counter (millijoules since the driver loaded) ticks coarsely: on the H200 lent to this project, its
difference across one 50-ms timed block read 123 W to 1245 W for kernels of one kind (a 700 W part), so a
block's difference measures where the ticks fell, not the power. This pass aligns both ends of its window
to ticks: it runs the call in synchronized blocks of about `BLOCK_S`, reads the counter after each, and
takes the window from the first change it sees to the first change at least `WINDOW_S` later. The
energy between the two changes over the calls between them is the energy per call; each end is known to
within one block, 1 % of the window each. Calls run back to back, the L2 cache warm (unlike the timed
calls, which flush it): the steady state a model's layers run in.

O(`WINDOW_S` + the counter's tick period) seconds of the device per case, once (the first round): opt in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter

from .gpu_sensor import GpuReading, Sensor, sensor_for

WINDOW_S = 0.5  # the window between the two ticks, at least
BLOCK_S = 0.005  # calls between two counter reads (and synchronizes): about this long
MAX_WAIT_S = 3.0  # a counter that does not tick for this long under load gives no reading


@dataclass(frozen=True)
class Energy:
    """Energy per call (J), mean power over the window (W), the window (s) and the calls in it."""

    joules_per_call: float
    watts: float
    window_s: float
    calls: int


def energy_per_call(
    fn: Callable[[], object],
    synchronize: Callable[[], None],
    sensor: Sensor,
    per_call_s: float,
    *,
    window_s: float = WINDOW_S,
    max_wait_s: float = MAX_WAIT_S,
) -> Energy | None:
    """The `Energy` of ``fn`` (about ``per_call_s`` a call) between two ticks of ``sensor``'s counter, or None
    where the device has no counter or it did not tick within ``max_wait_s``."""
    per_block = max(1, round(BLOCK_S / max(per_call_s, 1e-7)))

    def block() -> float | None:
        for _ in range(per_block):
            fn()
        synchronize()
        return sensor.energy_j()

    before = sensor.energy_j()
    waited = perf_counter()
    while (first := block()) == before:  # under load until the counter ticks: the window opens on a tick
        if before is None or perf_counter() - waited > max_wait_s:
            return None
    opened, calls, last = perf_counter(), 0, first
    while True:
        reading, calls = block(), calls + per_block
        now = perf_counter()
        if first is None or reading is None or now - opened > window_s + max_wait_s:
            return None  # the counter stopped answering, or stopped ticking
        if reading != last and now - opened >= window_s:  # a tick in this very block, past the window: it closes
            break
        last = reading
    joules, seconds = reading - first, now - opened
    if joules <= 0:
        return None
    return Energy(joules / calls, joules / seconds, seconds, calls)


def case_energy(fn: Callable[[], object], device: str, per_call_s: float) -> Energy | None:
    """`energy_per_call` of a case's timed call on its CUDA ``device``, through NVML (None without it)."""
    import torch

    where = torch.device(device)
    sensor = sensor_for(where)
    return None if sensor is None else energy_per_call(fn, lambda: torch.cuda.synchronize(where), sensor, per_call_s)


def gpu_columns(clock: GpuReading | None, energy: Energy | None) -> dict[str, float | None]:
    """A row's GPU columns: the timed blocks' median SM clock, the energy pass's power and energy per call."""
    return {"sm_clock_mhz": clock.sm_clock_mhz if clock else None, "power_w": energy.watts if energy else None,
            "energy_j": energy.joules_per_call if energy else None}  # fmt: skip
