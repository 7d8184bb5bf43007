"""Measured peak memory against the analytic size of the tensors a variant must hold."""

from __future__ import annotations

import pytest
import torch

from harness.measure.case import Case, make_inputs
from harness.measure.memory import peak_memory
from variants import get_variant

FP32 = 4


def _peak(name: str, n: int, **case_kwargs) -> int:
    case = Case(name, n, **case_kwargs)
    q, k, v = make_inputs(case)
    spec = get_variant(name)
    with torch.inference_mode():
        spec(q, k, v, mask=case.mask)
        return peak_memory(lambda: spec(q, k, v, mask=case.mask), case.device).peak_bytes


def test_naive_peak_is_scores_plus_probabilities_plus_output():
    H, N, D = 8, 2048, 64
    expected = 2 * H * N * N * FP32 + H * N * D * FP32  # (scores, probabilities) + output
    measured = _peak("naive", N)
    assert abs(measured - expected) <= 0.10 * expected, (measured, expected)


def test_fused_and_online_peaks_are_a_small_fraction_of_naive():
    naive_2048 = _peak("naive", 2048)
    assert _peak("sdpa", 2048) < 0.05 * naive_2048
    naive_4096 = _peak("naive", 4096)
    assert _peak("chunked-online", 4096) < 0.10 * naive_4096


def test_linear_memory_grows_linearly_and_naive_quadratically():
    assert 1.8 <= _peak("chunked-online", 4096) / _peak("chunked-online", 2048) <= 2.2
    assert 3.6 <= _peak("naive", 2048) / _peak("naive", 1024) <= 4.2


def test_a_plain_allocation_is_counted_exactly():
    n = 1 << 20
    assert peak_memory(lambda: torch.empty(n, dtype=torch.float32)).peak_bytes == n * FP32

    # Two live at once, then one freed: the peak is both.
    def two():
        a = torch.empty(n)
        b = torch.empty(n)
        return a, b

    assert peak_memory(two).peak_bytes == 2 * n * FP32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_peak_counts_the_allocation():
    n = 1 << 22
    m = peak_memory(lambda: torch.empty(n, device="cuda"), "cuda")
    assert m.method == "cuda-max-allocated" and m.peak_bytes >= n * FP32
