"""Statistics against numbers computed by hand."""

from __future__ import annotations

import math

import pytest

from harness.measure.stats import median_ci_ranks, quantile, summarize


def test_quantiles_interpolate_linearly():
    xs = [1.0, 2.0, 3.0, 4.0, 5.0]
    # position p·(n-1): 0.2·4 = 0.8 -> 1 + 0.8·(2-1) = 1.8
    assert quantile(xs, 0.2) == pytest.approx(1.8)
    assert quantile(xs, 0.25) == 2.0
    assert quantile(xs, 0.5) == 3.0
    assert quantile(xs, 0.8) == pytest.approx(4.2)
    assert quantile(xs, 0.0) == 1.0 and quantile(xs, 1.0) == 5.0
    assert quantile([7.0], 0.3) == 7.0


def test_quantile_rejects_bad_arguments():
    with pytest.raises(ValueError, match="no samples"):
        quantile([], 0.5)
    with pytest.raises(ValueError, match="p must be"):
        quantile([1.0], 1.5)


def test_summary_by_hand():
    # sorted: 10, 11, 12, 13, 14, 15, 16, 100 (n=8)
    s = summarize([12, 10, 14, 11, 13, 100, 15, 16])
    # q1 at 0.25·7 = 1.75 -> 11 + 0.75 = 11.75; q3 at 5.25 -> 15 + 0.25 = 15.25
    assert s.iqr == pytest.approx(3.5)
    assert s.median == pytest.approx(13.5)  # position 3.5 -> (13 + 14) / 2
    assert s.p20 == pytest.approx(11.4)  # position 1.4 -> 11 + 0.4
    assert s.p80 == pytest.approx(15.6)  # position 5.6 -> 15 + 0.6
    assert s.min == 10 and s.max == 100 and s.n == 8
    assert s.mean == pytest.approx(191 / 8)
    # Tukey fences: 11.75 - 5.25 = 6.5 and 15.25 + 5.25 = 20.5 -> only 100 lies outside
    assert s.outliers == 1
    assert s.iqr_ratio == pytest.approx(3.5 / 13.5)
    assert s.noisy  # 26% > 10%


def test_quiet_sample_is_not_noisy():
    s = summarize([1.00, 1.01, 0.99, 1.00, 1.02, 0.98])
    assert not s.noisy and s.outliers == 0
    assert summarize([0.0, 0.0]).iqr_ratio == math.inf


def test_summarize_needs_samples():
    with pytest.raises(ValueError):
        summarize([])


def test_median_confidence_interval_by_hand():
    # P(Binomial(n, 1/2) <= j) by hand: n=6, j=0: 1/64 = 0.016 <= 0.025 -> [x1, x6] (96.9% coverage);
    # n=10: P(B <= 1) = 11/1024 = 0.011, P(B <= 2) = 56/1024 = 0.055 -> [x2, x9] (97.9%);
    # n=20: P(B <= 5) = 0.0207, P(B <= 6) = 0.0577 -> [x6, x15]; five samples cannot reach 95% (93.75%).
    assert median_ci_ranks(5) is None
    assert median_ci_ranks(6) == (0, 5)
    assert median_ci_ranks(10) == (1, 8)
    assert median_ci_ranks(20) == (5, 14)
    s = summarize([float(x) for x in range(1, 11)])
    assert (s.ci_low, s.ci_high) == (2.0, 9.0)
    assert s.ci_half_width == pytest.approx(3.5 / 5.5)
    assert math.isinf(summarize([1.0, 2.0]).ci_half_width)
