"""Print what packing saves: documents of unequal length in one sequence, against the dense and padded ways.

    python -m harness.bench.packcheck [--n 8192] [--docs 8] [--rounds 5] [--threads N]

At N=8192 (fp32, B=1, H=8, D=64, forward) with ``docs:8`` (eight documents, log-normal lengths from a fixed
seed): chunked-online and flex under the packed mask against the same kernel unmasked, sdpa under the packed
mask (a dense boolean mask), sdpa-padded (the documents padded to the longest and run as a batch) and
sdpa-nested under the bidirectional twin (this torch's nested SDPA takes no causal mask), all timed in
interleaved rounds so a slow period falls on all alike. Target: chunked-online packed >= 3x faster than
unmasked (the ideal is N² over the visible pairs). sdpa-padded's padding fraction is printed beside it.

Exit status 1 when the target is missed. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import functools
import sys

import torch

from variants import Unsupported, get_variant
from variants.masks import parse_mask

from ..measure.allocator import pin_allocator
from ..measure.case import Case, seeded_qkv
from .workloadcheck import interleaved_medians


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.bench.packcheck", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8192)
    parser.add_argument("--docs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    pin_allocator()
    n, heads = args.n, 8
    packed, bidirectional = parse_mask(f"docs:{args.docs}"), parse_mask(f"docs-bi:{args.docs}")
    lengths = packed.doc_lengths(n)
    ideal = n * n / packed.visible_pairs(n, n)
    q, k, v = seeded_qkv(n, heads=heads, d=64, seed=0)
    wanted = {
        "chunked-online unmasked": ("chunked-online", "none"), "chunked-online packed": ("chunked-online", packed),
        "flex unmasked": ("flex", "none"), "flex packed": ("flex", packed), "sdpa unmasked": ("sdpa", "none"),
        "sdpa packed": ("sdpa", packed), "sdpa-padded packed": ("sdpa-padded", packed),
        "sdpa-padded bidirectional": ("sdpa-padded", bidirectional), "sdpa-nested bidirectional": ("sdpa-nested", bidirectional),
        "sdpa-nested packed": ("sdpa-nested", packed),
    }  # fmt: skip
    calls = {}
    with torch.inference_mode():
        for label, (name, mask) in wanted.items():
            call = functools.partial(get_variant(name), q, k, v, mask=mask)
            try:
                call()  # the first call: compiles flex, and says whether the variant serves the mask
            except Unsupported as exc:
                print(f"{label}: not served ({exc})")
                continue
            except Exception as exc:  # noqa: BLE001 — a library's fault (a compile error) is printed, not fatal
                print(f"{label}: failed ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]})")
                continue
            calls[label] = call
    times = interleaved_medians(calls, args.rounds)
    padding = get_variant("sdpa-padded").padding(Case("sdpa-padded", n, heads=heads, threads=args.threads, mask=packed))
    print(f"\nN={n}, {packed} (lengths {'+'.join(map(str, lengths))}), fp32, B=1, H={heads}, D=64, forward, "
          f"{args.threads} threads; median of {args.rounds} interleaved rounds; ideal N²/visible pairs {ideal:.2f}x")  # fmt: skip
    fastest = min(times.values())
    for label, t in times.items():
        print(f"{label:28} {t * 1e3:10.1f} ms   {t / fastest:6.2f}x the fastest")
    print(f"sdpa-padded padding fraction: {padding:.1%} of its {len(lengths)}x{max(lengths)} tokens")
    missed = []
    for name in ("chunked-online", "flex"):
        if f"{name} packed" in times and f"{name} unmasked" in times:
            speedup = times[f"{name} unmasked"] / times[f"{name} packed"]
            print(f"{name}: packed {speedup:.2f}x faster than unmasked ({speedup / ideal:.0%} of the ideal {ideal:.2f}x)")
            if name == "chunked-online" and speedup < 3:
                missed.append(f"chunked-online packed only {speedup:.2f}x faster than unmasked (target 3x)")
    for line in missed:
        print(f"MISSED: {line}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
