"""The measurement harness: cases, timing, memory, accuracy, runner, results, report, CLI.

The command line's functions, importable (a notebook can do what the CLI does)::

    from harness import build_report, build_sweep, load_results, run_sweep
    summary = run_sweep(build_sweep("quick", seq_lens="128:1024:x2"), "results/mine")
    table = load_results("results/mine")
    build_report(["results/mine"], "report/mine")

Names are imported on first use (PEP 562), so a worker process that needs
only `harness.measure` does not pay for pandas and seaborn at start.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Case": "case",
    "make_inputs": "case",
    "PRESETS": "sweep",
    "Sweep": "sweep",
    "build_sweep": "sweep",
    "expand": "sweep",
    "Record": "measure",
    "measure_case": "measure",
    "measure_accuracy": "accuracy",
    "reference_attention": "reference",
    "calibrate": "ceilings",
    "Measurement": "timing",
    "time_callable": "timing",
    "quiet_check": "interference",
    "check_variant": "checks",
    "compare_runs": "compare",
    "build_report": "report",
    "load_results": "results",
    "run_sweep": "runner",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
