"""Empirical complexity: fit y ~ c·N^alpha on log-log axes, with a bootstrap CI.

The fit uses the asymptotic region only: the largest points spanning at least
8x in N, minus points dominated by fixed overhead (those within 3x of the
smallest value measured, where launch and Python costs, not the algorithm,
set the time; at a 2x grid, 512..4096 for a sweep to 4096). Local slopes (Δlog y / Δlog N between neighbours) are kept so
a reader can see whether they converge. The 95% interval resamples the raw
timing samples at every N (with replacement), takes medians and refits; a
quantity measured once per N (peak memory) resamples the fit's residuals.

Crossovers: the N where one variant's curve crosses another's, interpolated
linearly in log-log space between the two grid points that bracket it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

MIN_SPAN = 8.0
OVERHEAD_FACTOR = 3.0
FLAT_SLOPE = 0.5  # a step of the curve flatter than N^0.5 is overhead: no attention reads less than its O(N) input
AGREEMENT = 0.3  # |fitted - declared| within this counts as agreeing


@dataclass(frozen=True)
class Fit:
    """alpha with its 95% CI over the points ``n_used`` (N range ``n_lo``..``n_hi``)."""

    alpha: float
    ci_low: float
    ci_high: float
    n_lo: int
    n_hi: int
    n_used: int
    local_slopes: tuple[float, ...] = field(default=())
    note: str = ""
    overhead_bound: bool = False  # under 3 points clear the floor and a step is flatter than N^0.5: no verdict


def slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of y on x."""
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum())


def asymptotic_region(ns: Sequence[int], values: Sequence[float]) -> tuple[np.ndarray, str, bool]:
    """Indices (into N-sorted arrays) of the points to fit, a note when the region is short, and whether it is
    overhead-bound.

    The region is the largest points spanning at least MIN_SPAN in N (all
    points when the grid is shorter); points in it within OVERHEAD_FACTOR of
    the smallest value measured are dropped while three or more remain. When
    fewer remain and the region holds a step flatter than N^FLAT_SLOPE, the
    region is called overhead-bound: attention reads its O(N) inputs, so a
    curve that flat is a fixed cost (a GPU left idle by a small problem, a
    Python loop's launches) and the slope is the overhead's, not the algorithm's.
    """
    ns, values = np.asarray(ns, float), np.asarray(values, float)
    reaching = np.nonzero(ns[-1] / ns >= MIN_SPAN)[0]
    start = int(reaching[-1]) if len(reaching) else 0
    idx = np.arange(start, len(ns))
    clear = idx[values[idx] >= OVERHEAD_FACTOR * values.min()]
    steps = np.diff(np.log(values[idx])) / np.diff(np.log(ns[idx]))
    overhead_bound = len(clear) < 3 and bool(len(steps)) and steps.min() < FLAT_SLOPE
    if len(clear) >= 3:
        idx = clear
    span = ns[idx[-1]] / ns[idx[0]]
    note = "" if span >= MIN_SPAN else f"fit spans only {span:.0f}x in N"
    return idx, note, overhead_bound


