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

import json
import os
import select
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .allocator import malloc_env
from .budget import BUDGET_FRACTION, available_bytes, over_budget
from .case import Case
from .ceilings import calibrate
from .env import capture_env
from .measure import record_for
from .results import (
    CASES_FILE,
    ENV_FILE,
    MAPS_FILE,
    SWEEP_FILE,
    JsonlWriter,
    consolidate,
    read_jsonl,
    repair_torn_tail,
)
from .sweep import Sweep, expand

FAILURES_THAT_STOP_GROWTH = ("timeout", "oom", "crash", "skipped")


class RunError(Exception):
    """A sweep that cannot start (bad output directory, mismatched resume); one line."""


@dataclass
class RunSummary:
    run_dir: Path
    counts: dict[str, int]
    total: int
    resumed: int
    wall_s: float
    worker_s: float  # wall time spent waiting on workers (starting them included)
    timed_s: float  # time inside timed calls: the sum of every ok case's samples times its block size
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
        self.log = open(log, "ab")
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env, start_new_session=True
        )
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
        self.log.flush()
        try:
            with open(self.log.name, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log.name) - 4096))
                lines = [line.strip() for line in f.read().decode(errors="replace").splitlines() if line.strip()]
        except OSError:
            return ""
        # faulthandler's header says what happened; prefer it to the traceback's last frame
        fatal = [line for line in lines if line.startswith("Fatal Python error")]
        return (fatal[-1] if fatal else lines[-1] if lines else "")[:300]

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
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
                self.kill()
                return
        self.log.close()


class WorkerDied(Exception):
    """The worker process exited; the message says how."""


def _growth_key(case: Case) -> tuple:
    """Everything about a case but its length: cases sharing it differ only in N."""
    d = asdict(case)
    d.pop("seq_len")
    return tuple(sorted(d.items()))


def prepare_run_dir(run_dir: Path, cases: list[Case], sweep: Sweep, plugins: list[str], resume: bool) -> list[dict]:
    """Create or check the run directory; returns the records already in it."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"output directory {run_dir} is a file")
    jsonl = run_dir / CASES_FILE
    definition = {"case_ids": sorted(c.case_id for c in cases), "plugins": plugins}
    if jsonl.exists():
        if not resume:
            raise RunError(f"{run_dir} already holds a sweep; add --resume to finish it, or choose another --out")
        try:
            stored = json.loads((run_dir / SWEEP_FILE).read_text())
        except (OSError, ValueError):
            raise RunError(f"{run_dir} holds cases but no readable {SWEEP_FILE}: not a sweep to resume") from None
        if stored.get("definition", {}).get("case_ids") != definition["case_ids"]:
            raise RunError(f"--resume: {run_dir} holds another sweep's cases (a different definition); use another --out")
        recorded = read_jsonl(jsonl)  # warns about a torn last line; its case runs again
        repair_torn_tail(jsonl)
        return recorded
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create output directory {run_dir}: {exc.strerror}") from None
    (run_dir / SWEEP_FILE).write_text(json.dumps({"sweep": sweep.to_dict(), "definition": definition}, indent=2))
    return []


def run_sweep(
    sweep: Sweep,
    out: str | Path,
    *,
    resume: bool = False,
    plugins: list[str] | None = None,
    progress: Callable[[int, int, Case, dict | None], None] | None = None,
) -> RunSummary:
    """Run every case of ``sweep`` not yet in ``out``; consolidate the table; return a summary.

    ``progress(done, total, case, record)`` is called before each case (record
    None) and after it (with the record).
    """
    began = time.monotonic()
    plugins = list(plugins or [])
    run_dir = Path(out)
    cases = expand(sweep)
    if not cases:
        raise RunError("the sweep has no cases (no variant available on the requested devices?)")
    recorded = prepare_run_dir(run_dir, cases, sweep, plugins, resume)
    done = {r["case_id"] for r in recorded}
    run_id = run_dir.name

    torch.set_num_threads(sweep.threads)
    env = capture_env()
    env["sweep"] = sweep.to_dict()
    env["worker_env"] = worker_env(sweep.threads)
    env["ceilings"] = {device: calibrate(device) for device in sweep.devices}
    (run_dir / ENV_FILE).write_text(json.dumps(env, indent=2))

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
    measured_s = 0.0
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
                started = time.monotonic()
                try:
                    worker = worker or Worker(plugins, case.threads, _memory_limit(case, budgets), run_dir / "worker.log")
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
                measured_s += time.monotonic() - started
                if record["status"] in ("oom", "error") and worker is not None:
                    worker.close()  # restart after any failure: its state is suspect
                    worker = None
            record["run_id"] = run_id
            writer.write(record)
            if record["status"] in FAILURES_THAT_STOP_GROWTH:
                failed_at.setdefault(key, (case.seq_len, record["status"]))
            if progress:
                progress(len(done) + index + 1, len(cases), case, record)
    finally:
        if worker is not None:
            worker.close()
        writer.close()

    write_attention_maps(run_dir, cases, plugins, sweep.timeout_s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a torn line was already reported when resuming
        frame = consolidate(run_dir)
    ok = frame[frame["status"] == "ok"]
    timed_s = sum(sum(s) * k for s, k in zip(ok["time_samples_s"], ok["block_size"]))
    return RunSummary(
        run_dir=run_dir,
        counts={k: int(v) for k, v in frame["status"].value_counts().items()},
        total=len(cases),
        resumed=len(done),
        wall_s=time.monotonic() - began,
        worker_s=measured_s,
        timed_s=timed_s,
        paths=[run_dir / CASES_FILE, run_dir / "results.parquet", run_dir / "results.csv", run_dir / ENV_FILE],
    )


def write_attention_maps(run_dir: Path, cases: list[Case], plugins: list[str], timeout: float) -> None:
    """``attention_maps.json``: exact softmax's and each swept variant's implied attention
    matrix (`harness.maps`), computed on the CPU in a worker, non-causal and causal."""
    names = ["exact"] + sorted({c.variant for c in cases})
    maps: dict[str, dict] = {"non_causal": {}, "causal": {}}
    worker: Worker | None = None
    for name in names:
        for key, causal in (("non_causal", False), ("causal", True)):
            try:
                worker = worker or Worker(plugins, 1, 0, run_dir / "worker.log")
                reply = worker.ask({"map": name, "causal": causal}, timeout)
                if reply is None:
                    reply, worker = {"status": "timeout", "reason": f"no map within {timeout:g} s"}, None
            except WorkerDied as died:
                reply, worker = {"status": "crash", "reason": str(died)}, None
            maps[key][name] = reply
    if worker is not None:
        worker.close()
    (run_dir / MAPS_FILE).write_text(json.dumps(maps))


def _memory_limit(case: Case, budgets: dict[str, int]) -> int:
    """The worker's address-space allowance: the CPU budget (CUDA's allocator needs no cap on host VA)."""
    return budgets[case.device] if case.device == "cpu" else 0
