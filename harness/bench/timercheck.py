"""Time to precision: the harness timer against ``torch.utils.benchmark`` on the same cases.

    python -m harness.bench.timercheck [--rounds 3] [--threads N]

For each case, in one process with the same threads and alternating which
goes first: the wall time each timer takes to stop (warm-up included) --
ours, `harness.measure.timing.time_callable`, against
``Timer.adaptive_autorange(threshold=0.05)`` -- and the ratio of their
medians, with each one's IQR/median. Figures are ratios from this one run.
(A long sequential "reference" measurement cannot arbitrate on a shared VM:
its speed drifts by tens of percent over seconds, so only interleaved pairs
compare like with like.) A benchmark, not a test: it prints
figures for people to read and is not run by the test suite.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

import torch
import torch.utils.benchmark as tub

from variants import get_variant

from ..measure.allocator import pin_allocator
from ..measure.case import Case, make_inputs
from ..measure.sampling import TARGET_IQR_RATIO
from ..measure.timing import time_callable

CASES = [("sdpa", 256), ("sdpa", 1024), ("naive", 512), ("naive", 1024), ("chunked-online", 1024),
         ("linear-elu", 1024), ("performer-64", 1024)]  # fmt: skip


def _call(name: str, n: int):
    q, k, v = make_inputs(Case(name, n))
    spec = get_variant(name)

    def call():
        with torch.inference_mode():
            return spec(q, k, v)

    return call


def _ours(call) -> tuple[float, float, float]:
    """(wall seconds to stop, median, IQR/median)."""
    began = time.perf_counter()
    m = time_callable(call, max_time_s=5.0)
    return time.perf_counter() - began, m.median, m.summary.iqr_ratio


def _theirs(call) -> tuple[float, float, float]:
    timer = tub.Timer("call()", globals={"call": call}, num_threads=torch.get_num_threads())
    began = time.perf_counter()
    m = timer.adaptive_autorange(threshold=TARGET_IQR_RATIO, max_run_time=5.0)
    return time.perf_counter() - began, m.median, m.iqr / m.median


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.bench.timercheck", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating pairs per case (default 3)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    pin_allocator()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{torch.get_num_threads()} threads; median of {args.rounds} alternating pairs per case; fp32 B=1 H=8 D=64 forward")
    print(f"{'case':22} {'ours s':>7} {'TUB s':>7} {'wall ratio':>10} {'ours/TUB':>8} {'IQR ours':>8} {'IQR TUB':>8}")
    wall_ratios, ours_vs_theirs = [], []
    for name, n in CASES:
        call = _call(name, n)
        ours, theirs = [], []
        for round_ in range(args.rounds):
            pair = (_ours, _theirs) if round_ % 2 == 0 else (_theirs, _ours)
            results = {f: f(call) for f in pair}
            ours.append(results[_ours])
            theirs.append(results[_theirs])
        o_wall, o_med, o_iqr = (statistics.median(x) for x in zip(*ours))
        t_wall, t_med, t_iqr = (statistics.median(x) for x in zip(*theirs))
        wall_ratios.append(o_wall / t_wall)
        ours_vs_theirs.append(o_med / t_med)
        print(
            f"{f'{name} N={n}':22} {o_wall:7.3f} {t_wall:7.3f} {o_wall / t_wall:10.2f} {o_med / t_med:8.3f} "
            f"{o_iqr:8.1%} {t_iqr:8.1%}"
        )
        sys.stdout.flush()
    geomean = math.exp(statistics.fmean(math.log(r) for r in wall_ratios))
    print(f"time to stop, ours / TUB adaptive_autorange(0.05): geomean {geomean:.2f}")
    print(f"median agreement, ours / TUB: {min(ours_vs_theirs):.3f} .. {max(ours_vs_theirs):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
