"""The GPU's SM clock over each timed block, and its energy counter, read through NVML (``nvidia-ml-py``).

A block is one batch of calls between two synchronizes (`harness.measure.cuda_timing`). `BlockMeter` reads
the SM clock once per block while the queued calls run (after queueing, before the synchronize: a clock
read after it would catch the GPU idling down). A block whose clock ran more than `THROTTLE_MARGIN` below
the median block's was throttled (power or thermal capping, a clock change by another tenant) and is left
out, as a preempted block is on the CPU. Energy is measured apart, over a window of its own
(`harness.measure.energy`): the counter ticks too coarsely for a block.

`Sensor` is the interface both read: `sensor_for` gives NVML's for a CUDA device, or None where NVML or
the device's counters are missing (the row's columns then stay empty). Tests hand them sensors of their own.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Protocol

THROTTLE_MARGIN = 0.10  # a block's SM clock this far below the median block's: throttled


class Sensor(Protocol):
    """One GPU's readings; each method returns None where the device does not report it."""

    def energy_j(self) -> float | None:
        """Energy the device used since the driver loaded (joules; a counter that ticks)."""

    def sm_clock_mhz(self) -> float | None:
        """The SM clock now (MHz)."""


class BlockMeter:
    """Reads a `Sensor`'s SM clock during each timed block (`during`: after queueing, before the synchronize);
    `clocks` holds one reading per block (None where the device gives none)."""

    def __init__(self, sensor: Sensor) -> None:
        self.sensor = sensor
        self.clocks: list[float | None] = []

    def during(self) -> None:
        self.clocks.append(self.sensor.sm_clock_mhz())


def throttled(clocks: list[float | None]) -> list[bool]:
    """Per block: its SM clock ran more than `THROTTLE_MARGIN` below the median block's (False without clocks)."""
    known = [c for c in clocks if c is not None]
    if not known:
        return [False] * len(clocks)
    floor = (1 - THROTTLE_MARGIN) * statistics.median(known)
    return [c is not None and c < floor for c in clocks]


@dataclass(frozen=True)
class GpuReading:
    """Over a measurement's kept blocks: the median SM clock (MHz), and how many blocks were left out as
    throttled."""

    sm_clock_mhz: float | None
    throttled_blocks: int


def reading(clocks: list[float | None], dropped: list[bool]) -> GpuReading:
    """The `GpuReading` of the blocks' ``clocks``, less those ``dropped``."""
    kept = [c for c, out in zip(clocks, dropped, strict=True) if not out and c is not None]
    return GpuReading(statistics.median(kept) if kept else None, sum(dropped))


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
