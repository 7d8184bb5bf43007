"""Shared fixtures: seeded inputs and the device list (CUDA cases skip without a GPU)."""

from __future__ import annotations

import pytest
import torch

import variants
from harness.allocator import pin_allocator

# Timings in this process compare like with like only with malloc's thresholds fixed.
pin_allocator()

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"))]


def make_qkv(n_q, n_kv=None, *, d=64, d_v=None, batch=1, heads=4, dtype=torch.float32, device="cpu", seed=0, scale=1.0):
    """Seeded Gaussian q (B, H, n_q, d), k (B, H, n_kv, d), v (B, H, n_kv, d_v), times ``scale``."""
    n_kv = n_q if n_kv is None else n_kv
    d_v = d if d_v is None else d_v
    gen = torch.Generator().manual_seed(seed)
    shapes = [(batch, heads, n_q, d), (batch, heads, n_kv, d), (batch, heads, n_kv, d_v)]
    return [(torch.randn(s, generator=gen) * scale).to(device=device, dtype=dtype) for s in shapes]


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    """Relative Frobenius error of ``out`` against ``ref``, computed in float64."""
    out, ref = out.detach().double().cpu(), ref.detach().double().cpu()
    return ((out - ref).norm() / ref.norm()).item()


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
