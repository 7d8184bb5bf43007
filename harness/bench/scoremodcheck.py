"""Print what each score modification costs: time with it over time without it, and SDPA's bias memory.

    python -m harness.bench.scoremodcheck [--n 4096] [--rounds 5] [--threads N]

At N=4096 (fp32, B=1, H=8, D=64, forward, no mask): for naive, sdpa,
chunked-online and flex, the median time of each modification (alibi,
softcap:50, rel-bias:32) over the same call without one, timed in
interleaved rounds (all variants and modifications in every round, so a slow
period falls on all alike). Target: chunked-online's softcap ratio <= 1.5
(the cap is per score; the matmuls and the exp dominate). Then SDPA's extra peak
memory under ALiBi against the analytic N²·H·4 bytes of its float bias.

Exit status 1 when a target is missed. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import functools
import sys

import torch

from variants import Unsupported, get_variant

from ..measure.allocator import pin_allocator
from ..measure.case import seeded_qkv
from ..measure.memory import peak_memory
from .workloadcheck import interleaved_medians

VARIANTS = ["naive", "sdpa", "chunked-online", "flex"]
MODS = ["none", "alibi", "softcap:50", "rel-bias:32"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.bench.scoremodcheck", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    pin_allocator()
    heads, n = 8, args.n
    q, k, v = seeded_qkv(n, heads=heads, d=64, seed=0)
    calls = {}
    with torch.inference_mode():
        for name in VARIANTS:
            for mod in MODS:
                call = functools.partial(get_variant(name), q, k, v, score_mod=mod)
                try:
                    call()  # the first call: compiles flex, and says whether the variant serves the modification
                except Unsupported as exc:
                    print(f"{name} {mod}: not served ({exc})")
                    continue
                calls[(name, mod)] = call
    times = interleaved_medians({f"{name} {mod}": call for (name, mod), call in calls.items()}, args.rounds)
    print(f"\nN={n}, fp32, B=1, H={heads}, D=64, forward, {args.threads} threads; median of {args.rounds} interleaved rounds")
    print(f"{'variant':16}" + "".join(f"{mod:>14}" for mod in MODS))
    missed = []
    for name in VARIANTS:
        base = times.get(f"{name} none")
        cells = []
        for mod in MODS:
            t = times.get(f"{name} {mod}")
            cells.append("-" if t is None or base is None else (f"{t * 1e3:.1f} ms" if mod == "none" else f"{t / base:.2f}x"))
            if name.startswith("chunked") and mod.startswith("softcap") and t and base and t / base > 1.5:
                missed.append(f"{name} softcap ratio {t / base:.2f} > 1.5")
        print(f"{name:16}" + "".join(f"{c:>14}" for c in cells))
    sdpa = get_variant("sdpa")
    with torch.inference_mode():
        peaks = {mod: peak_memory(functools.partial(sdpa, q, k, v, score_mod=mod)).peak_bytes for mod in ("none", "alibi")}
    analytic = n * n * heads * 4
    extra = peaks["alibi"] - peaks["none"]
    print(f"\nsdpa under alibi: {extra / 2**20:.1f} MiB more peak memory than without; the float bias N²·H·4 is "
          f"{analytic / 2**20:.1f} MiB (ratio {extra / analytic:.2f})")  # fmt: skip
    if extra < analytic:
        missed.append("sdpa's extra memory under alibi is below its bias's size")
    for line in missed:
        print(f"MISSED: {line}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
