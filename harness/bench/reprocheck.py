"""Print how well a sweep's numbers reproduce: A/A, A/B and the coverage of its stated intervals.

    python -m harness.bench.reprocheck [--out DIR] [--rounds 3] [--threshold 0.10]

Runs one 20-case sweep (naive, sdpa, chunked-online, linear-elu and
performer-64 at N = 256, 512, 1024, 2048; fp32 forward, B=1, H=8, D=64)
three times back to back, then once more with each variant made 30 % slower
on purpose (`harness.bench.plus30`), and prints:

- A/A: for each pair of the three identical runs, how many of the 20 cases
  `attnbench compare` calls a regression or an improvement (target: at most
  1 each, exit 0);
- A/B: how many of the 20 cases of the slowed run it calls a regression
  against the last identical run (target: at least 18); the slowed variants
  carry other names, so their rows are matched to the built-ins' by variant
  and N;
- coverage: for every ordered pair of identical runs, the share of cases
  whose later median lies inside the earlier run's stated 95 % interval
  (target: at least 90 %), both as measured and at one machine speed (in
  each run's canary units, as compare reads them);
- each run's wall time and its share inside timed calls.

Exit status 1 when a target is missed. A benchmark, not a test: minutes of
machine time, figures for people to read; not run by the test suite. It sits
above the stages, as the command line does: it runs sweeps and compares them.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from ..analyze.compare import compare_runs
from ..run.results import load_results
from ..run.runner import run_sweep
from ..run.sweep import build_sweep
from . import plus30

VARIANTS = list(plus30.SLOWED)
SEQ_LENS = "256,512,1024,2048"


def sweep_once(out: Path, rounds: int, plugin: bool) -> tuple[pd.DataFrame, float, float]:
    """(results, wall seconds, seconds inside timed calls) of one run of the 20 cases (or their slowed twins)."""
    variants = ",".join(f"{v}-plus30" if plugin else v for v in VARIANTS)
    sweep = build_sweep("quick", variants=variants, seq_lens=SEQ_LENS, rounds=rounds)
    summary = run_sweep(sweep, out, plugins=[plus30.__file__] if plugin else [], progress=False)
    return load_results(out), summary.wall_s, summary.timed_s


def as_builtins(slowed: pd.DataFrame, builtins: pd.DataFrame) -> pd.DataFrame:
    """The slowed run's rows under the built-ins' names and case ids (matched by variant and N)."""
    ids = builtins.set_index(["variant", "seq_len"])["case_id"]
    renamed = slowed.assign(variant=slowed["variant"].str.removesuffix("-plus30"))
    return renamed.assign(case_id=[ids.get((v, n)) for v, n in zip(renamed["variant"], renamed["seq_len"])])


def flagged(table: pd.DataFrame) -> int:
    return int(table["verdict"].isin(["regression", "improvement"]).sum())


def coverage(first: pd.DataFrame, later: pd.DataFrame, adjusted: bool) -> tuple[int, int]:
    """(cases whose later time lies inside the first run's interval, cases compared)."""
    joined = first.merge(later, on="case_id", suffixes=("_a", "_b"))
    joined = joined[(joined["status_a"] == "ok") & (joined["status_b"] == "ok")]
    inside = 0
    for r in joined.to_dict("records"):
        value = r["time_median_s_b"]
        if adjusted and r["canary_ref_s_a"] and r["canary_ref_s_b"]:
            value = value / r["canary_ref_s_b"] * r["canary_ref_s_a"]  # the later time at the first run's reference speed
        elif not adjusted:
            value = r["time_unadjusted_s_b"]
            scale = r["time_unadjusted_s_a"] / r["time_median_s_a"]  # the first interval as measured
            inside += r["time_ci_low_s_a"] * scale <= value <= r["time_ci_high_s_a"] * scale
            continue
        inside += r["time_ci_low_s_a"] <= value <= r["time_ci_high_s_a"]
    return inside, len(joined)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.bench.reprocheck", description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="folder for the four runs (default: a temporary one)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threshold", type=float, default=0.10)
    args = parser.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="reprocheck-"))
    runs, failed = [], False
    for index in range(3):
        frame, wall, timed = sweep_once(root / f"aa{index + 1}", args.rounds, plugin=False)
        runs.append(frame)
        print(f"run A{index + 1}: {len(frame)} cases, wall {wall:.1f} s, {timed / wall:.0%} inside timed calls", flush=True)
    slowed, wall, timed = sweep_once(root / "ab", args.rounds, plugin=True)
    print(f"run B (+30 % work): wall {wall:.1f} s, {timed / wall:.0%} inside timed calls")

    print(f"\nA/A (compare, threshold {args.threshold:.0%}): cases flagged of 20, target <= 1")
    for (i, a), (j, b) in itertools.combinations(enumerate(runs, 1), 2):
        n = flagged(compare_runs(a, b, threshold=args.threshold))
        raw = flagged(compare_runs(a, b, threshold=args.threshold, adjusted=False))
        failed |= n > 1
        print(f"  A{i} vs A{j}: {n} flagged ({raw} comparing unadjusted times)")

    table = compare_runs(runs[-1], as_builtins(slowed, runs[-1]), threshold=args.threshold)
    slower = int((table["verdict"] == "regression").sum())
    failed |= slower < 18
    print(f"\nA/B: {slower} of {len(table)} cases flagged slower (target >= 18); ratios "
          f"{table['ratio'].min():.2f}-{table['ratio'].max():.2f}, median {table['ratio'].median():.2f}")  # fmt: skip
    for verdict, group in table.groupby("verdict"):
        print(f"  {verdict}: " + ", ".join(f"{v} N={n} ({r:.2f})" for v, n, r in zip(group["variant"], group["seq_len"],
                                                                                    group["ratio"])))  # fmt: skip

    print("\ncoverage: a rerun's time inside the first run's 95% interval (target >= 90%)")
    totals = {True: [0, 0], False: [0, 0]}
    for a, b in itertools.permutations(runs, 2):
        for adjusted in (True, False):
            inside, n = coverage(a, b, adjusted)
            totals[adjusted][0] += inside
            totals[adjusted][1] += n
    for adjusted, (inside, n) in totals.items():
        share = inside / n if n else 0.0
        failed |= adjusted and share < 0.9
        print(f"  {'at one machine speed' if adjusted else 'as measured'}: {inside} of {n} ({share:.0%})")
    width = {r["case_id"]: (r["time_ci_high_s"] - r["time_ci_low_s"]) / 2 / r["time_median_s"]
             for frame in runs for r in frame.to_dict("records") if r["status"] == "ok"}  # fmt: skip
    print(f"  stated half-widths: median {pd.Series(width).median():.1%}, max {pd.Series(width).max():.1%}")
    print(f"\nruns in {root}")
    return 1 if failed else 0


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"reprocheck: {time.monotonic() - started:.0f} s")
    sys.exit(code)
