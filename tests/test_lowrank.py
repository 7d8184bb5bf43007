"""Nyströmformer and Linformer pieces against hand computations and their exact limits."""

from __future__ import annotations

import torch

from harness.measure.accuracy import relative_error
from harness.measure.case import seeded_qkv
from harness.measure.reference import reference_attention
from variants import get_variant
from variants.lowrank import newton_schulz_pinv, nystrom, projection, segment_means


def test_segment_means_average_near_equal_contiguous_segments():
    x = torch.arange(7.0).view(1, 1, 7, 1)  # rows 0..6
    # m = 3: segments [0, 2), [2, 4), [4, 7) (floor(j·7/3) = 0, 2, 4, 7)
    assert segment_means(x, 3).flatten().tolist() == [0.5, 2.5, 5.0]
    assert torch.equal(segment_means(x, 9), x)  # fewer rows than landmarks: the rows themselves


def test_newton_schulz_reaches_the_inverse_of_a_softmax_matrix():
    gen = torch.Generator().manual_seed(0)
    a = torch.softmax(torch.randn(2, 16, 16, generator=gen, dtype=torch.float64), dim=-1)  # row-stochastic, like A
    z = newton_schulz_pinv(a, iterations=30)
    assert relative_error(z, torch.linalg.inv(a)) < 1e-8


def test_nystrom_with_a_landmark_per_row_is_exact_once_its_pseudo_inverse_converges():
    q, k, v = seeded_qkv(24, heads=2, d=16, dtype=torch.float64)
    exact = reference_attention(q, k, v)
    # 32 landmarks >= 24 rows: S · pinv(S) · S · V = S · V, up to the Newton–Schulz iteration.
    assert relative_error(nystrom(q, k, v, landmarks=32, iterations=60), exact) < 1e-8
    # The paper's six iterations stop short on this S (condition number ~500): the variant's own approximation.
    assert 1e-3 < relative_error(get_variant("nystrom-32")(q, k, v), exact) < 0.1


def test_linformer_projection_is_seeded_averaging_and_cached():
    e = projection(128, 1000, 3, "cpu", torch.float64)
    assert e is projection(128, 1000, 3, "cpu", torch.float64)  # drawn once, as trained weights are
    assert not torch.equal(e, projection(128, 1000, 4, "cpu", torch.float64))
    assert (e >= 0).all() and torch.allclose(e.sum(dim=1), torch.ones(128, dtype=torch.float64))  # averaging rows
    q, k, v = seeded_qkv(300, 500, heads=2, d=16)
    first = get_variant("linformer-128")(q, k, v, seed=5)
    assert torch.equal(first, get_variant("linformer-128")(q, k, v, seed=5))
    assert first.shape == (1, 2, 300, 16)
