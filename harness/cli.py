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
import shlex
import signal
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch

from variants import UnknownVariant, Unsupported, get_variant, list_variants
from variants.plugins import PluginError, load_plugins

from .arguments import SWEEP_FLAGS, build_parser
from .measure.allocator import pin_allocator
from .measure.ceilings import cache_path, calibrate
from .measure.device import DeviceError, check_device, device_name
from .measure.fields import BY_NAME
from .measure.parsers import SweepError
from .measure.record import MEASURED
from .measure.threads import thread_count
from .report.console import print_results
from .report.text import ceilings_text, comparison_text, variants_text
from .run.isolated import run_checks
from .run.progress import Progress, summary_lines
from .run.results import ResultsError, load_env, load_results
from .run.runner import RunError, RunFailed, run_sweep
from .run.sweep import build_sweep, expand
from .verify.checks import verdict

# The report (matplotlib, seaborn), the comparison and the pytest-benchmark export are imported by the
# commands that use them: ~0.7 s that `list`, `check` and a sweep without --report need not pay.

RESULTS_ROOT = Path("results")
REPORT_ROOT = Path("report")


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit status 2."""


BAD_INPUT = (UsageError, SweepError, DeviceError, RunError, ResultsError, UnknownVariant, Unsupported, PluginError)


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
    threads = torch.get_num_threads() if args.threads is None else BY_NAME["threads"].normalize(args.threads)
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


def _sweep_from_args(args: argparse.Namespace):
    load_plugins(args.plugin)  # before the sweep is checked: plugin variants are valid names
    overrides = {name: getattr(args, name) for name in SWEEP_FLAGS}
    sweep = build_sweep(args.preset, args.config, **overrides)
    if not expand(sweep):
        raise UsageError("the sweep has no cases: no requested variant is available on the requested devices")
    return sweep


def cmd_sweep(args: argparse.Namespace) -> int:
    sweep = _sweep_from_args(args)
    custom = args.config or any(getattr(args, name) is not None for name in SWEEP_FLAGS)
    name = args.preset or ("sweep" if custom else "quick")  # a custom grid is not the quick preset's run
    out = Path(args.out) if args.out else RESULTS_ROOT / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    summary = run_sweep(sweep, out, resume=args.resume, plugins=args.plugin, progress=Progress(), strict=args.strict,
                        executor=args.executor, ray_address=args.ray_address)  # fmt: skip
    print_results(load_results(out))
    print("\n".join(summary_lines(summary)))
    if args.report:
        print(f"report: {_write_report([out], REPORT_ROOT / out.name, None)}")
    else:
        print(f"next: attnbench report {shlex.quote(str(out))}")
    failed = {s: n for s, n in summary.counts.items() if s in ("crash", "error", "timeout", "oom")}
    if failed and not any(summary.counts.get(s) for s in MEASURED):  # nothing measured, and not for want of asking
        how = ", ".join(f"{n} {s}" for s, n in sorted(failed.items()))
        print(f"attnbench sweep: error: no case could be measured ({how}); see {out / 'worker.log'}", file=sys.stderr)
        return 1
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
    passed, lines = verdict(args.name, device, results)
    print("\n".join(lines))
    return 0 if passed else 1


def cmd_compare(args: argparse.Namespace) -> int:
    try:
        threshold = float(args.threshold)
    except ValueError:
        raise UsageError(f"--threshold must be a number, got {args.threshold!r}") from None
    if not threshold > 0:
        raise UsageError(f"--threshold must be positive, got {args.threshold!r}")
    base, new = load_results(args.base), load_results(args.new)
    from .analyze.compare import compare_runs

    table = compare_runs(base, new, threshold=threshold, metric=args.metric, adjusted=not args.unadjusted)
    in_both = ~table["verdict"].isin(["only in base", "only in new"])
    if not in_both.any():
        raise UsageError(f"nothing to compare: {args.base} and {args.new} have no case in common")
    print(comparison_text(table, args.metric, threshold, adjusted=not args.unadjusted))
    return 1 if (table["verdict"] == "regression").any() else 0


def cmd_export(args: argparse.Namespace) -> int:
    frame, env = load_results(args.run), load_env(args.run)
    out = Path(args.out)
    if out.is_dir() or not out.parent.is_dir():
        raise UsageError(f"--out {out}: " + ("is a directory" if out.is_dir() else f"no such directory {out.parent}"))
    try:
        from .report.export import write_pytest_benchmark
    except ModuleNotFoundError as exc:
        if exc.name != "pytest_benchmark":
            raise
        raise UsageError("needs pytest-benchmark: pip install -e '.[bench]'") from None
    try:
        count = write_pytest_benchmark(frame, env, out)
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror}") from None
    print(f"wrote {count} benchmarks to {args.out} (pytest-benchmark JSON)")
    return 0


def _write_report(runs: list[Path], out: Path, baseline: str | None) -> Path:
    """The report of ``runs`` in ``out``; a failure to write it (a full disk) is one line: the runs are intact."""
    from .report.build import build_report

    try:
        return build_report(runs, out, baseline=baseline)
    except OSError as exc:
        again = " ".join(shlex.quote(str(r)) for r in runs)
        raise RunFailed(f"cannot write the report to {out}: {exc.strerror}; the runs are intact: write it again "
                        f"with attnbench report {again} --out {shlex.quote(str(out))}") from None  # fmt: skip


def cmd_report(args: argparse.Namespace) -> int:
    runs = [Path(r) for r in args.runs]
    out = Path(args.out) if args.out else REPORT_ROOT / "-".join(r.resolve().name for r in runs)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; a report is a directory")
    print(f"report: {_write_report(runs, out, args.baseline)}")
    print(f"summary: {out / 'summary.md'}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    print_results(load_results(args.run))
    return 0


COMMANDS = {"list": cmd_list, "sweep": cmd_sweep, "run": cmd_run, "show": cmd_show, "report": cmd_report,
            "check": cmd_check, "compare": cmd_compare, "export": cmd_export, "calibrate": cmd_calibrate}  # fmt: skip


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"attnbench: warning: {message}", file=sys.stderr)


class Terminated(BaseException):
    """SIGTERM arrived: unwind like Ctrl-C (a BaseException, so no ``except Exception`` on the way swallows it),
    ending workers and their fork servers on the way out."""


def _terminate(signum, frame) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.func = COMMANDS[args.command]
    warnings.showwarning = _one_line_warning
    main_thread = threading.current_thread() is threading.main_thread()  # only it may set handlers
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        return args.func(args)
    except (*BAD_INPUT, RunFailed) as exc:
        if args.debug:
            traceback.print_exc()
        message = exc.args[0] if exc.args else str(exc)
        print(f"attnbench {args.command}: error: {message}", file=sys.stderr)
        return 1 if isinstance(exc, RunFailed) else 2  # a sweep that failed part-way, or bad input
    except (KeyboardInterrupt, Terminated) as exc:
        how, code = ("terminated", 143) if isinstance(exc, Terminated) else ("interrupted", 130)
        print(f"attnbench {args.command}: {how}; finished cases are kept (use --resume)", file=sys.stderr)
        return code
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
