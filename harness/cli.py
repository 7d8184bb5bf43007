"""The ``attnbench`` command line.

Every subcommand is a thin layer over an importable function. Bad input
(a `UsageError`, `SweepError`, `DeviceError`, `RunError`, `ResultsError`,
`UnknownVariant` or `Unsupported`) is one line on stderr and exit status 2,
with no traceback unless ``--debug``; nothing is written before input is
checked. Anything else is a bug, and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch

from variants import UnknownVariant, Unsupported, get_variant, list_variants

from .analyze.compare import METRICS, compare_runs
from .measure.allocator import pin_allocator
from .measure.ceilings import cache_path, calibrate
from .measure.device import DeviceError, check_device, device_name
from .measure.threads import thread_count
from .report.build import build_report
from .report.export import write_pytest_benchmark
from .report.text import ceilings_text, comparison_text, variants_text
from .run.isolated import run_checks
from .run.plugins import load_plugins
from .run.progress import Progress, summary_lines
from .run.results import ResultsError, load_env, load_results
from .run.runner import RunError, RunFailed, run_sweep
from .run.settings import FLAG_NAMES, SweepError, normalize
from .run.sweep import SWEEP_FIELDS, build_sweep, expand
from .verify.checks import verdict_lines

RESULTS_ROOT = Path("results")
REPORT_ROOT = Path("report")


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit status 2."""


BAD_INPUT = (UsageError, SweepError, DeviceError, RunError, ResultsError, UnknownVariant, Unsupported)


class Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line (no usage block) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def cmd_list(args: argparse.Namespace) -> int:
    load_plugins(args.plugin)
    rows = [get_variant(name).describe() for name in list_variants(args.pattern)]
    if not rows:
        raise UsageError(f"no variant matches {args.pattern!r}; known: {', '.join(list_variants())}")
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(variants_text(rows))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    device = check_device(args.device)
    threads = torch.get_num_threads() if args.threads is None else normalize("threads", args.threads)
    pin_allocator()
    print(f"calibrating {device} ({device_name(device)}, {threads} threads)...", file=sys.stderr)
    with thread_count(threads):
        ceilings = calibrate(device, refresh=not args.cached)
    if args.json:
        print(json.dumps(ceilings, indent=2))
        return 0
    print(ceilings_text(ceilings))
    print(f"cached in {cache_path()}")
    return 0


# argparse attribute -> Sweep field: "--max-time" gives args.max_time for max_time_s (settings.FLAG_NAMES).
SWEEP_FLAGS = {
    FLAG_NAMES.get(f, "--" + f).removeprefix("--").replace("-", "_"): f for f in SWEEP_FIELDS if f not in ("max_seq_len", "grids")
}


def _sweep_from_args(args: argparse.Namespace):
    load_plugins(args.plugin)  # before the sweep is checked: plugin variants are valid names
    overrides = {field: getattr(args, flag) for flag, field in SWEEP_FLAGS.items()}
    sweep = build_sweep(args.preset, args.config, **overrides)
    if not expand(sweep):
        raise UsageError("the sweep has no cases: no requested variant is available on the requested devices")
    return sweep


