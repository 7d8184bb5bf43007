"""Shared fixtures: seeded inputs, the device list (CUDA cases skip without a GPU), the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import variants
from harness.measure.accuracy import relative_error
from harness.measure.allocator import pin_allocator
from harness.measure.case import seeded_qkv

# Timings in this process compare like with like only with malloc pinned to the heap.
pin_allocator()

# Options that ask pytest-benchmark to measure; without any, benchmarks run once, untimed.
_BENCHMARK_REQUESTS = ("benchmark_only", "benchmark_enable", "benchmark_json", "benchmark_autosave",
                       "benchmark_save", "benchmark_compare")  # fmt: skip


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """The default test run executes tests/benchmarks once each as a smoke test (--benchmark-disable)."""
    if hasattr(config.option, "benchmark_disable") and not any(
        getattr(config.option, name, None) for name in _BENCHMARK_REQUESTS
    ):
        config.option.benchmark_disable = True


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"))]


# The suite and `attnbench check` share their inputs and error measure.
make_qkv = seeded_qkv
rel_err = relative_error


def runnable(name: str, device: str) -> variants.VariantSpec:
    """The spec, or skip the test when this machine cannot run it on ``device``."""
    spec = variants.get_variant(name)
    reason = spec.unavailable_reason(device)
    if reason:
        pytest.skip(f"{name}: {reason}")
    return spec


ROOT = Path(__file__).resolve().parent.parent


def run_attnbench(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600):
    """``attnbench ARGS`` as a user runs it: a fresh process (``python -m harness.cli``), this checkout first on
    its path; ``env`` replaces the environment (PYTHONPATH is added), the inherited one when None."""
    env = dict(os.environ if env is None else env, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)  # fmt: skip
