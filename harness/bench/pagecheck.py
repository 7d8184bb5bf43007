"""Print what a paged KV cache costs in decode: the best paged variant against the best contiguous one.

    python -m harness.bench.pagecheck [--n 8192] [--batch 8] [--rounds 5] [--threads N]

One query per sequence against an N-key cache (fp32, B=8, H=32, H_kv=8, D=128, causal-br), the cache
contiguous or in pages of P = 16 and 256 tokens in a shuffled pool (`variants.paged`). Every variant's time,
and its achieved GB/s of the least traffic (q, K, V read once, the output written, the block table read) as a
share of this machine's copy bandwidth (2 x bytes / time of a 512 MiB ``copy_``), all in interleaved rounds.
Target: the best paged variant at P = 16 within 1.5x of the best contiguous one.

Exit status 1 when the target is missed. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import functools
import sys

import torch

from variants import Unsupported, get_variant
from variants.paged import page

from ..measure.allocator import pin_allocator
from ..measure.case import Case, seeded_qkv
from ..measure.case_work import case_bytes
from .workloadcheck import interleaved_medians

CONTIGUOUS = ["naive", "sdpa", "chunked-query", "chunked-online", "flex"]
PAGED = ["gather", "chunked-online", "flex"]
PAGE_SIZES = [16, 256]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.bench.pagecheck", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8192)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    pin_allocator()
    q, k, v = seeded_qkv(1, args.n, batch=args.batch, heads=32, heads_kv=8, d=128)
    calls = {f"{name} contiguous": functools.partial(get_variant(name), q, k, v, mask="causal-br") for name in CONTIGUOUS}
    for size in PAGE_SIZES:
        k_pool, v_pool, pages = page(k, v, size, seed=0)
        for name in PAGED:
            calls[f"{name} paged:{size}"] = functools.partial(get_variant(name), q, k_pool, v_pool, mask="causal-br", pages=pages)
    src = torch.empty(512 * 2**20 // 4).fill_(1.0)
    dst = torch.empty_like(src)
    try:
        times = interleaved_medians({**calls, "copy": lambda: dst.copy_(src)}, args.rounds)
    except Unsupported as exc:
        print(f"cannot run: {exc}")
        return 1
    copy_gbps = 2 * src.numel() * 4 / times.pop("copy") / 1e9
    print(f"decode, N_kv={args.n} B={args.batch} H=32 H_kv=8 D=128 fp32, {args.threads} threads; median of "
          f"{args.rounds} interleaved rounds; copy bandwidth {copy_gbps:.1f} GB/s")  # fmt: skip
    shape = {"batch": args.batch, "heads": 32, "heads_kv": 8, "head_dim": 128, "mode": "decode", "threads": 1}
    for label, seconds in sorted(times.items(), key=lambda item: item[1]):
        layout = label.split()[1]
        moved = case_bytes(Case("gather", args.n, kv_layout=layout, **shape))
        gbps = moved / seconds / 1e9
        print(f"  {label:28} {seconds * 1e3:9.2f} ms {gbps:7.1f} GB/s {gbps / copy_gbps:7.1%} of copy")
    best_contiguous = min(t for label, t in times.items() if label.endswith("contiguous"))
    missed = False
    for size in PAGE_SIZES:
        best_paged = min(t for label, t in times.items() if label.endswith(f"paged:{size}"))
        cost = best_paged / best_contiguous
        target = " (target <= 1.5x)" if size == 16 else ""
        print(f"  paged:{size}: best paged / best contiguous = {cost:.2f}x{target}")
        missed |= size == 16 and cost > 1.5
    if missed:
        print("MISSED: the best paged variant at P = 16 is more than 1.5x the best contiguous one")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
