"""A run folder's life: locked while a sweep writes it, checked before a resume, described by env.json.

A resume must repeat the recorded sweep exactly: its rows were measured under
those settings, and ``env.json`` describes them. The folder's file names are
`harness.run.results`'.
"""

from __future__ import annotations

import fcntl
import json
import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..measure.case import Case
from ..measure.ceilings import calibrate
from ..measure.env import capture_env
from ..measure.fields import BY_NAME
from ..measure.threads import thread_count
from .client import worker_env
from .files import write_text_atomic
from .legacy import upgrade_sweep
from .results import (
    CASES_FILE,
    ENV_FILE,
    LOCK_FILE,
    RESULT_FILES,
    SWEEP_FILE,
    ResultsError,
    read_json,
    read_jsonl,
    repair_torn_tail,
)  # fmt: skip
from .sweep import Sweep


class RunError(Exception):
    """A sweep that cannot start (bad output directory, mismatched resume); one line."""


class RunFailed(Exception):
    """A sweep that stopped part-way for a reason outside the cases (a full disk); finished rows are kept."""


def _write(run_dir: Path, name: str, text: str) -> None:
    """One file of the run folder, whole or not at all; a failure (a full disk) is `RunFailed` saying how to go on."""
    try:
        write_text_atomic(run_dir / name, text)
    except OSError as exc:
        raise RunFailed(f"cannot write {run_dir / name}: {exc.strerror}; free space, then finish with "
                        f"the same command and --resume --out {shlex.quote(str(run_dir))}") from None  # fmt: skip


def _refuse_foreign_results(run_dir: Path) -> None:
    """A folder with a run's results but no ``cases.jsonl`` is not overwritten: they could not be rebuilt."""
    found = [name for name in RESULT_FILES if (run_dir / name).exists()]
    if found:
        raise RunError(f"{run_dir} holds {', '.join(found)} but no {CASES_FILE}: not a sweep to resume or "
                       "overwrite; choose another --out")  # fmt: skip


def _setting_changes(stored: dict, sweep: Sweep) -> list[str]:
    """'--timeout 120 -> 30' for every sweep setting a resume would change.

    The stored settings are read in today's fields (`harness.run.legacy`); one
    the stored sweep lacks (it predates the setting) had its default.
    """
    stored = upgrade_sweep(stored)
    current = json.loads(json.dumps(sweep.to_dict()))  # tuples as lists, as stored
    defaults = json.loads(json.dumps(Sweep().to_dict()))
    changes = []
    for name, value in current.items():
        before = stored.get(name, defaults.get(name))
        if before != value:
            changes.append(f"{BY_NAME[name].what} {before!r} -> {value!r}")
    return changes


def prepare_run_dir(run_dir: Path, cases: list[Case], sweep: Sweep, plugins: list[str], resume: bool) -> list[dict]:
    """Check the (locked) run directory; returns the records already in it.

    A resume must repeat the recorded sweep exactly: its rows were measured
    under those settings, and ``env.json`` describes them.
    """
    jsonl = run_dir / CASES_FILE
    definition = {"case_ids": sorted(c.case_id for c in cases), "plugins": plugins}
    if not jsonl.exists():
        _refuse_foreign_results(run_dir)
    elif resume and not jsonl.stat().st_size and not (run_dir / SWEEP_FILE).is_file():
        jsonl.unlink()  # a start that stopped before its first case (a full disk at sweep.json): start it again
    if jsonl.exists():
        if not resume:
            raise RunError(f"{run_dir} already holds a sweep; add --resume to finish it, or choose another --out")
        try:
            stored = read_json(run_dir / SWEEP_FILE)
        except (OSError, ResultsError):
            stored = {}
        if not (isinstance(stored.get("sweep"), dict) and isinstance(stored.get("definition"), dict)):
            raise RunError(f"{run_dir} holds cases but no readable {SWEEP_FILE}: not a sweep to resume")
        changes = _setting_changes(stored["sweep"], sweep)
        if stored.get("definition", {}).get("plugins") != plugins:
            changes.append(f"--plugin {stored.get('definition', {}).get('plugins')!r} -> {plugins!r}")
        if changes:
            raise RunError(f"--resume with other settings than the recorded sweep's: {'; '.join(changes)}")
        if stored.get("definition", {}).get("case_ids") != definition["case_ids"]:
            raise RunError(
                f"--resume: {run_dir} holds another sweep's cases (the variants available changed?); use another --out"
            )
        recorded = read_jsonl(jsonl)  # warns about a torn last line; its case runs again
        repair_torn_tail(jsonl)
        return recorded
    try:
        jsonl.touch()  # first: from here on the folder is a sweep's, which --resume may finish
    except OSError as exc:
        raise RunFailed(f"cannot write {jsonl}: {exc.strerror}") from None
    _write(run_dir, SWEEP_FILE, json.dumps({"sweep": sweep.to_dict(), "definition": definition}, indent=2))
    return []


@contextmanager
def locked_run_dir(run_dir: Path) -> Iterator[None]:
    """Create ``run_dir`` and hold an exclusive lock on it for the block; `RunError` if another sweep holds it.

    ``flock`` on a file inside the folder: the kernel drops it when the holder
    exits, however it exits, so a killed sweep never leaves a stale lock.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"output directory {run_dir} is a file")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = open(run_dir / LOCK_FILE, "a")
    except OSError as exc:
        raise RunError(f"cannot create output directory {run_dir}: {exc.strerror}") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunError(f"{run_dir} is in use by another sweep (it holds {LOCK_FILE}); wait for it to finish") from None
        yield


def write_env(run_dir: Path, sweep: Sweep, quiet: dict, *, resuming: bool, executor: str = "local") -> None:
    """Write ``env.json``: captured and calibrated for a new run; for a resume, the
    recorded one (its rows were made under it) with this invocation's quiet check appended.
    The machine and ceilings are this one's: on the Ray executor, the driver's (rows name their node)."""
    env_path = run_dir / ENV_FILE
    if resuming and env_path.is_file():
        env = read_json(env_path)
        env.setdefault("resumes", []).append(
            {"quiet_check": quiet, "executor": executor, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        )
    else:
        with thread_count(sweep.threads):
            env = capture_env()
            env["ceilings"] = {device: calibrate(device) for device in sweep.devices}
        env["sweep"] = sweep.to_dict()
        env["worker_env"] = worker_env(sweep.threads, sweep.allocator)
        env["quiet_check"] = quiet
        env["executor"] = executor
    _write(run_dir, ENV_FILE, json.dumps(env, indent=2))
