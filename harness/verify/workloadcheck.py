"""Print the figures masks, grouped heads and decoding are held to.

    python -m harness.verify.workloadcheck [--rounds 7] [--threads N]

1. A banded mask must skip hidden work: chunked-online with ``sliding:128``
   at N=4096 (fp32, B=1, H=8, D=64, forward) against the same call with no
   mask, timed in interleaved rounds; target >= 6x (ideal ~16x at block 128).
2. Decoding is memory-bound: one query against a 32768-key cache (fp32, B=4,
   H=8, H_kv=2, D=128), each exact variant's achieved GB/s of the least
   traffic (q, K, V read once, the output written) as a share of this
   machine's copy bandwidth (2 x bytes / time of a 512 MiB ``copy_``),
   measured in the same run; target: the best >= 25%.

Ratios from one run, medians of interleaved rounds. Exit status 1 when a
target is missed. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time

import torch

from variants import get_variant

from ..measure.allocator import pin_allocator
from ..measure.case import Case, seeded_qkv
from ..measure.measure_case import case_bytes

DECODE = Case("naive", 32768, batch=4, heads=8, heads_kv=2, head_dim=128, mode="decode", mask="causal-br", threads=1)
DECODE_VARIANTS = ["naive", "sdpa", "sdpa-math", "sdpa-flash", "chunked-query", "chunked-online"]


def interleaved_medians(calls: dict[str, callable], rounds: int) -> dict[str, float]:
    """Median seconds per call of each callable, one call each per round after one untimed call."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    with torch.inference_mode():
        for fn in calls.values():
            fn()
        for _ in range(rounds):
            for name, fn in calls.items():
                start = time.perf_counter_ns()
                fn()
                samples[name].append((time.perf_counter_ns() - start) * 1e-9)
    return {name: statistics.median(s) for name, s in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.verify.workloadcheck", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or (args.threads is not None and args.threads < 1):
        parser.error("--rounds and --threads must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    pin_allocator()
    print(f"{torch.get_num_threads()} threads, {args.rounds} interleaved rounds")

    online = get_variant("chunked-online")
    q, k, v = seeded_qkv(4096, heads=8, d=64)
    t = interleaved_medians({"none": lambda: online(q, k, v), "sliding:128": lambda: online(q, k, v, mask="sliding:128")},
                            args.rounds)  # fmt: skip
    banded = t["none"] / t["sliding:128"]
    print(f"\n1. chunked-online N=4096: no mask {t['none'] * 1e3:.1f} ms, sliding:128 {t['sliding:128'] * 1e3:.1f} ms")
    print(f"   speedup {banded:.1f}x  target >= 6  {'ok' if banded >= 6 else 'MISSED'}")

    q, k, v = seeded_qkv(1, DECODE.seq_len, batch=4, heads=8, heads_kv=2, d=128)
    src = torch.empty(512 * 2**20 // 4)
    src.fill_(1.0)
    dst = torch.empty_like(src)
    calls = {name: functools.partial(get_variant(name), q, k, v, mask=DECODE.mask) for name in DECODE_VARIANTS}
    t = interleaved_medians({**calls, "copy": lambda: dst.copy_(src)}, args.rounds)
    copy_gbps = 2 * src.numel() * 4 / t.pop("copy") / 1e9
    moved = case_bytes(DECODE)
    print(f"\n2. decode, N_kv={DECODE.seq_len} B=4 H=8 H_kv=2 D=128 fp32: {moved / 2**20:.0f} MiB moved per call;")
    print(f"   copy bandwidth {copy_gbps:.1f} GB/s")
    for name, seconds in sorted(t.items(), key=lambda item: item[1]):
        gbps = moved / seconds / 1e9
        print(f"   {name:15} {seconds * 1e3:8.2f} ms {gbps:6.1f} GB/s {gbps / copy_gbps:6.1%}  ({get_variant(name).gqa_method})")
    best = moved / min(t.values()) / 1e9 / copy_gbps
    print(f"   best {best:.1%} of copy bandwidth  target >= 25%  {'ok' if best >= 0.25 else 'MISSED'}")
    return 0 if banded >= 6 and best >= 0.25 else 1


if __name__ == "__main__":
    sys.exit(main())
