"""pytest-benchmark suite, parametrized from the registry: every variant x N x mask (none, causal).

    pytest tests/benchmarks --benchmark-only            benchmark (add --benchmark-json/-autosave/-compare)
    pytest                                              the default run: each case executed once, untimed

Inputs are built outside the timed call. Plugin variants join through the
``attnbench.variants`` entry points or ``ATTNBENCH_PLUGINS=path.py[:module...]``.
"""

from __future__ import annotations

import os

import pytest
import torch

from harness.measure.case import seeded_qkv
from variants import Unsupported, get_variant, list_variants
from variants.masks import CAUSAL, NONE
from variants.plugins import load_plugins

load_plugins([p for p in os.environ.get("ATTNBENCH_PLUGINS", "").split(os.pathsep) if p])

SEQ_LENS = [256, 1024]


@pytest.mark.parametrize("mask", [NONE, CAUSAL], ids=["full", "causal"])
@pytest.mark.parametrize("n", SEQ_LENS, ids=lambda n: f"N{n}")
@pytest.mark.parametrize("name", [n for n in list_variants() if get_variant(n).in_all])  # as "--variants all"
def test_attention_forward(benchmark, name, n, mask):
    spec = get_variant(name)
    reason = spec.unavailable_reason("cpu")
    if reason:
        pytest.skip(f"{name}: {reason}")
    q, k, v = seeded_qkv(n, d=64, heads=8)
    benchmark.group = f"cpu float32 fwd {'full' if mask == NONE else mask.spec} N={n}"
    benchmark.extra_info.update({"variant": name, "seq_len": n, "mask": mask.spec})

    def call():
        with torch.inference_mode():
            return spec(q, k, v, mask=mask)

    try:
        call()  # untimed: an unsupported case skips before the benchmark starts
    except Unsupported as exc:
        pytest.skip(f"{name}: {exc}")
    out = benchmark(call)
    assert out.shape == (1, 8, n, 64)
