"""The GPU's power and SM clock over each timed block, read through NVML (``nvidia-ml-py``, ``.[gpu]``).

A block is one batch of calls between two synchronizes (`harness.measure.cuda_timing`). `BlockMeter` reads
the device's energy counter (millijoules since the driver loaded; Volta and later) at the block's start and
end, and its SM clock and power once while the queued calls run (after queueing, before the synchronize:
a clock read after it would catch the GPU idling down). A block whose SM clock ran more than
`THROTTLE_MARGIN` below the median block's was throttled (power or thermal capping, a clock change by
another tenant) and is left out, as a preempted block is on the CPU. `GpuReading` sums what was kept: mean
power is the kept blocks' energy over their wall time (the counter, not the 1-second-averaged power
reading, where the device has one); a row's energy per call is that power times its median time.

`Sensor` is the interface the timer reads: `sensor_for` gives NVML's for a CUDA device, or None where
NVML or the device's counters are missing (the row's power columns then stay empty). Tests hand the timer
a sensor of their own.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from time import perf_counter
from typing import Protocol

THROTTLE_MARGIN = 0.10  # a block's SM clock this far below the median block's: throttled


class Sensor(Protocol):
    """One GPU's readings; each method returns None where the device does not report it."""

    def energy_j(self) -> float | None:
        """Energy the device used since the driver loaded (joules; a counter)."""

    def power_w(self) -> float | None:
        """Power the device draws now (watts)."""

    def sm_clock_mhz(self) -> float | None:
        """The SM clock now (MHz)."""


@dataclass(frozen=True)
class Block:
    """One timed block's readings: its wall seconds, the energy counter's rise over it (None without a
    counter), and the power and SM clock read while it ran."""

    seconds: float
    joules: float | None
    watts: float | None
    clock_mhz: float | None


class BlockMeter:
    """Reads a `Sensor` around timed blocks: `begin` before queueing, `during` after queueing and before the
    synchronize, `end` after it; `blocks` holds one `Block` per block."""

    def __init__(self, sensor: Sensor) -> None:
        self.sensor = sensor
        self.blocks: list[Block] = []
        self._start: tuple[float, float | None] = (0.0, None)
        self._during: tuple[float | None, float | None] = (None, None)

    def begin(self) -> None:
        self._start = (perf_counter(), self.sensor.energy_j())

    def during(self) -> None:
        self._during = (self.sensor.power_w(), self.sensor.sm_clock_mhz())

    def end(self) -> None:
        began, energy = self._start
        now, later = perf_counter(), self.sensor.energy_j()
        joules = later - energy if energy is not None and later is not None else None
        self.blocks.append(Block(now - began, joules, *self._during))


def throttled(blocks: list[Block]) -> list[bool]:
    """Per block: its SM clock ran more than `THROTTLE_MARGIN` below the median block's (False without clocks)."""
    clocks = [b.clock_mhz for b in blocks if b.clock_mhz is not None]
    if not clocks:
        return [False] * len(blocks)
    floor = (1 - THROTTLE_MARGIN) * statistics.median(clocks)
    return [b.clock_mhz is not None and b.clock_mhz < floor for b in blocks]


@dataclass(frozen=True)
class GpuReading:
    """Over a measurement's kept blocks: mean power (W), median SM clock (MHz), and how many blocks were
    left out as throttled."""

    power_w: float | None
    sm_clock_mhz: float | None
    throttled_blocks: int


def reading(blocks: list[Block], dropped: list[bool]) -> GpuReading:
    """The `GpuReading` of ``blocks``, less those ``dropped``: power from the energy counter where every kept
    block has it (energy over wall time), else the mean of the power read during each block."""
    kept = [b for b, out in zip(blocks, dropped, strict=True) if not out]
    seconds = sum(b.seconds for b in kept)
    if kept and all(b.joules is not None for b in kept) and seconds > 0 and sum(b.joules for b in kept) > 0:
        power = sum(b.joules for b in kept) / seconds
    else:
        watts = [b.watts for b in kept if b.watts is not None]
        power = statistics.fmean(watts) if watts else None
    clocks = [b.clock_mhz for b in kept if b.clock_mhz is not None]
    return GpuReading(power, statistics.median(clocks) if clocks else None, sum(dropped))


class NvmlSensor:
    """NVML's readings of one device, found by its UUID (CUDA's device order need not be NVML's)."""

    def __init__(self, uuid: str) -> None:
        import pynvml

        self._nvml = pynvml
        pynvml.nvmlInit()
        self._handle = pynvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}")

    def _read(self, call, *args) -> float | None:
        try:
            return float(call(self._handle, *args))
        except self._nvml.NVMLError:  # not supported on this device (a MIG slice has no counters of its own)
            return None

    def energy_j(self) -> float | None:
        mj = self._read(self._nvml.nvmlDeviceGetTotalEnergyConsumption)
        return None if mj is None else mj / 1e3

    def power_w(self) -> float | None:
        mw = self._read(self._nvml.nvmlDeviceGetPowerUsage)
        return None if mw is None else mw / 1e3

    def sm_clock_mhz(self) -> float | None:
        return self._read(self._nvml.nvmlDeviceGetClockInfo, self._nvml.NVML_CLOCK_SM)


_SENSORS: dict[str, NvmlSensor | None] = {}


def sensor_for(device) -> Sensor | None:
    """NVML's `Sensor` for a CUDA ``device`` (a torch.device), or None where ``nvidia-ml-py`` is not installed
    or NVML does not answer. One per device and process."""
    import torch

    uuid = str(torch.cuda.get_device_properties(device).uuid)
    if uuid not in _SENSORS:
        try:
            _SENSORS[uuid] = NvmlSensor(uuid)
        except Exception:  # no pynvml, no NVML library, a driver that refuses: no readings, the timing stands
            _SENSORS[uuid] = None
    return _SENSORS[uuid]
