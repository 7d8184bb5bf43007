"""Launch-bound rows: times that measure how fast the host queues work, not how fast the kernel runs.

On a CUDA device the event timer (`harness.measure.cuda_timing.launch_bound_warning`) warns on a row whose
device time per call is no longer than the host's time to queue it: the GPU sat idle between kernels, so the
events timed the launches. Such a row stays in the results and in every table with its warning, but it says
nothing about the kernel, so the time fits, the time crossovers and the fastest-variant findings leave it out
(two names for one kernel read 2x apart at small N; a naive kernel reads slower at 1K than at 2K). A row timed
as CUDA graph replays (timer "cuda_graph") has no launch gaps between its kernels and is never launch-bound; nor is
one whose graph capture failed on a copy from pageable host memory (`cuda_timing.HOST_COPY`): such a call makes the
host wait for the device, so its queueing time holds the device's and the test does not apply (runs from before
the timer said "host-synchronizing" carry both warnings).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..measure.cuda_timing import HOST_COPY

PREFIX = "launch-bound"  # how the timer's warning begins (cuda_timing.launch_bound_warning)
# A CSV keeps a row's warnings joined with "; " -- and the warning itself holds "; " -- so a joined cell is read
# as launch-bound when one of its entries *begins* with the prefix: at the start, or right after a separator.
_JOINED = re.compile(rf"(?:^|; ){re.escape(PREFIX)}")


def listed_warnings(value) -> list:
    """A ``warnings`` cell as a list (a list, an array from parquet, or missing in older runs)."""
    return [] if value is None or (isinstance(value, float) and np.isnan(value)) else list(value)


def _warns_launch_bound(value) -> bool:
    """Whether one ``warnings`` cell holds a launch-bound entry: a list or array (JSONL, parquet), a string
    joined with "; " (CSV), or nothing."""
    if isinstance(value, str):
        return bool(_JOINED.search(value)) and HOST_COPY not in value
    entries = [str(entry) for entry in listed_warnings(value)]
    return any(e.startswith(PREFIX) for e in entries) and not any(HOST_COPY in e for e in entries)


def launch_bound(table: pd.DataFrame) -> pd.Series:
    """A boolean Series over ``table``'s rows: true where the row's warnings include a "launch-bound" entry
    and it was not timed as CUDA graph replays. All false for a table without a ``warnings`` column."""
    if "warnings" not in table:
        return pd.Series(False, index=table.index, dtype=bool)
    warned = table["warnings"].map(_warns_launch_bound).astype(bool)
    if "timer" not in table:  # a run from before the timer was recorded: it had no CUDA graphs
        return warned
    return warned & ~table["timer"].eq("cuda_graph")


def without_launch_bound(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` less its launch-bound rows: what a time fit, a time crossover or a fastest-variant finding reads."""
    return table[~launch_bound(table)]
