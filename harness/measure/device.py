"""The devices a case can run on: names, availability, free memory, CPU count."""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

import torch

from .gpu import cuda_facts, device_index


class DeviceError(ValueError):
    """A device this machine does not have; the message is one line saying why."""


def check_device(name: str) -> str:
    """``name`` ("cpu", "cuda" or "cuda:N") when this machine has that device, else a `DeviceError` saying why not.

    Answers without initialising CUDA (the device count comes from the driver), so a
    sweep's parent can check its devices and still hold no CUDA context.
    """
    kind, _, index = name.partition(":")
    if kind not in ("cpu", "cuda") or (kind == "cpu" and index) or (index and not index.isdigit()):
        raise DeviceError(f"unknown device {name!r}; use cpu, cuda or cuda:N")
    if kind == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {name} is not available on this machine (torch sees no CUDA device)")
    if index and int(index) >= torch.cuda.device_count():
        raise DeviceError(f"device {name} is not available: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return name


def device_name(device: str) -> str:
    """Human name of the device: the GPU's name, or the CPU model from /proc/cpuinfo.

    A process without a CUDA context asks a throwaway one, once (`harness.measure.gpu`).
    """
    if torch.device(device).type == "cuda":
        if torch.cuda.is_initialized():
            return torch.cuda.get_device_name(torch.device(device))
        if not torch.cuda.is_available():
            raise RuntimeError(f"{device}: this machine has no CUDA device")
        return _probed_gpus()[device_index(device)]["name"]
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def available_bytes(device: str) -> int:
    """Free memory on ``device`` now: CUDA's free bytes, or the kernel's MemAvailable."""
    if torch.device(device).type == "cuda":
        if torch.cuda.is_initialized():
            return torch.cuda.mem_get_info(torch.device(device))[0]
        return cuda_facts()["devices"][device_index(device)]["free_bytes"]  # read now, not cached
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("cannot read MemAvailable from /proc/meminfo")


@functools.cache
def _probed_gpus() -> list[dict]:
    return cuda_facts()["devices"]


def cpu_count() -> int:
    """Logical CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
