"""The ``attnbench`` argument parser: every command and flag, and nothing they do (`harness.cli`)."""

from __future__ import annotations

import argparse
import importlib.metadata

from .analyze.compare import METRICS
from .measure.fields import FIELDS


def _version() -> str:
    try:
        return importlib.metadata.version("attnbench")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


class Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line (no usage block) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


# The sweep fields with a flag, each stored under its own name (args.max_time_s for --max-time).
SWEEP_FLAGS = [f.name for f in FIELDS if f.option]


def _plugin_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plugin", action="append", default=[], metavar="PATH_OR_MODULE", help="load variants from here")


def _add_sweep_flags(p: argparse.ArgumentParser, *, with_grid: bool = True) -> None:
    p.add_argument("--preset", help="quick (default), default, workloads, gpu or full")
    p.add_argument("--out", help="run directory (default results/<preset>-<time>; sweep-<time> for a custom grid)")
    p.add_argument("--resume", action="store_true", help="finish a killed sweep in --out: run only unrecorded cases")
    _plugin_flag(p)
    p.add_argument("--strict", action="store_true", help="refuse to run on a busy machine (the quiet check fails)")
    p.add_argument("--executor", choices=("local", "ray"), default="local", help="where cases run (default local)")
    p.add_argument("--ray-address", metavar="HOST:PORT", help="the Ray cluster's head (default: a local Ray instance)")
    if with_grid:
        p.add_argument("--config", help="sweep TOML file (keys: the Sweep fields)")
    p.set_defaults(config=None, **dict.fromkeys(SWEEP_FLAGS))  # a flag not given is None: the preset's value stands
    for f in FIELDS:  # the quick start takes how to measure, not what
        if f.option and (with_grid or not f.workload):
            p.add_argument(f.option, dest=f.name, help=f.help, **({"action": "store_true", "default": None} if f.switch else {}))


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="attnbench", description="Benchmark self-attention variants: sweep, check, report, compare.")
    parser.add_argument("--version", action="version", version=f"attnbench {_version()}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    p = sub.add_parser("list", help="list the registered attention variants")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style name filter, e.g. 'sdpa*'")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _plugin_flag(p)

    p = sub.add_parser("sweep", help="run a sweep and write its results table")
    _add_sweep_flags(p)
    p.add_argument("--report", action="store_true", help="write the report when the sweep ends")

    p = sub.add_parser("run", help="the quick start: the quick preset on this machine")
    _add_sweep_flags(p, with_grid=False)

    p = sub.add_parser("show", help="print a finished run's results: variants x N, per configuration")
    p.add_argument("run", metavar="RUN_DIR")

    p = sub.add_parser("report", help="write the report (HTML, Markdown, figures, tables) of one or more runs")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", help="report directory (default report/<run names>)")
    p.add_argument("--baseline", help="variant the speedup figure compares with (default sdpa, where it ran)")

    p = sub.add_parser("check", help="run the registry's contract and accuracy checks on one variant")
    p.add_argument("name", help="registered variant name")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    _plugin_flag(p)

    p = sub.add_parser("compare", help="per-case ratios of two runs; exit 1 on a regression beyond threshold and noise")
    p.add_argument("base", metavar="BASE_RUN")
    p.add_argument("new", metavar="NEW_RUN")
    p.add_argument("--threshold", default="0.10", help="relative change that counts (default 0.10)")
    p.add_argument(
        "--unadjusted",
        action="store_true",
        help="compare times as measured, not each at its run's reference machine speed (the canary)",
    )
    p.add_argument("--metric", default="time", choices=sorted(METRICS), help="time (default) or memory")

    p = sub.add_parser("export", help="write a run as a pytest-benchmark JSON document")
    p.add_argument("run", metavar="RUN")
    p.add_argument("--format", default="pytest-benchmark", choices=["pytest-benchmark"])
    p.add_argument("--out", required=True, help="output JSON file")

    p = sub.add_parser("calibrate", help="measure this machine's matmul GFLOP/s and copy GB/s ceilings")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--threads", default=None, help="torch threads (default: torch's own)")
    p.add_argument("--cached", action="store_true", help="print the cached ceilings if there are any")
    p.add_argument("--json", action="store_true", help="print JSON")
    for command in sub.choices.values():  # --debug after the command too; SUPPRESS keeps a leading one
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for errors")
    return parser
