"""The measurement harness, one package per pipeline stage, data flowing one way:

    measure/  one case in this process -> one Record (timing, memory, accuracy, ceilings)
    verify/   the contract checks a variant is held to; benchmark scripts of the core
    run/      a sweep through isolated worker processes -> a run folder (results table)
    analyze/  results table -> fits, crossovers, fastest-per-N, quality, comparisons
    report/   tables -> HTML report, Markdown, figures, pytest-benchmark JSON, terminal text
    cli.py    the ``attnbench`` command, a thin layer over the functions below

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

_EXPORTS = {  # name -> module (the stages: measure -> verify -> run -> analyze -> report)
    "Case": "measure.case",
    "make_inputs": "measure.case",
    "Record": "measure.record",
    "measure_case": "measure.measure_case",
    "measure_accuracy": "measure.accuracy",
    "reference_attention": "measure.reference",
    "calibrate": "measure.ceilings",
    "Measurement": "measure.sampling",
    "time_callable": "measure.timing",
    "quiet_check": "measure.interference",
    "check_variant": "verify.checks",
    "PRESETS": "run.presets",
    "Sweep": "run.sweep",
    "build_sweep": "run.sweep",
    "expand": "run.sweep",
    "run_sweep": "run.runner",
    "load_results": "run.results",
    "load_run": "run.results",
    "fit_table": "analyze.tables",
    "crossover_table": "analyze.tables",
    "compare_runs": "analyze.compare",
    "build_report": "report.build",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
