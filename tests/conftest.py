"""Shared fixtures: seeded inputs and the device list (CUDA cases skip without a GPU)."""

from __future__ import annotations

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


def call_or_skip(spec, *args, **kwargs):
    """Call a variant; a case it declares unsupported skips with the variant's own reason."""
    try:
        return spec(*args, **kwargs)
    except variants.Unsupported as exc:
        pytest.skip(f"{spec.name}: {exc}")