def fit_power_law(
    ns: Sequence[int],
    values: Sequence[float],
    samples: Sequence[Sequence[float]] | None = None,
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> Fit | None:
    """Fit values ~ N^alpha. ``samples[i]`` are the raw samples behind ``values[i]`` (optional).

    Returns None with fewer than 3 positive points.
    """
    order = np.argsort(ns)
    ns = np.asarray(ns, float)[order]
    values = np.asarray(values, float)[order]
    good = np.isfinite(values) & (values > 0)
    if samples is not None:
        samples = [samples[i] for i in order]
        samples = [s for s, g in zip(samples, good) if g]
    ns, values = ns[good], values[good]
    if len(ns) < 3:
        return None
    idx, note, overhead_bound = asymptotic_region(ns, values)
    if len(idx) < 2:
        return None
    x, y = np.log(ns[idx]), np.log(values[idx])
    alpha = slope(x, y)
    rng = np.random.default_rng(seed)
    if samples is not None and all(len(samples[i]) > 1 for i in idx):
        raw = [np.asarray(samples[i], float) for i in idx]
        boot = np.array([slope(x, np.log([np.median(rng.choice(r, size=len(r))) for r in raw])) for _ in range(resamples)])
    elif len(idx) >= 3:
        fitted = y.mean() + alpha * (x - x.mean())
        residuals = y - fitted
        boot = np.array([slope(x, fitted + rng.choice(residuals, size=len(residuals))) for _ in range(resamples)])
    else:
        boot = np.array([alpha])
    all_x, all_y = np.log(ns), np.log(values)
    local = tuple(float(v) for v in np.diff(all_y) / np.diff(all_x))
    return Fit(
        alpha=alpha,
        ci_low=float(np.percentile(boot, 2.5)),
        ci_high=float(np.percentile(boot, 97.5)),
        n_lo=int(ns[idx[0]]),
        n_hi=int(ns[idx[-1]]),
        n_used=len(idx),
        local_slopes=local,
        note=note,
        overhead_bound=overhead_bound,
    )


MAX_CI_WIDTH = 1.0  # a 95% interval wider than one power of N cannot tell O(N) from O(N^2)


def implausible(fit: Fit, noisy_points: int = 0) -> str:
    """Why a time exponent cannot be read as a complexity class, or ''.

    Work never shrinks as N grows, so a negative exponent is the machine's
    noise (or a fixed overhead falling away), not an algorithm; neither is an
    interval too wide to separate neighbouring classes.
    """
    noise = f"; {noisy_points} noisy point(s) in the curve" if noisy_points else ""
    if fit.overhead_bound:
        return (f"overhead-bound: over N = {fit.n_lo}..{fit.n_hi} the time stays within {OVERHEAD_FACTOR:g}x of its "
                f"floor and grows slower than N^{FLAT_SLOPE:g} somewhere: fixed costs, not the algorithm, "
                f"set the slope{noise}")  # fmt: skip
    if fit.alpha < 0:
        return f"time fell as N grew (alpha {fit.alpha:.2f}): noise or fixed overhead, not a complexity{noise}"
    if fit.ci_high - fit.ci_low > MAX_CI_WIDTH:
        return f"95% interval [{fit.ci_low:.2f}, {fit.ci_high:.2f}] too wide to classify{noise}"
    return ""


def agrees(fit: Fit, expected: float | None) -> bool | None:
    """Whether a fit matches the declared exponent (None when nothing was declared)."""
    if expected is None:
        return None
    return abs(fit.alpha - expected) <= AGREEMENT or fit.ci_low <= expected <= fit.ci_high


def crossovers(ns: Sequence[int], a: Sequence[float], b: Sequence[float]) -> list[tuple[float, str]]:
    """Where curve a crosses curve b: [(N*, 'a' or 'b' = the one lower beyond N*)], from grid-aligned values."""
    ns, a, b = (np.asarray(v, float) for v in (ns, a, b))
    ok = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    ns, a, b = ns[ok], a[ok], b[ok]
    order = np.argsort(ns)
    ns, diff = ns[order], np.log(a[order]) - np.log(b[order])
    found = []
    apart = np.nonzero(diff)[0]  # where the curves differ; equal points between are touches
    for i, j in zip(apart[:-1], apart[1:]):
        if diff[i] * diff[j] > 0:
            continue
        if j == i + 1:  # the sign flips between neighbours: interpolate in log-log space
            x0, x1 = math.log(ns[i]), math.log(ns[j])
            n_star = math.exp(x0 + (x1 - x0) * diff[i] / (diff[i] - diff[j]))
        else:  # equal at the grid points between: they cross at the first of them
            n_star = float(ns[i + 1])
        found.append((n_star, "a" if diff[j] < 0 else "b"))
    return found
