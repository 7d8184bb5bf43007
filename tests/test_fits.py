"""Complexity fits on synthetic data with known exponents."""

from __future__ import annotations

import numpy as np
import pytest

from harness.analyze.fits import agrees, asymptotic_region, crossovers, fit_power_law
from harness.measure.complexity import declared_exponent

NS = [2**i for i in range(7, 14)]  # 128 .. 8192


def synthetic(alpha: float, noise: float, seed: int) -> tuple[list[float], list[list[float]]]:
    """Medians and raw samples of c·N^alpha with multiplicative noise."""
    rng = np.random.default_rng(seed)
    samples = [list(1e-9 * n**alpha * np.exp(rng.normal(0, noise, size=30))) for n in NS]
    return [float(np.median(s)) for s in samples], samples


@pytest.mark.parametrize("alpha", [1.0, 2.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovers_known_exponents_with_covering_intervals(alpha, seed):
    medians, samples = synthetic(alpha, 0.05, seed)
    fit = fit_power_law(NS, medians, samples)
    assert abs(fit.alpha - alpha) <= 0.05
    assert fit.ci_low <= alpha <= fit.ci_high
    assert fit.ci_high - fit.ci_low < 0.2
    assert fit.n_hi == 8192 and fit.n_hi / fit.n_lo >= 8
    assert len(fit.local_slopes) == len(NS) - 1
    assert all(abs(s - alpha) < 0.2 for s in fit.local_slopes)


def test_fixed_overhead_is_left_out_of_the_fit():
    # t = 1 ms of overhead + N^1 ns: flat at small N, linear at large N.
    ns = [2**i for i in range(4, 17)]
    values = [1e-3 + 1e-9 * n * 1000 for n in ns]
    idx, _, _ = asymptotic_region(ns, values)
    assert ns[idx[0]] >= 8192  # the flat part is not in the region
    fit = fit_power_law(ns, values)
    assert 0.8 <= fit.alpha <= 1.0


def test_a_curve_that_never_leaves_its_overhead_floor_gets_no_verdict():
    from harness.analyze.fits import implausible

    # linear-elu forward on the H200 (bf16, H=16, D=64), ms: a GPU left idle until N=16K.
    ns = [1024, 2048, 4096, 8192, 16384, 32768]
    fit = fit_power_law(ns, [0.113, 0.112, 0.115, 0.132, 0.239, 0.426])
    assert fit.overhead_bound and (fit.n_lo, fit.n_hi) == (4096, 32768) and fit.alpha < 0.7
    assert implausible(fit).startswith("overhead-bound: over N = 4096..32768 the time stays within 3x of its floor")
    # Nystrom-32 forward+backward there: flat to 4096, then linear. Too few points clear the floor to drop it,
    # but no step of the region is flat: a fit, with its verdict.
    nystrom = fit_power_law(ns, [7.18, 6.95, 7.04, 14.5, 28.4, 55.5])
    assert not nystrom.overhead_bound and implausible(nystrom) == "" and nystrom.alpha == pytest.approx(0.98, abs=0.03)
    # A short grid that grows as N does keeps its fit (and its "spans only" note); so does a clean linear curve.
    short = fit_power_law([128, 256, 512], [1.0, 2.0, 4.0])
    assert not short.overhead_bound and short.alpha == pytest.approx(1.0) and "spans only 4x" in short.note
    assert not fit_power_law(ns, [n * 1e-6 for n in ns]).overhead_bound


def test_memory_without_samples_uses_residuals():
    values = [4.0 * n**2 + 1000 * n for n in NS]
    fit = fit_power_law(NS, values)
    assert 1.9 <= fit.alpha <= 2.0
    assert fit.ci_low <= fit.alpha <= fit.ci_high


def test_short_grid_is_flagged_and_too_few_points_give_none():
    fit = fit_power_law([256, 512, 1024], [1.0, 2.0, 4.0])
    assert fit.alpha == pytest.approx(1.0) and "only 4x" in fit.note
    assert fit_power_law([256, 512], [1.0, 2.0]) is None
    assert fit_power_law([256, 512, 1024], [1.0, float("nan"), 4.0]) is None


def test_declared_exponents_and_agreement():
    assert declared_exponent("O(N^2 d)") == 2
    assert declared_exponent("O(N^2)") == 2
    assert declared_exponent("O(N)") == 1
    assert declared_exponent("O(N d^2)") == 1
    assert declared_exponent("O(N m)") == 1
    assert declared_exponent("O(1)") is None
    medians, samples = synthetic(2.0, 0.01, 0)
    fit = fit_power_law(NS, medians, samples)
    assert agrees(fit, 2.0) and not agrees(fit, 1.0) and agrees(fit, None) is None


def test_crossover_interpolates_in_log_space():
    ns = [100, 1000, 10000]
    a = [1.0, 10.0, 100.0]  # ~N
    b = [0.01, 1.0, 100.0 * 100]  # ~N^2, equal to a where 1e-6·N^2 = 1e-2·N... crosses between 1000 and 10000
    ((n_star, lower_after),) = crossovers(ns, a, b)
    assert lower_after == "a"
    # log-linear interpolation between (1000: log(10/1)) and (10000: log(100/10000)):
    d0, d1 = np.log(10.0), np.log(100.0 / 10000)
    expected = np.exp(np.log(1000) + (np.log(10000) - np.log(1000)) * d0 / (d0 - d1))
    assert n_star == pytest.approx(expected)
    assert crossovers(ns, a, a) == []
    assert crossovers(ns, [1, 2, 3], [2, 3, 4]) == []


def test_a_crossing_exactly_on_a_grid_point_is_found_there():
    # a = N meets b = 4 at N = 4 and passes it: below before, above after
    assert crossovers([1, 2, 4, 8, 16], [1, 2, 4, 8, 16], [4, 4, 4, 4, 4]) == [(4.0, "b")]
    # touching without passing is no crossing
    assert crossovers([1, 2, 4], [1, 4, 1], [4, 4, 4]) == []
