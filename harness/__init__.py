"""The measurement harness: cases, timing, memory, accuracy, runner, results, CLI.

The command line's functions, importable (a notebook can do what the CLI does)::

    from harness import build_sweep, run_sweep, load_results
    summary = run_sweep(build_sweep("quick", seq_lens="128:1024:x2"), "results/mine")
    table = load_results("results/mine")
"""

from .accuracy import measure_accuracy
from .case import Case, make_inputs
from .ceilings import calibrate
from .measure import Record, measure_case
from .reference import reference_attention
from .results import load_results
from .runner import run_sweep
from .sweep import PRESETS, Sweep, build_sweep, expand

__all__ = [
    "Case",
    "PRESETS",
    "Record",
    "Sweep",
    "build_sweep",
    "calibrate",
    "expand",
    "load_results",
    "make_inputs",
    "measure_accuracy",
    "measure_case",
    "reference_attention",
    "run_sweep",
]
