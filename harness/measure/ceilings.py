"""The machine's measured limits: large-matmul GFLOP/s per dtype and large-copy GB/s.

Every variant's achieved GFLOP/s is read as a fraction of these, so a number
like "180 GFLOP/s" says how close it is to what this machine can physically do.
Results are cached per (device name, threads on a CPU, torch version) in
``$XDG_CACHE_HOME/attnbench/ceilings.json`` (default ``~/.cache``), because
calibration takes seconds and the limits do not change between runs.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from .device import device_name
from .gpu import isolated
from .timing import time_callable

MATMUL_SIZE = {"cpu": 2048, "cuda": 8192}
COPY_BYTES = {"cpu": 256 * 2**20, "cuda": 2 * 2**30}
DTYPES = {"cpu": ("float32", "bfloat16", "float64"), "cuda": ("float32", "bfloat16", "float16")}


def cache_path() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "attnbench" / "ceilings.json"


def cache_key(kind: str, name: str, threads: int) -> str:
    """The cache entry of a device: its kind and model, torch's version, and for a CPU the thread count
    (a GPU's ceilings do not depend on the host's threads)."""
    return f"{kind}|{name}|" + (f"threads={threads}|" if kind == "cpu" else "") + f"torch={torch.__version__}"


def _cache_key(device: str) -> str:
    return cache_key(torch.device(device).type, device_name(device), torch.get_num_threads())


def measure_ceilings(device: str = "cpu") -> dict:
    """Time a large square matmul per dtype and a large copy; returns GFLOP/s and GB/s."""
    kind = torch.device(device).type
    n = MATMUL_SIZE[kind]
    matmul = {}
    for name in DTYPES[kind]:
        dtype = getattr(torch, name)
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        m = time_callable(lambda a=a, b=b: a @ b, device, max_time_s=2.0)
        matmul[name] = 2 * n**3 / m.median / 1e9
    src = torch.empty(COPY_BYTES[kind] // 4, device=device)
    src.fill_(1.0)
    dst = torch.empty_like(src)
    m = time_callable(lambda: dst.copy_(src), device, max_time_s=2.0)
    copy = 2 * src.numel() * 4 / m.median / 1e9  # bytes read plus bytes written
    return {
        "device": kind,
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "matmul_gflops": matmul,
        "matmul_size": n,
        "copy_gbps": copy,
        "copy_bytes": COPY_BYTES[kind],
    }


def _read_cache() -> dict:
    try:
        return json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}


def cached_ceilings(device: str = "cpu") -> dict | None:
    """The cached ceilings for this device, thread count and torch, or None."""
    return _read_cache().get(_cache_key(device))


def calibrate(device: str = "cpu", *, refresh: bool = False) -> dict:
    """The ceilings for this device: from the cache, or measured and cached when
    missing or when ``refresh`` is set."""
    cached = None if refresh else cached_ceilings(device)
    if cached is not None:
        return cached
    if torch.device(device).type == "cuda" and not torch.cuda.is_initialized():
        return isolated("harness.measure.ceilings", device)  # measured and cached by a throwaway process: no context here
    measured = measure_ceilings(device)
    cache = _read_cache()
    cache[_cache_key(device)] = measured
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(cache, indent=2))
    tmp.replace(path)  # atomic: a concurrent reader sees the old or the new file, never half
    return measured


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.measure.ceilings DEVICE``: calibrate (or read the cache) and print the JSON."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m harness.measure.ceilings DEVICE", file=sys.stderr)
        return 2
    if torch.device(args[0]).type == "cuda":
        torch.cuda.init()  # this process holds the context: calibrate here, not in yet another one
    print(json.dumps(calibrate(args[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
