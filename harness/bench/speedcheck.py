"""Print the speed and memory ratios the built-in variants are held to.

    python -m harness.bench.speedcheck [--seq-len 4096] [--rounds 7] [--threads N]

fp32, B=1, H=8, D=64, forward, non-causal. Variants are timed in interleaved
rounds (each round calls every variant once, after one untimed warm-up call)
so that a change in machine load hits all of them alike, and each ratio is a
ratio of medians from this one run. Peak memory is measured in a separate
pass with the allocator's events (`harness.measure.memory`). The targets:

- chunked-online within 1.5x of sdpa's time, peak memory O(N) (its peak grows
  ~2x from N/2 to N, while naive's grows ~4x);
- chunked-query no slower than naive;
- linear-elu and performer-256 faster than sdpa.

Exit status 1 when a target is missed. A benchmark, not a test: it prints
figures for people to read and is not run by the test suite.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from variants import get_variant

from ..measure.allocator import pin_allocator
from ..measure.case import seeded_qkv
from ..measure.memory import warm_peak_bytes

VARIANTS = ["sdpa", "naive", "chunked-query", "chunked-online", "linear-elu", "performer-256"]


def inputs(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seeded Gaussian q, k, v of shape (1, 8, n, 64), fp32."""
    return seeded_qkv(n, heads=8, d=64)


def interleaved_medians(names: list[str], n: int, rounds: int) -> dict[str, float]:
    """Median seconds per call of each variant, timed round-robin."""
    q, k, v = inputs(n)
    fns = {name: get_variant(name) for name in names}
    for fn in fns.values():
        fn(q, k, v)  # untimed first call: lazy initialization, caches
    samples: dict[str, list[float]] = {name: [] for name in names}
    with torch.inference_mode():
        for _ in range(rounds):
            for name, fn in fns.items():
                start = time.perf_counter_ns()
                fn(q, k, v)
                samples[name].append((time.perf_counter_ns() - start) * 1e-9)
    return {name: statistics.median(s) for name, s in samples.items()}


def peak_bytes(name: str, n: int) -> int:
    q, k, v = inputs(n)
    fn = get_variant(name)
    return warm_peak_bytes(lambda: fn(q, k, v))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.bench.speedcheck", description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args(argv)
    if args.seq_len < 2 or args.rounds < 1 or (args.threads is not None and args.threads < 1):
        parser.error("--seq-len must be >= 2, --rounds and --threads >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    pin_allocator()
    n = args.seq_len

    print(f"fp32 B=1 H=8 D=64 N={n}, forward, {torch.get_num_threads()} threads, {args.rounds} interleaved rounds")
    t = interleaved_medians(VARIANTS, n, args.rounds)
    mem = {name: peak_bytes(name, n) for name in VARIANTS}
    half = {name: peak_bytes(name, n // 2) for name in ("naive", "chunked-online")}
    print(f"{'variant':16} {'median ms':>10} {'peak MiB':>10}")
    for name in VARIANTS:
        print(f"{name:16} {t[name] * 1e3:10.1f} {mem[name] / 2**20:10.1f}")

    checks = [
        ("chunked-online time / sdpa time", t["chunked-online"] / t["sdpa"], "<=", 1.5),
        ("chunked-query time / naive time", t["chunked-query"] / t["naive"], "<=", 1.0),
        ("linear-elu time / sdpa time", t["linear-elu"] / t["sdpa"], "<", 1.0),
        ("performer-256 time / sdpa time", t["performer-256"] / t["sdpa"], "<", 1.0),
        ("chunked-online peak / naive peak", mem["chunked-online"] / mem["naive"], "<", 0.10),
        (f"chunked-online peak N={n} / N={n // 2}", mem["chunked-online"] / half["chunked-online"], "<=", 2.2),
        (f"naive peak N={n} / N={n // 2} (O(N^2): ~4)", mem["naive"] / half["naive"], ">=", 3.5),
    ]
    ops = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b}
    failed = 0
    print()
    for label, ratio, op, bound in checks:
        ok = ops[op](ratio, bound)
        failed += not ok
        print(f"{label:44} {ratio:7.3f}  target {op} {bound:<5} {'ok' if ok else 'MISSED'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