def cmd_sweep(args: argparse.Namespace) -> int:
    sweep = _sweep_from_args(args)
    out = Path(args.out) if args.out else RESULTS_ROOT / f"{args.preset or 'quick'}-{time.strftime('%Y%m%d-%H%M%S')}"
    summary = run_sweep(sweep, out, resume=args.resume, plugins=args.plugin, progress=Progress(), strict=args.strict,
                        executor=args.executor, ray_address=args.ray_address)  # fmt: skip
    print("\n".join(summary_lines(summary)))
    if args.report:
        index = build_report([out], REPORT_ROOT / out.name)
        print(f"report: {index}")
    else:
        print(f"next: attnbench report {out}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    args.preset = args.preset or "quick"
    args.report = True
    return cmd_sweep(args)


def cmd_check(args: argparse.Namespace) -> int:
    """Exit 0 only when at least one check ran and every check that ran passed."""
    load_plugins(args.plugin)
    device = check_device(args.device)
    spec = get_variant(args.name)
    unavailable = spec.unavailable_reason(device)
    if unavailable:
        print(f"{args.name}: no check can run here: {args.name} {unavailable}")
        return 1
    with tempfile.TemporaryDirectory(prefix="attnbench-check-") as scratch:
        results = run_checks(args.name, device, args.plugin, Path(scratch) / "worker.log")
    print("\n".join(verdict_lines(args.name, device, results)))
    return 0 if any(r["passed"] for r in results) and not any(r["passed"] is False for r in results) else 1


def cmd_compare(args: argparse.Namespace) -> int:
    try:
        threshold = float(args.threshold)
    except ValueError:
        raise UsageError(f"--threshold must be a number, got {args.threshold!r}") from None
    if not threshold > 0:
        raise UsageError(f"--threshold must be positive, got {args.threshold!r}")
    base, new = load_results(args.base), load_results(args.new)
    table = compare_runs(base, new, threshold=threshold, metric=args.metric)
    in_both = ~table["verdict"].isin(["only in base", "only in new"])
    if not in_both.any():
        raise UsageError(f"nothing to compare: {args.base} and {args.new} have no case in common")
    print(comparison_text(table, args.metric, threshold))
    return 1 if (table["verdict"] == "regression").any() else 0


def cmd_export(args: argparse.Namespace) -> int:
    frame, env = load_results(args.run), load_env(args.run)
    out = Path(args.out)
    if out.is_dir() or not out.parent.is_dir():
        raise UsageError(f"--out {out}: " + ("is a directory" if out.is_dir() else f"no such directory {out.parent}"))
    try:
        count = write_pytest_benchmark(frame, env, out)
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror}") from None
    print(f"wrote {count} benchmarks to {args.out} (pytest-benchmark JSON)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    runs = [Path(r) for r in args.runs]
    out = Path(args.out) if args.out else REPORT_ROOT / "-".join(r.resolve().name for r in runs)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; a report is a directory")
    try:
        index = build_report(runs, out, baseline=args.baseline)
    except OSError as exc:
        raise UsageError(f"cannot write the report to {out}: {exc.strerror}") from None
    print(f"report: {index}")
    print(f"summary: {out / 'summary.md'}")
    return 0


def _plugin_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plugin", action="append", default=[], metavar="PATH_OR_MODULE", help="load variants from here")


def _add_sweep_flags(p: argparse.ArgumentParser, *, with_grid: bool = True) -> None:
    p.add_argument("--preset", help="quick (default), default or full")
    p.add_argument("--out", help="run directory (default results/<preset>-<time>)")
    p.add_argument("--resume", action="store_true", help="finish a killed sweep in --out: run only unrecorded cases")
    _plugin_flag(p)
    p.add_argument("--threads", help="torch threads per worker (default: torch's own)")
    p.add_argument("--timeout", help="seconds per case before its worker is killed")
    p.add_argument("--max-time", help="seconds per case for the timing loop's cap")
    p.add_argument("--strict", action="store_true", help="refuse to run on a busy machine (the quiet check fails)")
    p.add_argument("--executor", choices=("local", "ray"), default="local", help="where cases run (default local)")
    p.add_argument("--ray-address", metavar="HOST:PORT", help="the Ray cluster's head (default: a local Ray instance)")
    if not with_grid:
        p.set_defaults(config=None, **dict.fromkeys(flag for flag in SWEEP_FLAGS if p.get_default(flag) is None))
        return
    p.add_argument("--config", help="sweep TOML file (keys: the Sweep fields)")
    p.add_argument("--variants", help="comma-separated names, or 'all' (default: all available)")
    p.add_argument("--seq-lens", help="128,256,512 or 128:8192:x2")
    p.add_argument("--batch", help="comma-separated batch sizes")
    p.add_argument("--heads", help="comma-separated head counts")
    p.add_argument("--head-dim", help="comma-separated head dims")
    p.add_argument("--dtype", help="comma-separated: float32,bfloat16,float16,float64")
    p.add_argument("--causal", help="comma-separated: false,true (the older spelling of --mask none,causal)")
    p.add_argument("--mask", help="comma-separated: none,causal,causal-br,sliding:W,document:K,prefix:P")
    p.add_argument("--kv-heads", help="comma-separated key/value head counts, each dividing --heads (grouped-query)")
    p.add_argument("--mode", help="comma-separated: fwd,fwd_bwd,decode")
    p.add_argument("--q-len", help="queries of a decode case, at the end of the N keys (default 1)")
    p.add_argument("--device", help="comma-separated: cpu,cuda")
    p.add_argument("--input-scale", help="standard deviation of the Gaussian inputs")
    p.add_argument("--seed", help="seed of inputs and random projections")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="attnbench", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    p = sub.add_parser("list", help="list the registered attention variants")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style name filter, e.g. 'sdpa*'")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _plugin_flag(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("sweep", help="run a sweep and write its results table")
    _add_sweep_flags(p)
    p.add_argument("--report", action="store_true", help="write the report when the sweep ends")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("run", help="the quick start: the quick preset on this machine")
    _add_sweep_flags(p, with_grid=False)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="write the report (HTML, Markdown, figures, tables) of one or more runs")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", help="report directory (default report/<run names>)")
    p.add_argument("--baseline", default="sdpa", help="variant the speedup figure compares with (default sdpa)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("check", help="run the registry's contract and accuracy checks on one variant")
    p.add_argument("name", help="registered variant name")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    _plugin_flag(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("compare", help="per-case ratios of two runs; exit 1 on a regression beyond threshold and noise")
    p.add_argument("base", metavar="BASE_RUN")
    p.add_argument("new", metavar="NEW_RUN")
    p.add_argument("--threshold", default="0.10", help="relative change that counts (default 0.10)")
    p.add_argument("--metric", default="time", choices=sorted(METRICS), help="time (default) or memory")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("export", help="write a run as a pytest-benchmark JSON document")
    p.add_argument("run", metavar="RUN")
    p.add_argument("--format", default="pytest-benchmark", choices=["pytest-benchmark"])
    p.add_argument("--out", required=True, help="output JSON file")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("calibrate", help="measure this machine's matmul GFLOP/s and copy GB/s ceilings")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--threads", default=None, help="torch threads (default: torch's own)")
    p.add_argument("--cached", action="store_true", help="print the cached ceilings if there are any")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_calibrate)
    for command in sub.choices.values():  # --debug after the command too; SUPPRESS keeps a leading one
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for errors")
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"attnbench: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    warnings.showwarning = _one_line_warning
    try:
        return args.func(args)
    except (*BAD_INPUT, RunFailed) as exc:
        if args.debug:
            traceback.print_exc()
        message = exc.args[0] if exc.args else str(exc)
        print(f"attnbench {args.command}: error: {message}", file=sys.stderr)
        return 1 if isinstance(exc, RunFailed) else 2  # a sweep that failed part-way, or bad input
    except KeyboardInterrupt:
        print(f"attnbench {args.command}: interrupted; finished cases are kept (use --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
