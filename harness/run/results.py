"""The run folder's files, and the results table they hold.

    RUN/cases.jsonl           a case's record, appended as each of its rounds finishes (the last is its row)
    RUN/results.parquet       the results table (one row per case; columns: `Record`'s fields)
    RUN/results.csv           the same, lists as JSON text
    RUN/env.json              versions, machine, ceilings, the quiet check (`harness.measure.env`)
    RUN/sweep.json            the sweep's settings and case ids, for --resume
    RUN/attention_maps.json   each variant's implied attention matrix
    RUN/worker.log            the workers' stderr
    RUN/.lock                 held by the sweep writing the folder

This module alone knows these names; the other stages call its functions.

``cases.jsonl`` gets one line per finished round of a case (its last line is its row), flushed and fsynced, so a
killed sweep loses at most the case in flight; a torn last line (the kill
landed mid-write) is skipped with a warning. Consolidation turns the JSONL
into ``results.parquet`` and ``results.csv``, one row per case. Nothing here
executes code from a results file: JSON, parquet and CSV only, formats that hold data, not objects.
"""

from __future__ import annotations

import json
import os
import shlex
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from ..measure.plausible import impossible
from ..measure.record import COLUMNS
from ..measure.rounds import summarize_run
from .compile_modes import by_compile_mode
from .damaged import distrust_damaged, storable
from .files import replacing
from .legacy import upgrade_rows

CASES_FILE = "cases.jsonl"
PARQUET_FILE = "results.parquet"
CSV_FILE = "results.csv"
ENV_FILE = "env.json"
SWEEP_FILE = "sweep.json"
MAPS_FILE = "attention_maps.json"
LOCK_FILE = ".lock"
LOG_FILE = "worker.log"
RESULT_FILES = (PARQUET_FILE, CSV_FILE, ENV_FILE, MAPS_FILE, SWEEP_FILE)  # a run's, never overwritten by a new sweep
LIST_COLUMNS = ["time_samples_s", "round_medians_s", "round_canary_s", "round_contended", "round_disturbed", "round_samples"]


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
    """Records of a ``cases.jsonl``. A torn last line (no newline: the sweep was stopped mid-write) is skipped
    with a warning; any other line that is not a JSON object with a ``case_id`` is a `ResultsError` naming it."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        torn = number == len(lines)  # after the last newline: a write that never finished
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            if torn:
                warnings.warn(
                    f"{path}: skipping a torn last line ({len(line)} bytes; the sweep was interrupted mid-write)", stacklevel=2
                )
                continue
            raise ResultsError(f"{path}: line {number} is not valid JSON (a damaged file?)") from None
        if not isinstance(record, dict) or not isinstance(record.get("case_id"), str):
            what = "has no case_id" if isinstance(record, dict) else f"is a JSON {type(record).__name__}, not a record"
            raise ResultsError(f"{path}: line {number} {what} (a damaged file?)")
        records.append(record)
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


def with_all_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every column of today's table, in order: an older run's columns read as today's
    (`harness.run.legacy`), a column it still lacks empty. An ``ok`` row without a valid timing (a damaged
    file) becomes an error saying so (`harness.run.damaged`)."""
    frame = upgrade_rows(frame)
    missing = [column for column in COLUMNS if column not in frame.columns]
    frame = frame.assign(**dict.fromkeys(missing))
    return distrust_damaged(frame[COLUMNS + [c for c in frame.columns if c not in COLUMNS]])


