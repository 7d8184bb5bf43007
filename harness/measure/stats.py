"""Pure statistics over timing samples: no torch, no clocks, testable by hand.

Quantiles interpolate linearly between order statistics (numpy's default,
Hyndman & Fan type 7), so with samples 1..5 the 20th percentile is 1.8.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

NOISY_IQR_RATIO = 0.10  # IQR/median above this marks a measurement as noisy


def quantile(sorted_xs: Sequence[float], p: float) -> float:
    """The p-quantile (0 <= p <= 1) of already sorted values, linearly interpolated."""
    if not sorted_xs:
        raise ValueError("quantile of no samples")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"quantile p must be in [0, 1], got {p}")
    pos = p * (len(sorted_xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def median_ci_ranks(n: int, confidence: float = 0.95) -> tuple[int, int] | None:
    """0-based ranks (lo, hi) of the order statistics bracketing the median with ``confidence``, or None.

    Distribution-free: the number of samples below the true median is
    Binomial(n, 1/2), so [x_(j), x_(n-1-j)] covers it with probability
    1 - 2·P(B <= j). The widest j with coverage >= ``confidence`` is taken;
    below 6 samples no pair reaches 95%.
    """
    tail, j, below = (1 - confidence) / 2, -1, 0.0
    while j + 1 < n / 2:
        below += math.comb(n, j + 1) / 2**n
        if below > tail:
            break
        j += 1
    return (j, n - 1 - j) if j >= 0 else None


@dataclass(frozen=True)
class Summary:
    """Order statistics of a sample. ``outliers`` counts Tukey's fences (1.5 IQR)."""

    median: float
    iqr: float
    p20: float
    p80: float
    min: float
    max: float
    mean: float
    n: int
    outliers: int
    ci_low: float  # 95% confidence interval of the median (order statistics); nan below 6 samples
    ci_high: float

    @property
    def iqr_ratio(self) -> float:
        """IQR / median: the relative spread adaptive stopping and ``noisy`` look at."""
        return self.iqr / self.median if self.median > 0 else math.inf

    @property
    def ci_half_width(self) -> float:
        """Half the 95% interval of the median, relative to the median (inf when it cannot be formed)."""
        if self.median <= 0 or math.isnan(self.ci_low):
            return math.inf
        return (self.ci_high - self.ci_low) / 2 / self.median

    @property
    def noisy(self) -> bool:
        return self.iqr_ratio > NOISY_IQR_RATIO


def summarize(samples: Sequence[float]) -> Summary:
    """Summary statistics of ``samples`` (at least one value)."""
    xs = sorted(samples)
    if not xs:
        raise ValueError("summarize needs at least one sample")
    q1, q3 = quantile(xs, 0.25), quantile(xs, 0.75)
    iqr = q3 - q1
    low, high = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    ranks = median_ci_ranks(len(xs))
    return Summary(
        median=quantile(xs, 0.5),
        iqr=iqr,
        p20=quantile(xs, 0.2),
        p80=quantile(xs, 0.8),
        min=xs[0],
        max=xs[-1],
        mean=math.fsum(xs) / len(xs),
        n=len(xs),
        outliers=sum(1 for x in xs if x < low or x > high),
        ci_low=xs[ranks[0]] if ranks else math.nan,
        ci_high=xs[ranks[1]] if ranks else math.nan,
    )
