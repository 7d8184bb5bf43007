"""The results store: append-only JSONL while a sweep runs, parquet and CSV after.

``cases.jsonl`` gets one line per finished case, flushed and fsynced, so a
killed sweep loses at most the case in flight; a torn last line (the kill
landed mid-write) is skipped with a warning. Consolidation turns the JSONL
into ``results.parquet`` and ``results.csv``, one row per case. Nothing here
executes code from a results file: JSON, parquet and CSV only, formats that hold data, not objects.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

CASES_FILE = "cases.jsonl"
PARQUET_FILE = "results.parquet"
CSV_FILE = "results.csv"
ENV_FILE = "env.json"
SWEEP_FILE = "sweep.json"
MAPS_FILE = "attention_maps.json"
LOCK_FILE = ".lock"
LOG_FILE = "worker.log"

# DESIGN.md "Results table", in order; then the extra columns the harness keeps.
COLUMNS = [
    "run_id", "variant", "family", "exact", "device", "device_name", "dtype", "mode",
    "causal", "batch", "heads", "seq_len", "head_dim", "threads", "input_scale", "params",
    "status", "reason",
    "time_median_s", "time_iqr_s", "time_p20_s", "time_p80_s", "time_min_s", "time_mean_s",
    "n_samples", "block_size", "noisy",
    "runqueue_wait_ratio", "cpu_utilization", "discarded_blocks", "load_avg", "steal_ratio",
    "peak_mem_bytes", "mem_method",
    "flops", "gflops_per_s",
    "rel_err", "max_abs_err", "cosine", "err_rows",
    "case_id", "seed", "backend", "n_outliers", "stop_reason", "warnings", "time_samples_s",
]  # fmt: skip


class ResultsError(Exception):
    """A results path that cannot be read as results; one line saying why."""


class JsonlWriter:
    """Appends records to ``cases.jsonl``, each line written and fsynced before returning.

    Unbuffered: when a write fails (a full disk), nothing is left in a buffer
    to fail again on close, and every line before it is already on disk.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, record: dict[str, Any]) -> None:
        data = memoryview((json.dumps(record, allow_nan=True) + "\n").encode())
        while data:
            data = data[os.write(self._fd, data) :]
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a ``cases.jsonl``; a torn (unterminated, unparsable) last line is skipped with a warning."""
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            is_last = number == len(lines) or all(not rest.strip() for rest in lines[number:])
            if is_last:
                warnings.warn(
                    f"{path}: skipping a torn last line ({len(line)} bytes; the sweep was interrupted mid-write)", stacklevel=2
                )
                continue
            raise ResultsError(f"{path}: line {number} is not valid JSON") from None
    return records


def repair_torn_tail(path: Path) -> None:
    """Make ``cases.jsonl`` end in a newline before appending to it again.

    An unterminated last line that parses (the kill landed between the record
    and its newline) is a finished case, which `read_jsonl` counted as done:
    it gets its newline. One that does not parse is cut off; its case runs again.
    """
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n") + 1
    try:
        json.loads(data[cut:])
    except ValueError:
        path.write_bytes(data[:cut])
        return
    with open(path, "ab") as f:
        f.write(b"\n")


def to_frame(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per record with the table's columns in order (later records win on a repeated case_id)."""
    frame = pd.DataFrame.from_records(list(records))
    for column in COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    frame = frame[COLUMNS + [c for c in frame.columns if c not in COLUMNS]]
    if len(frame):
        repeated = frame.duplicated(subset=["run_id", "case_id"], keep="last")
        if repeated.any():
            warnings.warn(
                f"{int(repeated.sum())} case(s) recorded more than once (two sweeps wrote one folder?); "
                "keeping the last record of each",
                stacklevel=2,
            )
            frame = frame[~repeated].reset_index(drop=True)
    return frame


def consolidate(run_dir: Path) -> pd.DataFrame:
    """Write ``results.parquet`` and ``results.csv`` from the run's JSONL; returns the table."""
    frame = to_frame(read_jsonl(run_dir / CASES_FILE))
    frame.to_parquet(run_dir / PARQUET_FILE, index=False)
    flat = frame.copy()
    # CSV has no lists: the raw samples go in as a JSON array, warnings joined.
    flat["time_samples_s"] = flat["time_samples_s"].map(lambda s: json.dumps(list(s)) if s is not None else "")
    flat["warnings"] = flat["warnings"].map(lambda w: "; ".join(w) if w is not None else "")
    flat.to_csv(run_dir / CSV_FILE, index=False)
    return frame


def load_results(path: str | Path) -> pd.DataFrame:
    """The results table of a run directory (or of a parquet, CSV or JSONL file)."""
    path = Path(path)
    if path.is_dir():
        for name in (PARQUET_FILE, CASES_FILE, CSV_FILE):
            if (path / name).is_file():
                return load_results(path / name)
        raise ResultsError(f"{path} holds no results ({PARQUET_FILE}, {CASES_FILE} or {CSV_FILE})")
    if not path.exists():
        raise ResultsError(f"{path}: no such file or directory")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".jsonl":
        return to_frame(read_jsonl(path))
    if path.suffix == ".csv":
        frame = pd.read_csv(path)
        frame["time_samples_s"] = frame["time_samples_s"].map(lambda s: json.loads(s) if isinstance(s, str) and s else [])
        return frame
    raise ResultsError(f"{path}: not a results file (.parquet, .jsonl or .csv)")