def to_frame(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per case with the table's columns in order: each case's last record (a case measured in
    rounds appends its record again after each round), its time read against the whole run
    (`harness.measure.rounds.summarize_run`: the run's reference speed, its pooled variance)."""
    latest: dict[tuple, dict[str, Any]] = {}
    repeated = 0
    for record in records:
        key = (record.get("run_id"), record.get("case_id"))
        if key in latest and not record.get("round_medians_s"):
            repeated += 1  # rounds repeat a case by design; anything else was written twice
        latest.pop(key, None)
        latest[key] = record
    if repeated:
        warnings.warn(
            f"{repeated} case(s) recorded more than once (two sweeps wrote one folder?); keeping the last record of each",
            stacklevel=2,
        )
    rows = list(latest.values())
    for row in rows:  # a hand-edited record: what is not a list where one belongs is none (the row is then distrusted)
        row.update({c: [] for c in LIST_COLUMNS if c in row and not isinstance(row[c], list)})
    summarize_run(rows)
    return with_all_columns(pd.DataFrame.from_records(rows))


def _ceilings(run_dir: Path) -> dict:
    """env.json's calibrated ceilings by device, {} when there are none to read (a damaged env.json included:
    the rows are kept, unjudged)."""
    try:
        env = read_json(run_dir / ENV_FILE)
    except ResultsError:
        return {}
    ceilings = env.get("ceilings") if isinstance(env, dict) else None
    return ceilings if isinstance(ceilings, dict) else {}


def _plain(x: Any) -> Any:
    """A list item as JSON takes it (numpy scalars from parquet as Python numbers)."""
    return x.item() if hasattr(x, "item") else x


def consolidate(run_dir: Path) -> pd.DataFrame:
    """Write ``results.parquet`` and ``results.csv`` from the run's JSONL; returns the table. A row faster
    than its machine can be (`harness.measure.plausible`, against env.json's ceilings) becomes an ``error``."""
    records = read_jsonl(run_dir / CASES_FILE)
    frame = to_frame(records)
    ceilings = _ceilings(run_dir)
    for index, row in frame.iterrows():
        why = impossible(row.to_dict(), ceilings)
        if why:
            frame.loc[index, ["status", "reason"]] = ["error", why]
    with replacing(run_dir / PARQUET_FILE) as temporary:
        storable(frame, COLUMNS).to_parquet(temporary, index=False)
    flat = frame.copy()
    # CSV has no lists: the raw samples and the rounds go in as JSON arrays, warnings joined.
    for column in LIST_COLUMNS:
        flat[column] = flat[column].map(lambda s: json.dumps([_plain(x) for x in s]) if s is not None else "")
    flat["warnings"] = flat["warnings"].map(lambda w: "; ".join(w) if w is not None else "")
    with replacing(run_dir / CSV_FILE) as temporary:
        flat.to_csv(temporary, index=False)
    return frame


def load_results(path: str | Path) -> pd.DataFrame:
    """The results table of a run directory (or of a parquet, CSV or JSONL file), as analysis reads it: a compiled
    variant in a non-default compile mode named as a curve of its own (`harness.run.compile_modes`)."""
    return by_compile_mode(_read_results(Path(path)))


def _read_results(path: Path) -> pd.DataFrame:
    """The results table of a run directory or results file, its variants as stored."""
    if path.is_dir():
        for name in (PARQUET_FILE, CASES_FILE, CSV_FILE):
            if (path / name).is_file():
                return _read_results(path / name)
        raise ResultsError(f"{path} holds no results ({PARQUET_FILE}, {CASES_FILE} or {CSV_FILE})")
    if not path.exists():
        raise ResultsError(f"{path}: no such file or directory")
    if path.suffix == ".parquet":
        return with_all_columns(pd.read_parquet(path))
    if path.suffix == ".jsonl":
        return to_frame(read_jsonl(path))
    if path.suffix == ".csv":
        frame = pd.read_csv(path)
        for column in LIST_COLUMNS:
            if column in frame.columns:
                frame[column] = frame[column].map(lambda s: json.loads(s) if isinstance(s, str) and s else [])
        return with_all_columns(frame)
    raise ResultsError(f"{path}: not a results file (.parquet, .jsonl or .csv)")


def read_json(path: Path) -> dict:
    """A JSON file of the run folder, {} when it is absent; `ResultsError` when it is not JSON."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_bytes())
    except ValueError:  # UnicodeDecodeError included
        raise ResultsError(f"{path}: not valid JSON") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: a JSON {type(data).__name__}, not the object it should hold")
    return data


def load_env(path: str | Path) -> dict:
    """``env.json`` of a run folder, or of the folder holding a results file ({} if there is none)."""
    path = Path(path)
    return read_json((path if path.is_dir() else path.parent) / ENV_FILE)


def load_run(run_dir: str | Path) -> tuple[pd.DataFrame, dict, dict]:
    """(results table, env.json, attention maps) of a finished run; `ResultsError` saying why not. The table as
    analysis reads it, as `load_results` gives it."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise ResultsError(f"{run_dir}: no such directory")
    if not run_dir.is_dir():
        raise ResultsError(f"{run_dir} is not a run directory")
    parquet = run_dir / PARQUET_FILE
    if not parquet.is_file():
        if (run_dir / CASES_FILE).is_file():
            raise ResultsError(
                f"{run_dir}: the sweep did not finish (no {PARQUET_FILE}); "
                f"finish it with the same attnbench sweep command and --resume --out {shlex.quote(str(run_dir))}"
            )
        raise ResultsError(f"{run_dir} holds no results ({PARQUET_FILE})")
    try:
        frame = pd.read_parquet(parquet)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise ResultsError(
            f"{parquet}: unreadable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    if frame.empty:
        raise ResultsError(f"{parquet} has no rows")
    return by_compile_mode(with_all_columns(frame)), read_json(run_dir / ENV_FILE), read_json(run_dir / MAPS_FILE)
