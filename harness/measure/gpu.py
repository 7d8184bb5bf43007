"""What a long-lived process learns about its GPUs without a CUDA context of its own.

A CUDA context costs about 0.5 GB of device memory for the life of the
process, and PyTorch's caching allocator keeps what the process allocated
(calibration's buffers: gigabytes). The sweep's parent, and each Ray node's
slot, live for the whole sweep beside the workers that time cases; memory they
held would shrink every case's budget and move "the largest N that fits", and
on a GPU in exclusive-process mode no worker could start. So they never touch
CUDA: a throwaway process reads what they need and exits with its context::

    python -m harness.measure.gpu facts        JSON: versions, TF32 flags, each device's name and free memory
    python -m harness.measure.ceilings cuda:0  JSON: the device's ceilings, measured and cached

`cuda_facts` and `isolated` run them; a process that has already initialised
CUDA (a worker) answers in-process instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import torch

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROBE_TIMEOUT_S = 300.0  # calibration on a cold GPU takes seconds; a wedged driver, forever
DRIVER_FILE = Path("/proc/driver/nvidia/version")  # the kernel module's own line: "... Kernel Module  580.159.04 ..."


def facts() -> dict:
    """This process's view of CUDA: versions, TF32 settings, visible devices (initialises CUDA when present)."""
    tf32 = {
        "matmul": torch.backends.cuda.matmul.allow_tf32,
        "cudnn": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
    found = {"cuda": torch.version.cuda, "cudnn": None, "driver": None, "tf32": tf32,
             "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "devices": []}  # fmt: skip
    if not torch.cuda.is_available():
        return found
    found["cudnn"] = torch.backends.cudnn.version()
    found["driver"] = driver_version()
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        free, total = torch.cuda.mem_get_info(index)
        found["devices"].append({
            "index": index, "name": props.name, "uuid": str(getattr(props, "uuid", "")) or None,
            "capability": f"{props.major}.{props.minor}", "total_bytes": total, "free_bytes": free,
            "l2_bytes": getattr(props, "L2_cache_size", None),
        })  # fmt: skip
    return found


def driver_version() -> str | None:
    """The NVIDIA driver's version ("580.159.04"): the kernel module's /proc file, else ``nvidia-smi``; None if neither.

    torch reports the CUDA runtime it was built with, not the driver it runs on.
    """
    try:
        found = re.search(r"Kernel Module(?: for \S+)?\s+([0-9]+(?:\.[0-9]+)+)", DRIVER_FILE.read_text())
        if found:
            return found.group(1)
    except OSError:
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        done = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=30)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = done.stdout.split()
    return lines[0] if done.returncode == 0 and lines else None


def isolated(module: str, *args: str) -> dict:
    """``python -m module args`` in a throwaway process, its JSON output; `RuntimeError` with its last line if it fails."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}
    what = " ".join([module, *args])
    try:
        done = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, env=env,
                              timeout=PROBE_TIMEOUT_S)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"the GPU probe ({what}) gave no answer in {PROBE_TIMEOUT_S:g} s") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the GPU probe ({what}) failed: {last}")
    return json.loads(done.stdout)


def cuda_facts() -> dict:
    """`facts`, from a throwaway process unless this one has initialised CUDA already. Free memory is
    read then, with the probe's own context allocated: what a worker's context leaves is about that."""
    return facts() if torch.cuda.is_initialized() else isolated("harness.measure.gpu", "facts")


def device_index(device: str | torch.device) -> int:
    """The index of a CUDA device ("cuda" is the current one, 0 in a process that has not chosen)."""
    device = torch.device(device)
    if device.index is not None:
        return device.index
    return torch.cuda.current_device() if torch.cuda.is_initialized() else 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["facts"]:
        print(json.dumps(facts()))
        return 0
    print("usage: python -m harness.measure.gpu facts", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
