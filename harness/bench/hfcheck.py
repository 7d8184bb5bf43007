"""Print Transformers' attention functions against ours on the same cases, timed interleaved.

    python -m harness.bench.hfcheck [--rounds 9]

hf-sdpa over sdpa and hf-eager over naive (fp32, B=1, H=32, H_kv=8, D=128: Llama-like heads; forward;
N = 1024 and 4096, causal; and decoding one query against 4096 keys). hf-sdpa calls the same kernel as sdpa
under Transformers' rules, so the target is within 10 %; hf-eager differs from naive in its softmax dtype and in
repeating K and V for grouped heads, which the ratio shows. Needs ``.[hf]``; exit status 1 when the target is
missed. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import functools

from variants import get_variant

from ..measure.allocator import pin_allocator
from ..measure.case import seeded_qkv
from .workloadcheck import interleaved_medians

TARGET = 1.10
CASES = [(1024, 1024, "causal"), (4096, 4096, "causal"), (1, 4096, "causal-br")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.bench.hfcheck", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)
    if get_variant("hf-sdpa").unavailable_reason("cpu"):
        print(f"hf-sdpa {get_variant('hf-sdpa').unavailable_reason('cpu')}")
        return 1
    pin_allocator()
    missed = False
    for n_q, n_kv, mask in CASES:
        q, k, v = seeded_qkv(n_q, n_kv, heads=32, heads_kv=8, d=128)
        names = ("sdpa", "hf-sdpa", "naive", "hf-eager")
        calls = {name: functools.partial(get_variant(name), q, k, v, mask=mask) for name in names}
        t = interleaved_medians(calls, args.rounds)
        sdpa_ratio, eager_ratio = t["hf-sdpa"] / t["sdpa"], t["hf-eager"] / t["naive"]
        missed |= sdpa_ratio > TARGET
        print(f"N_q={n_q} N_kv={n_kv} {mask}: sdpa {t['sdpa'] * 1e3:.2f} ms, hf-sdpa {sdpa_ratio:.3f}x of it; "
              f"naive {t['naive'] * 1e3:.2f} ms, hf-eager {eager_ratio:.3f}x of it")  # fmt: skip
    print(f"target: hf-sdpa within {TARGET:.2f}x of sdpa: {'missed' if missed else 'met'}")
    return int(missed)


if __name__ == "__main__":
    raise SystemExit(main())
