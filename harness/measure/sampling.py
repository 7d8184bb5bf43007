"""What both clocks share: the warm-up, the stopping rule and `Measurement`.

Both clocks (`harness.measure.timing` on the CPU, `harness.measure.cuda_timing`
with CUDA events) make one untimed call (lazy initialization), then warm up
until the per-call time stops falling (at least 2 calls, at most ~100 ms; none
when the untimed call itself took 100 ms or more), then take samples until the median
is known: its distribution-free 95% confidence interval (order statistics, at
least 6 samples) within +-2.5%, or a cap (time or count) is hit. Unlike a
spread threshold met by four lucky samples, the interval narrows as samples
come in even when the spread is wide (a bimodal kernel stops; it does not run
to its cap). Calls over 1 s take 3 samples. The raw samples are kept;
statistics come from `harness.measure.stats`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from .gpu_sensor import GpuReading
from .interference import Interference
from .stats import Summary, summarize

WARMUP_MAX_S = 0.1
WARMUP_MIN_CALLS = 2
WARMUP_SETTLED = 0.97  # warm once a call is no faster than 97% of the best before it
MIN_SAMPLES = 6  # the fewest from which a 95% interval of the median can be formed
CAP_SAMPLES = 5  # at a cap, the fewest clean samples a median is reported from
ROUND_CAP_SAMPLES = 3  # the same for one of several rounds (harness.measure.rounds): 6 or more over a case
ROUND_TARGET_CI = 0.05  # and the median's interval one of several rounds stops at
MIN_TIME_S = 0.02
TARGET_CI = 0.025  # stop once the median's 95% interval is within +-2.5%
TARGET_IQR_RATIO = 0.05  # torch.utils.benchmark's adaptive threshold, for comparisons (harness.bench.selfcheck)
SLOW_CALL_S = 1.0
SLOW_CALL_SAMPLES = 3


@dataclass(frozen=True)
class Measurement:
    """Raw per-call samples (seconds) and how they were taken; statistics derived on demand.

    ``samples`` are the clean blocks; ``rejected`` the blocks discarded because
    this process waited on a run queue during them. A ``contended``
    measurement got too few clean blocks within its cap: its ``summary`` then
    covers every block and is not to be trusted as a time.
    """

    samples: tuple[float, ...]
    block_size: int
    clock: str  # "perf_counter_ns" or "cuda_event"
    stop_reason: str  # "stable", "time cap", "count cap", "slow call", "contended"
    warnings: tuple[str, ...] = field(default=())
    rejected: tuple[float, ...] = field(default=())
    interference: Interference | None = None
    gpu: GpuReading | None = None  # the SM clock over the kept blocks (CUDA, with NVML)

    @property
    def contended(self) -> bool:
        return self.stop_reason == "contended"

    @property
    def used(self) -> tuple[float, ...]:
        """The samples the statistics come from: the clean ones, or every block when contended."""
        return self.samples + self.rejected if self.contended else self.samples

    @property
    def summary(self) -> Summary:
        return summarize(self.used)

    @property
    def median(self) -> float:
        return self.summary.median


def warn_if_noisy(summary: Summary) -> tuple[str, ...]:
    if summary.noisy:
        return (f"IQR/median {summary.iqr_ratio:.0%}: the machine was noisy during this measurement",)
    return ()


def stop_rule(
    samples: list[float],
    elapsed: float,
    max_time_s: float,
    max_samples: int,
    waited: int = 0,
    min_time_s: float = MIN_TIME_S,
    cap_samples: int = CAP_SAMPLES,
    target_ci: float = TARGET_CI,
) -> str | None:
    """Why to stop now, or None to keep sampling.

    ``samples`` are the clean blocks so far, ``waited`` how many were discarded.
    At a cap with too few clean blocks, a measurement whose blocks mostly
    waited (of at least 2 x ``cap_samples`` tried) is ``contended``; a transient
    preemption gets up to twice the cap; one whose blocks did not wait (a cap
    shorter than ``cap_samples`` blocks) samples on until it has them. A case
    measured in rounds asks fewer per round (`ROUND_CAP_SAMPLES`): its
    precision comes from the rounds.
    """
    n = len(samples)
    if n >= SLOW_CALL_SAMPLES and min(samples) > SLOW_CALL_S:
        return "slow call"
    if n >= MIN_SAMPLES and elapsed >= min_time_s and summarize(samples).ci_half_width <= target_ci:
        return "stable"
    capped = "time cap" if elapsed >= max_time_s else "count cap" if n + waited >= max_samples else None
    if capped is None:
        return None
    if n >= min(cap_samples, max_samples):
        return capped
    if not waited or n + waited < 2 * cap_samples:
        return None  # too few attempts to judge the machine by
    # A transient (most blocks clean) gets up to twice the cap to finish; a busy machine does not.
    transient = waited <= n and elapsed < 2 * max_time_s and n + waited < 2 * max_samples
    return None if transient else "contended"


def per_round(rounds: int) -> dict[str, float]:
    """The stopping rule's asks for one of ``rounds`` rounds of a case (`stop_rule`'s ``cap_samples`` and
    ``target_ci``): a case measured in several gets its precision from the spread between them
    (`harness.measure.rounds`), so each round stops sooner: at +-5 %, or 3 samples at its cap."""
    if rounds <= 1:
        return {"cap_samples": CAP_SAMPLES, "target_ci": TARGET_CI}
    return {"cap_samples": ROUND_CAP_SAMPLES, "target_ci": ROUND_TARGET_CI}


def warm_up(fn: Callable[[], object], clock: Callable[[], float], first_s: float | None = None) -> float:
    """Call ``fn`` until its time stops falling; returns the per-call time of the warm calls.

    A first call of WARMUP_MAX_S or more is warm-up enough by itself: it has warmed caches and
    the clock frequency, and the loop below would stop after one more call anyway, at the cost of
    a sample. What outlives it on the CPU -- a heap still growing, whose new pages fault in
    on first touch -- is caught block by block (`harness.measure.timing`).
    ``first_s``: the caller already made the untimed first call, which took that long.
    """
    if first_s is None:
        start = clock()
        fn()  # untimed: lazy initialization, first-touch page faults
        first = clock() - start
    else:
        first = first_s
    if first >= WARMUP_MAX_S:
        return first
    times: list[float] = []
    began = clock()
    while True:
        t0 = clock()
        fn()
        times.append(clock() - t0)
        settled = len(times) >= WARMUP_MIN_CALLS and times[-1] >= WARMUP_SETTLED * min(times[:-1])
        if settled or clock() - began >= WARMUP_MAX_S:
            break
    warm = sorted(times[-3:])
    return warm[len(warm) // 2]


def with_warnings(m: Measurement) -> Measurement:
    """``m`` with its warnings: contention (naming the measured wait) or noise."""
    i = m.interference
    if m.contended and i is not None:
        total = len(m.samples) + len(m.rejected)
        warning = (
            f"contended: {len(m.rejected)} of {total} blocks preempted "
            f"(run-queue wait {i.wait_ratio:.0%} of wall x threads"
            + (f", load average {i.load_avg:.1f}" if i.load_avg is not None else "")
            + ")"
        )
        return replace(m, warnings=(warning,))
    return replace(m, warnings=m.warnings + warn_if_noisy(m.summary))  # the clock's own (launch-bound, ...), then noise
