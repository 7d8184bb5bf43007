"""Check the measurement core against independent references and print the figures.

    python -m harness.bench.selfcheck [--device cpu|cuda]

1. the harness timer's median over a reference timer's, same op, same
   threads, same process (alternating, so drifts in machine speed hit both):
   torch.utils.benchmark on a CPU; on CUDA triton's ``do_bench``, which
   flushes L2 between calls as ours does (torch.utils.benchmark times warm
   back-to-back calls: a comparison of unlike things), when triton is installed;
2. measured peak memory over the analytic size of the tensors each variant
   must hold at its high-water mark;
3. the calibrated ceilings (`attnbench calibrate`);
4. every exact variant's achieved GFLOP/s at N=2048 as a fraction of the
   matmul ceiling.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys

import torch
import torch.utils.benchmark as tub

from variants import get_variant, list_variants

from ..measure.allocator import pin_allocator
from ..measure.case import Case, make_inputs
from ..measure.ceilings import calibrate
from ..measure.measure_case import measure_case
from ..measure.memory import warm_peak_bytes
from ..measure.sampling import TARGET_IQR_RATIO
from ..measure.timing import time_callable

FP32 = 4
COMPARE_MIN_TIME_S = 0.3


def paired_ratios(name: str, n: int, *, device: str = "cpu", rounds: int = 9, max_time_s: float = 1.0):
    """Per round, (harness / torch.utils.benchmark, torch.utils.benchmark again / torch.utils.benchmark).

    The second ratio is the reference timer against itself: how far two
    honest timings of the same call drift apart on this machine right now,
    the yardstick for the first. The three timings of a round run in rotating
    order, so a drift of machine speed hits each alike. Every timing samples
    for at least COMPARE_MIN_TIME_S (then stops on its own precision rule, at
    most ``max_time_s``): an adaptive timer stops sooner in a quiet spell, so
    two timers allowed a handful of samples select different spells, and
    their medians differ by the machine's noise, not by the timers.
    """
    case = Case(name, n, device=device)
    q, k, v = make_inputs(case)
    spec = get_variant(name)

    def call():
        with torch.inference_mode():
            return spec(q, k, v)

    def ours() -> float:
        # Events as do_bench times them: no re-timing of a launch-bound call as graph replays.
        return time_callable(call, device, max_time_s=max_time_s, min_time_s=COMPARE_MIN_TIME_S, replay_launch_bound=False).median

    def theirs() -> float:
        if reference_timer(device) == "triton.testing.do_bench":
            from triton.testing import do_bench

            with torch.cuda.device(device):  # its events and L2 flush on the case's device
                return do_bench(call, warmup=25, rep=int(max_time_s * 1e3), return_mode="median") * 1e-3  # ms -> s
        timer = tub.Timer("call()", globals={"call": call}, num_threads=torch.get_num_threads())
        return timer.adaptive_autorange(TARGET_IQR_RATIO, min_run_time=COMPARE_MIN_TIME_S, max_run_time=max_time_s).median

    against, itself = [], []
    timers = [("ours", ours), ("theirs", theirs), ("again", theirs)]
    for r in range(rounds):
        t = {label: timer() for label, timer in timers[r % 3 :] + timers[: r % 3]}
        against.append(t["ours"] / t["theirs"])
        itself.append(t["again"] / t["theirs"])
    return against, itself


def reference_timer(device: str) -> str:
    """The timer ours is compared with on ``device``: like against like (an L2 flush between calls on CUDA)."""
    if torch.device(device).type == "cuda" and importlib.util.find_spec("triton") is not None:
        return "triton.testing.do_bench"
    return "torch.utils.benchmark"


def timer_ratio(name: str, n: int, *, device: str = "cpu", rounds: int = 9) -> float:
    """Median over ``rounds`` of harness median / torch.utils.benchmark median (`paired_ratios`)."""
    return statistics.median(paired_ratios(name, n, device=device, rounds=rounds)[0])


def analytic_peak_bytes(name: str, n: int, *, causal: bool = False, heads: int = 8, d: int = 64) -> int:
    """Bytes live at the high-water mark of the built-in variants' fp32 forward (B=1)."""
    out = heads * n * d * FP32
    if name == "naive":  # scores and probabilities, the causal mask (bool) if any, the output
        return 2 * heads * n * n * FP32 + (n * n if causal else 0) + out
    if name == "chunked-query":  # the reused (H, block, N) tile, the scaled copy of q, the output
        block = get_variant(name).params["block"]
        return heads * min(block, n) * n * FP32 + out + out
    raise ValueError(f"no analytic memory model for {name}")


def measured_peak_bytes(name: str, n: int, *, causal: bool = False, device: str = "cpu") -> int:
    q, k, v = make_inputs(Case(name, n, causal=causal, device=device))
    spec = get_variant(name)
    return warm_peak_bytes(lambda: spec(q, k, v, causal=causal), device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.bench.selfcheck", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("device cuda is not available on this machine")
    device = args.device
    pin_allocator()
    threads = torch.get_num_threads()
    print(f"device {device}, {threads} threads, fp32, B=1 H=8 D=64, forward")

    theirs = reference_timer(device)
    print(f"\n1. timer median / {theirs} median, beside {theirs} against itself")
    if device == "cuda" and theirs == "torch.utils.benchmark":
        print(
            "   (triton is not installed: torch.utils.benchmark does not flush L2 between calls, ours does,"
            " so ours reads slower on cases whose inputs fit in L2)"
        )
    for name, n in [("sdpa", 1024), ("naive", 512), ("chunked-online", 1024)]:
        against, itself = paired_ratios(name, n, device=device)
        print(f"   {name:15} N={n:<5} {statistics.median(against):.3f}   (itself: {min(itself):.3f}..{max(itself):.3f})")

    print("\n2. measured peak / analytic size of the live tensors (target 0.90..1.10)")
    for name, n, causal in [("naive", 2048, False), ("naive", 1024, True), ("chunked-query", 4096, False)]:
        measured = measured_peak_bytes(name, n, causal=causal, device=device)
        expected = analytic_peak_bytes(name, n, causal=causal)
        label = f"{name}{' causal' if causal else ''}"
        print(f"   {label:15} N={n:<5} {measured / 2**20:8.1f} MiB / {expected / 2**20:8.1f} MiB = {measured / expected:.3f}")

    print("\n3. calibrated ceilings")
    ceilings = calibrate(device)
    for dtype, gflops in ceilings["matmul_gflops"].items():
        print(f"   matmul {dtype:9} {gflops:8.1f} GFLOP/s")
    print(f"   copy             {ceilings['copy_gbps']:8.1f} GB/s")

    ceiling = ceilings["matmul_gflops"]["float32"]
    print(f"\n4. achieved GFLOP/s at N=2048, fraction of the fp32 matmul ceiling ({ceiling:.0f} GFLOP/s)")
    for name in list_variants():
        spec = get_variant(name)
        if not spec.exact:
            continue
        r = measure_case(Case(name, 2048, device=device), memory=False)
        if r.status != "ok":
            print(f"   {name:15} {r.status}: {r.reason}")
            continue
        print(f"   {name:15} {r.gflops_per_s:8.1f} GFLOP/s  {r.gflops_per_s / ceiling:6.1%}  ({r.time_median_s * 1e3:.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
