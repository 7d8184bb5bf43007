"""Print the figures masks, grouped heads and decoding are held to.

    python -m harness.bench.workloadcheck [--rounds 7] [--threads N]

1. A banded mask must skip hidden work: chunked-online with ``sliding:128``
   at N=4096 (fp32, B=1, H=8, D=64, forward) against the same call with no
   mask, timed in interleaved rounds; target >= 6x (ideal ~16x at block 128).
2. Decoding is memory-bound: one query against a 32768-key cache (fp32, B=4,
   H=8, H_kv=2, D=128), each exact variant's achieved GB/s of the least
   traffic (q, K, V read once, the output written) as a share of this
   machine's copy bandwidth (2 x bytes / time of a 512 MiB ``copy_``),
   measured in the same run; target: the best >= 25%.
3. FlexAttention's block mask must skip hidden tiles: flex with
   ``sliding:256`` at N=8192 (fp32, B=1, H=8, D=64, forward) against flex
   with no mask; target >= 5x; flex and `local` there within 1e-5 of float64.

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

from ..measure.accuracy import relative_error
from ..measure.allocator import pin_allocator
from ..measure.case import Case, seeded_qkv
from ..measure.case_work import case_bytes
from ..measure.reference import reference_attention

DECODE = Case("naive", 32768, batch=4, heads=8, heads_kv=2, head_dim=128, mode="decode", mask="causal-br", threads=1)
BANDED = Case("flex", 8192, heads=8, head_dim=64, mask="sliding:256", input_scale=1.5, threads=1)
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
    parser = argparse.ArgumentParser(prog="python -m harness.bench.workloadcheck", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or (args.threads is not None and args.threads < 1):
        parser.error("--rounds and --threads must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    pin_allocator()
    print(f"{torch.get_num_threads()} threads, {args.rounds} interleaved rounds")
    results = [banded_speedup(args.rounds), decode_bandwidth(args.rounds), flex_banded(args.rounds)]
    return 0 if all(results) else 1


def banded_speedup(rounds: int) -> bool:
    online = get_variant("chunked-online")
    q, k, v = seeded_qkv(4096, heads=8, d=64)
    t = interleaved_medians({"none": lambda: online(q, k, v), "sliding:128": lambda: online(q, k, v, mask="sliding:128")},
                            rounds)  # fmt: skip
    banded = t["none"] / t["sliding:128"]
    print(f"\n1. chunked-online N=4096: no mask {t['none'] * 1e3:.1f} ms, sliding:128 {t['sliding:128'] * 1e3:.1f} ms")
    print(f"   speedup {banded:.1f}x  target >= 6  {'ok' if banded >= 6 else 'MISSED'}")
    return banded >= 6


def decode_bandwidth(rounds: int) -> bool:
    q, k, v = seeded_qkv(1, DECODE.seq_len, batch=4, heads=8, heads_kv=2, d=128)
    src = torch.empty(512 * 2**20 // 4)
    src.fill_(1.0)
    dst = torch.empty_like(src)
    calls = {name: functools.partial(get_variant(name), q, k, v, mask=DECODE.mask) for name in DECODE_VARIANTS}
    t = interleaved_medians({**calls, "copy": lambda: dst.copy_(src)}, rounds)
    copy_gbps = 2 * src.numel() * 4 / t.pop("copy") / 1e9
    moved = case_bytes(DECODE)
    print(f"\n2. decode, N_kv={DECODE.seq_len} B=4 H=8 H_kv=2 D=128 fp32: {moved / 2**20:.0f} MiB moved per call;")
    print(f"   copy bandwidth {copy_gbps:.1f} GB/s")
    for name, seconds in sorted(t.items(), key=lambda item: item[1]):
        gbps = moved / seconds / 1e9
        print(f"   {name:15} {seconds * 1e3:8.2f} ms {gbps:6.1f} GB/s {gbps / copy_gbps:6.1%}  ({get_variant(name).gqa_method})")
    best = moved / min(t.values()) / 1e9 / copy_gbps
    print(f"   best {best:.1%} of copy bandwidth  target >= 25%  {'ok' if best >= 0.25 else 'MISSED'}")
    return best >= 0.25


def flex_banded(rounds: int) -> bool:
    """FlexAttention's block mask must skip hidden tiles, and `local` must be exact, at N=8192 under sliding:256."""
    flex, local = get_variant("flex"), get_variant("local")
    q, k, v = seeded_qkv(BANDED.seq_len, heads=BANDED.heads, d=BANDED.head_dim, scale=BANDED.input_scale)
    started = time.perf_counter()
    flex(q[:, :, :256], k[:, :, :256], v[:, :, :256], mask=BANDED.mask)  # compiles (dynamic shapes)
    compile_s = time.perf_counter() - started
    calls = {
        "flex none": lambda: flex(q, k, v),
        f"flex {BANDED.mask}": lambda: flex(q, k, v, mask=BANDED.mask),
        f"local {BANDED.mask}": lambda: local(q, k, v, mask=BANDED.mask),
    }
    t = interleaved_medians(calls, rounds)
    speedup = t["flex none"] / t[f"flex {BANDED.mask}"]
    rows = torch.arange(0, BANDED.seq_len, 7)  # every 7th query: the float64 reference of all 8192 is 2 GB of scores
    errors = {name: relative_error(get_variant(name)(q, k, v, mask=BANDED.mask)[:, :, rows],
                                   reference_attention(q, k, v, mask=BANDED.mask, rows=rows))
              for name in ("flex", "local")}  # fmt: skip
    print(f"\n3. {BANDED.mask} at N={BANDED.seq_len} (fp32, B=1, H={BANDED.heads}, D={BANDED.head_dim}, forward);"
          f" flex's first call (compile) {compile_s:.1f} s")  # fmt: skip
    for name, seconds in t.items():
        print(f"   {name:20} {seconds * 1e3:9.1f} ms")
    print(f"   flex speedup from the block mask {speedup:.1f}x  target >= 5  {'ok' if speedup >= 5 else 'MISSED'}")
    exact = all(err <= 1e-5 for err in errors.values())
    print("   error against float64: " + ", ".join(f"{n} {e:.1e}" for n, e in errors.items())
          + f"  target <= 1e-5  {'ok' if exact else 'MISSED'}")  # fmt: skip
    return speedup >= 5 and exact


if __name__ == "__main__":
    sys.exit(main())
