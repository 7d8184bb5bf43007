"""The devices a case can run on: names, availability, free memory, CPU count."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


class DeviceError(ValueError):
    """A device this machine does not have; the message is one line saying why."""


def check_device(name: str) -> str:
    """``name`` when this machine has that device, else a `DeviceError` saying why not."""
    if name not in ("cpu", "cuda"):
        raise DeviceError(f"unknown device {name!r}; use cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("device cuda is not available on this machine (torch sees no CUDA device)")
    return name


def device_name(device: str) -> str:
    """Human name of the device: the GPU's name, or the CPU model from /proc/cpuinfo."""
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
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
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return free
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("cannot read MemAvailable from /proc/meminfo")


def cpu_count() -> int:
    """Logical CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
