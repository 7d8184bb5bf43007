"""Run-wide facts, captured once per run into ``env.json`` beside the results table."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

from .device import device_name
from .gpu import cuda_facts

PROJECT_ROOT = Path(__file__).resolve().parents[2]
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_commit(root: Path = PROJECT_ROOT) -> str | None:
    """The project's commit, with '-dirty' when the work tree has uncommitted changes; ``ATTNBENCH_GIT_COMMIT``
    where set: a copy of the tree sent without its history (a lent GPU machine's, whose ``.git`` may be an
    older one) names the commit it was sent from (tests/gpu/session.sh)."""
    if os.environ.get("ATTNBENCH_GIT_COMMIT"):
        return os.environ["ATTNBENCH_GIT_COMMIT"]
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if dirty else "")


def flushes_denormals() -> bool:
    """Whether float32 denormals are flushed to zero in this process (FTZ/DAZ)."""
    tiny = torch.tensor([1e-40], dtype=torch.float32)  # a denormal
    return bool((tiny * 1.0).item() == 0.0)


def capture_env() -> dict:
    """Versions, hardware and thread settings of this process and machine."""
    cuda = torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "xformers": _version("xformers"),
        "numpy": _version("numpy"),
        "pandas": _version("pandas"),
        "attnbench": _version("attnbench"),
        "git_commit": git_commit(),
        "cpu": device_name("cpu"),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "thread_env": {name: os.environ.get(name) for name in THREAD_ENV},
        "flush_denormal": flushes_denormals(),
        "cuda": torch.version.cuda if cuda else None,
        # Driver, cuDNN, each GPU's model, UUID, compute capability and free memory, CUDA_VISIBLE_DEVICES and
        # the TF32 flags, read by a throwaway process (harness.measure.gpu): this one keeps no CUDA context.
        "gpu": cuda_facts() if cuda else None,
        "tf32": {
            "matmul": torch.backends.cuda.matmul.allow_tf32,
            "cudnn": torch.backends.cudnn.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
        },
        "argv": sys.argv,
    }
