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

    @property
    def iqr_ratio(self) -> float:
        """IQR / median: the relative spread adaptive stopping and ``noisy`` look at."""
        return self.iqr / self.median if self.median > 0 else math.inf

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
    )
