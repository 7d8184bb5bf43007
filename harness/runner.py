"""Run a sweep: cases to worker processes, records to an append-only JSONL.

Each variant's cases go to one worker process (`harness.worker`), replaced
after any failure. A case gets ``timeout_s`` of wall time; past it the worker
is killed and the case recorded as ``timeout``. A worker that dies mid-case
(a segfault, an abort) gives a ``crash`` row naming the signal and the last
line it logged. After a timeout, an ``oom``, a crash or a budget skip, the
same configuration at larger N is recorded as ``skipped`` without running:
it would only fail slower.

Every finished case is appended to ``cases.jsonl`` at once (flushed and
fsynced); re-running with ``resume=True`` runs only the cases not recorded.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .allocator import malloc_env
from .budget import BUDGET_FRACTION, available_bytes, over_budget
from .case import Case
from .ceilings import calibrate
from .env import capture_env
from .interference import quiet_check
from .measure import record_for
from .results import (
    CASES_FILE,
    CSV_FILE,
    ENV_FILE,
    LOCK_FILE,
    LOG_FILE,
    MAPS_FILE,
    PARQUET_FILE,
    SWEEP_FILE,
    JsonlWriter,
    consolidate,
    read_jsonl,
    repair_torn_tail,
)
from .sweep import FLAG_NAMES, Sweep, expand
from .threads import thread_count

FAILURES_THAT_STOP_GROWTH = ("timeout", "oom", "crash", "skipped")


class RunError(Exception):
    """A sweep that cannot start (bad output directory, mismatched resume); one line."""


@dataclass
class RunSummary:
    run_dir: Path
    counts: dict[str, int]  # cases per status, over the whole run folder
    noisy: int  # measured cases (ok or contended) whose IQR/median was over 10%
    total: int
    resumed: int  # cases already recorded when this invocation began
    wall_s: float  # this invocation's wall time
    timed_s: float  # this invocation's time inside timed calls: samples times block sizes
    busy: str | None = None  # the quiet check's finding, when the machine was busy
    paths: list[Path] = field(default_factory=list)


def worker_env(threads: int) -> dict[str, str]:
    """Environment a worker starts with (recorded in env.json): pinned malloc
    thresholds, and thread counts fixed before the first kernel, since OpenMP
    and MKL read them at start."""
    return {
        **malloc_env(),
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "KINETO_LOG_LEVEL": "6",
    }


class Worker:
    """One `harness.worker` process and the line protocol to it."""

    START_TIMEOUT_S = 120.0

    def __init__(self, plugins: list[str], threads: int, memory_limit: int, log: Path) -> None:
        env = dict(os.environ)
        env.update(worker_env(threads))
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "") if env.get("PYTHONPATH") else root
        command = [sys.executable, "-m", "harness.worker", "--memory-limit", str(memory_limit)]
        for plugin in plugins:
            command += ["--plugin", plugin]
        # Its own session and process group, so whatever the worker starts ends with it.
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True
        )
        self.log = LogPump(self.proc.stderr, log)
        self._buffer = b""
        ready = self._read_line(self.START_TIMEOUT_S)
        if ready is None or "ready" not in json.loads(ready):
            self.kill()
            raise WorkerDied(self.death_reason("failed to start"))

    def _read_line(self, timeout: float) -> str | None:
        """One protocol line, or None on timeout; `WorkerDied` if the process exits first."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([self.proc.stdout], [], [], remaining)
            if readable:
                chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
                if not chunk:
                    self.proc.wait()
                    raise WorkerDied(self.death_reason("died"))
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def run(self, case: Case, max_time_s: float, timeout: float) -> dict | None:
        """The case's record, or None when it overran ``timeout`` (the worker is then killed)."""
        return self.ask({"case": asdict(case), "max_time_s": max_time_s}, timeout)

    def ask(self, message: dict, timeout: float) -> dict | None:
        """Send one request; its reply, or None past ``timeout`` (the worker is then killed)."""
        request = json.dumps(message) + "\n"
        try:
            self.proc.stdin.write(request.encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            self.proc.wait()
            raise WorkerDied(self.death_reason("died")) from None
        line = self._read_line(timeout)
        if line is None:
            self.kill()
            return None
        return json.loads(line)

    def death_reason(self, what: str) -> str:
        code = self.proc.poll()
        if code is not None and code < 0:
            how = f"killed by {signal.Signals(-code).name}"
        elif code is not None:
            how = f"exited with status {code}"
        else:
            how = "stopped answering"
        last = self.last_log_line()
        return f"worker {what}: {how}" + (f"; last log line: {last}" if last else "")

    def last_log_line(self) -> str:
        lines = self.log.last_lines()
        # faulthandler's header says what happened; prefer it to the traceback's last frame
        fatal = [line for line in lines if line.startswith("Fatal Python error")]
        return (fatal[-1] if fatal else lines[-1] if lines else "")[:300]

    def _end_group(self) -> None:
        """SIGKILL the worker's process group: the worker, and any process a variant started."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def kill(self) -> None:
        self._end_group()
        self.proc.wait()
        self.close()

    def close(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self._end_group()
        self.proc.wait()
        self.log.close()


class LogPump:
    """Copies a worker's stderr into the run's log, at most LOG_CAP_BYTES per run, in a thread.

    A chatty variant cannot fill the disk: past the cap its output is counted,
    not kept. The last lines are kept in memory either way, so a crash's
    reason can quote them. The thread reads until the worker's end of the
    pipe closes, so the worker never blocks on a full pipe.
    """

    LOG_CAP_BYTES = 8 * 2**20

    def __init__(self, pipe, path: Path) -> None:
        self.path = path
        self._file = open(path, "ab")
        self._room = max(0, self.LOG_CAP_BYTES - self._file.tell())
        self._dropped = 0
        self._tail: deque[bytes] = deque(maxlen=40)
        self._thread = threading.Thread(target=self._pump, args=(pipe,), daemon=True)
        self._thread.start()

    def _pump(self, pipe) -> None:
        partial = b""
        for chunk in iter(lambda: os.read(pipe.fileno(), 1 << 16), b""):
            kept = chunk[: self._room]
            try:
                self._file.write(kept)
                self._file.flush()
            except OSError:  # a full disk: stop keeping the log, never stop draining the pipe
                self._room, kept = 0, b""
            self._room -= len(kept)
            self._dropped += len(chunk) - len(kept)
            *lines, partial = (partial + chunk).split(b"\n")
            self._tail.extend(line for line in lines if line.strip())
            partial = partial[-4096:]
        if partial.strip():
            self._tail.append(partial)
        pipe.close()

    def last_lines(self) -> list[str]:
        """The worker's last non-empty stderr lines (after it has exited: all of them)."""
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        return [line.decode(errors="replace").strip() for line in self._tail.copy()]  # copy(): atomic under the GIL

    def close(self) -> None:
        self._thread.join(timeout=10)
        try:
            if self._dropped:
                self._file.write(f"[attnbench: {self._dropped} bytes of worker output dropped: log over its cap]\n".encode())
            self._file.close()
        except OSError:
            pass  # the log is a courtesy; a full disk is reported where the results are written


class WorkerDied(Exception):
    """The worker process exited; the message says how."""


def _growth_key(case: Case) -> tuple:
    """Everything about a case but its length: cases sharing it differ only in N."""
    d = asdict(case)
    d.pop("seq_len")
    return tuple(sorted(d.items()))


class RunFailed(Exception):
    """A sweep that stopped part-way for a reason outside the cases (a full disk); finished rows are kept."""


def _setting_changes(stored: dict, sweep: Sweep) -> list[str]:
    """'--timeout 120 -> 30' for every sweep setting a resume would change."""
    current = json.loads(json.dumps(sweep.to_dict()))  # tuples as lists, as stored
    return [
        f"{FLAG_NAMES.get(name, '--' + name.replace('_', '-'))} {stored.get(name)!r} -> {value!r}"
        for name, value in current.items()
        if stored.get(name) != value
    ]


def prepare_run_dir(run_dir: Path, cases: list[Case], sweep: Sweep, plugins: list[str], resume: bool) -> list[dict]:
    """Check the (locked) run directory; returns the records already in it.

    A resume must repeat the recorded sweep exactly: its rows were measured
    under those settings, and ``env.json`` describes them.
    """
    jsonl = run_dir / CASES_FILE
    definition = {"case_ids": sorted(c.case_id for c in cases), "plugins": plugins}
    if jsonl.exists():
        if not resume:
            raise RunError(f"{run_dir} already holds a sweep; add --resume to finish it, or choose another --out")
        try:
            stored = json.loads((run_dir / SWEEP_FILE).read_text())
        except (OSError, ValueError):
            raise RunError(f"{run_dir} holds cases but no readable {SWEEP_FILE}: not a sweep to resume") from None
        changes = _setting_changes(stored.get("sweep", {}), sweep)
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
    (run_dir / SWEEP_FILE).write_text(json.dumps({"sweep": sweep.to_dict(), "definition": definition}, indent=2))
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


def run_sweep(
    sweep: Sweep,
    out: str | Path,
    *,
    resume: bool = False,
    plugins: list[str] | None = None,
    progress: Callable[[int, int, Case, dict | None], None] | None = None,
    strict: bool = False,
) -> RunSummary:
    """Run every case of ``sweep`` not yet in ``out``; consolidate the table; return a summary.

    ``progress(done, total, case, record)`` is called before each case (record
    None) and after it (with the record). Before the first case, a one-second
    quiet check (`harness.interference.quiet_check`): a busy machine is one
    warning, or with ``strict`` a `RunError`.
    """
    plugins = list(plugins or [])
    run_dir = Path(out)
    cases = expand(sweep)
    if not cases:
        raise RunError("the sweep has no cases (no variant available on the requested devices?)")
    began = time.monotonic()
    quiet = quiet_check(sweep.threads)
    if quiet["busy"] and strict:
        raise RunError(f"the machine is busy: {quiet['busy']} (--strict)")
    with locked_run_dir(run_dir):
        return _run_locked(sweep, run_dir, cases, resume, plugins, progress, quiet, began)


def _run_locked(sweep, run_dir, cases, resume, plugins, progress, quiet, began) -> RunSummary:
    recorded = prepare_run_dir(run_dir, cases, sweep, plugins, resume)
    if quiet["busy"]:
        warnings.warn(f"the machine is busy: {quiet['busy']}; contended cases will be marked", stacklevel=2)
    done = {r["case_id"] for r in recorded}
    run_id = run_dir.name

    env_path = run_dir / ENV_FILE
    if recorded and env_path.is_file():  # a resume: the rows already recorded were made under this env
        env = json.loads(env_path.read_text())
        env.setdefault("resumes", []).append({"quiet_check": quiet, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    else:
        with thread_count(sweep.threads):
            env = capture_env()
            env["ceilings"] = {device: calibrate(device) for device in sweep.devices}
        env["sweep"] = sweep.to_dict()
        env["worker_env"] = worker_env(sweep.threads)
        env["quiet_check"] = quiet
    env_path.write_text(json.dumps(env, indent=2))

    budgets = {device: int(available_bytes(device) * BUDGET_FRACTION) for device in sweep.devices}
    writer = JsonlWriter(run_dir / CASES_FILE)
    # Failures of the run being resumed count too: a resumed sweep skips what an uninterrupted one would.
    failed_at: dict[tuple, tuple[int, str]] = {}
    by_id = {c.case_id: c for c in cases}
    for r in sorted(recorded, key=lambda r: r.get("seq_len", 0)):
        if r.get("status") in FAILURES_THAT_STOP_GROWTH and r["case_id"] in by_id:
            case = by_id[r["case_id"]]
            failed_at.setdefault(_growth_key(case), (case.seq_len, r["status"]))
    worker: Worker | None = None
    worker_key: tuple | None = None
    timed_s = 0.0
    todo = [c for c in cases if c.case_id not in done]
    try:
        for index, case in enumerate(todo):
            if progress:
                progress(len(done) + index, len(cases), case, None)
            key = _growth_key(case)
            reason = None
            if key in failed_at:
                n, status = failed_at[key]
                reason = f"not run: the same configuration was {status} at N={n}"
            else:
                reason = over_budget(case, budgets[case.device])
            if reason:
                record = record_for(case, "skipped", reason).to_dict()
            else:
                if worker is None or worker_key != (case.variant, case.device):
                    if worker is not None:
                        worker.close()
                    worker, worker_key = None, None
                try:
                    worker = worker or Worker(plugins, case.threads, _memory_limit(case.device, budgets), run_dir / LOG_FILE)
                    worker_key = (case.variant, case.device)
                    record = worker.run(case, sweep.max_time_s, sweep.timeout_s)
                    if record is None:
                        record = record_for(case, "timeout", f"no result within {sweep.timeout_s:g} s; worker killed").to_dict()
                        worker = None
                except WorkerDied as died:
                    record = record_for(case, "crash", str(died)).to_dict()
                    if worker is not None:
                        worker.close()
                    worker = None
                if record["status"] in ("oom", "error") and worker is not None:
                    worker.close()  # restart after any failure: its state is suspect
                    worker = None
            record["run_id"] = run_id
            try:
                writer.write(record)
            except OSError as exc:
                kept = len(done) + index
                raise RunFailed(
                    f"cannot write {run_dir / CASES_FILE}: {exc.strerror}; the {kept} finished cases are kept, "
                    f"finish with --resume --out {run_dir}"
                ) from None
            if record["status"] in ("ok", "contended"):
                timed_s += sum(record["time_samples_s"]) * record["block_size"]
            if record["status"] in FAILURES_THAT_STOP_GROWTH:
                failed_at.setdefault(key, (case.seq_len, record["status"]))
            if progress:
                progress(len(done) + index + 1, len(cases), case, record)
    finally:
        if worker is not None:
            worker.close()
        writer.close()

    try:
        write_attention_maps(run_dir, cases, plugins, sweep.timeout_s, _memory_limit("cpu", budgets))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a torn line was already reported when resuming
            frame = consolidate(run_dir)
    except OSError as exc:
        raise RunFailed(
            f"cannot write the results of {run_dir}: {exc.strerror}; every case is in {CASES_FILE}, "
            f"write the tables with --resume --out {run_dir}"
        ) from None
    measured = frame[frame["status"].isin(["ok", "contended"])]
    return RunSummary(
        run_dir=run_dir,
        counts={k: int(v) for k, v in frame["status"].value_counts().items()},
        noisy=int(measured["noisy"].fillna(False).astype(bool).sum()),
        total=len(cases),
        resumed=len(done),
        wall_s=time.monotonic() - began,
        timed_s=timed_s,
        busy=quiet["busy"],
        paths=[run_dir / CASES_FILE, run_dir / PARQUET_FILE, run_dir / CSV_FILE, run_dir / ENV_FILE],
    )


def write_attention_maps(run_dir: Path, cases: list[Case], plugins: list[str], timeout: float, memory_limit: int = 0) -> None:
    """``attention_maps.json``: exact softmax's and each swept variant's implied attention
    matrix (`harness.maps`), computed on the CPU in a worker, non-causal and causal."""
    names = ["exact"] + sorted({c.variant for c in cases})
    maps: dict[str, dict] = {"non_causal": {}, "causal": {}}
    worker: Worker | None = None
    for name in names:
        for key, causal in (("non_causal", False), ("causal", True)):
            try:
                worker = worker or Worker(plugins, 1, memory_limit, run_dir / LOG_FILE)
                reply = worker.ask({"map": name, "causal": causal}, timeout)
                if reply is None:
                    reply, worker = {"status": "timeout", "reason": f"no map within {timeout:g} s"}, None
            except WorkerDied as died:
                reply, worker = {"status": "crash", "reason": str(died)}, None
            maps[key][name] = reply
    if worker is not None:
        worker.close()
    (run_dir / MAPS_FILE).write_text(json.dumps(maps))


def run_checks(name: str, device: str, plugins: list[str], log: Path, timeout: float = 300.0) -> list[dict]:
    """`harness.checks` on one variant, each check answered by a worker process.

    A variant that kills its process (``os._exit``, a segfault) or hangs fails
    the check it was in, as "could not run", and a fresh worker runs the rest:
    no result is hidden, and no exit status can pass by accident.
    """
    from variants import get_variant

    from .checks import checks_for

    results = []
    worker: Worker | None = None
    for check in checks_for(get_variant(name)):
        try:
            worker = worker or Worker(plugins, 1, _memory_limit("cpu", {}), log)
            reply = worker.ask({"check": name, "which": check, "device": device}, timeout)
            if reply is None:
                reply, worker = {"name": check, "passed": False, "detail": f"could not run: no result within {timeout:g} s"}, None
        except WorkerDied as died:
            reply, worker = {"name": check, "passed": False, "detail": f"could not run: {died}"}, None
        results.append(reply)
    if worker is not None:
        worker.close()
    return results


def _memory_limit(device: str, budgets: dict[str, int]) -> int:
    """A worker's address-space allowance: the CPU budget (CUDA's allocator needs no cap on host VA)."""
    if device != "cpu":
        return 0
    return budgets.get("cpu") or int(available_bytes("cpu") * BUDGET_FRACTION)
