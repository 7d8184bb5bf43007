"""The ``attnbench`` command line.

Every subcommand is a thin layer over an importable function. Bad input is a
`UsageError` (or an unknown-variant `KeyError`): one line on stderr, exit
status 2, no traceback unless ``--debug``.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from typing import Any, Sequence

import torch

import variants
from variants import get_variant, list_variants

from .allocator import pin_allocator
from .ceilings import cache_path, calibrate, device_name


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit status 2."""


def variant_table(pattern: str = "*") -> list[dict[str, Any]]:
    """One dict per registered variant: its spec and whether it can run on this machine."""
    rows = []
    for name in list_variants(pattern):
        spec = get_variant(name)
        reason = spec.unavailable_reason()
        rows.append(
            {
                "name": spec.name,
                "family": spec.family,
                "exact": spec.exact,
                "time": spec.time,
                "memory": spec.memory,
                "devices": list(spec.devices),
                "dtypes": list(spec.dtypes),
                "causal": spec.causal,
                "backward": spec.backward,
                "params": dict(spec.params),
                "requires": spec.requires,
                "randomized": spec.randomized,
                "available": reason is None,
                "unavailable_reason": reason,
                "doc": spec.doc,
            }
        )
    return rows


def format_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """Left-aligned plain-text table of ``columns`` (keys of each row)."""
    cells = [[str(r[c]) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def cmd_list(args: argparse.Namespace) -> int:
    rows = variant_table(args.pattern)
    if not rows:
        raise UsageError(f"no variant matches {args.pattern!r}; known: {', '.join(list_variants())}")
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    shown = [
        {
            **r,
            "exact": "yes" if r["exact"] else "no",
            "devices": ",".join(r["devices"]),
            "params": ",".join(f"{k}={v}" for k, v in r["params"].items()) or "-",
            "available here": "yes" if r["available"] else f"no: {r['unavailable_reason']}",
        }
        for r in rows
    ]
    print(format_table(shown, ["name", "family", "exact", "time", "memory", "devices", "params", "available here"]))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    device = check_device(args.device)
    if args.threads is not None:
        torch.set_num_threads(positive_int(args.threads, "--threads"))
    pin_allocator()
    print(f"calibrating {device} ({device_name(device)}, {torch.get_num_threads()} threads)...", file=sys.stderr)
    ceilings = calibrate(device, refresh=not args.cached)
    if args.json:
        print(json.dumps(ceilings, indent=2))
        return 0
    n = ceilings["matmul_size"]
    for dtype, gflops in ceilings["matmul_gflops"].items():
        print(f"matmul {n}x{n} {dtype:9} {gflops:10.1f} GFLOP/s")
    print(f"copy {ceilings['copy_bytes'] / 2**20:.0f} MiB        {ceilings['copy_gbps']:10.1f} GB/s (read + write)")
    print(f"cached in {cache_path()}")
    return 0


def check_device(device: str) -> str:
    """A device this machine has, or a `UsageError` saying why not."""
    if device not in ("cpu", "cuda"):
        raise UsageError(f"unknown device {device!r}; use cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("device cuda is not available on this machine (torch sees no CUDA device)")
    return device


def positive_int(value: str | int, flag: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise UsageError(f"{flag} must be a positive integer, got {value!r}") from None
    if number < 1:
        raise UsageError(f"{flag} must be a positive integer, got {value!r}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attnbench", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list the registered attention variants")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style name filter, e.g. 'sdpa*'")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("calibrate", help="measure this machine's matmul GFLOP/s and copy GB/s ceilings")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--threads", default=None, help="torch threads (default: torch's own)")
    p.add_argument("--cached", action="store_true", help="print the cached ceilings if there are any")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_calibrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse itself exits 2 with one usage line on bad flags
    try:
        return args.func(args)
    except (UsageError, KeyError, variants.Unsupported) as exc:
        if args.debug:
            traceback.print_exc()
        message = exc.args[0] if exc.args else str(exc)
        print(f"attnbench {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
