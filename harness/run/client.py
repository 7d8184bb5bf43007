"""The runner's end of a worker process: start it, ask it, read its log, kill it.

`Worker` forks a `harness.run.worker` from a fork server
(`harness.run.forkserver`), in a session of its own (so a kill takes
whatever the variant started with it), writes one JSON
request per line and reads one reply per line, with a timeout; a worker that
exits first raises `WorkerDied` naming the signal or status and the last line
it logged. Its stderr goes to the run's log through `LogPump`, capped, so a
chatty variant can neither fill the disk nor block on a full pipe.
"""

from __future__ import annotations

import json
import os
import select
import signal
import threading
import time
from collections import deque
from pathlib import Path

from ..measure.allocator import malloc_env
from ..measure.case import Case
from .forkserver import PROJECT_ROOT, ForkedProcess, ForkServer, ForkServerDied


def process_env(threads: int, allocator: str = "pinned") -> dict[str, str]:
    """The whole environment a worker (and the fork server it comes from) starts with: this process's,
    without a ``MALLOC_`` setting from the user's shell for the "system" allocator, plus `worker_env`."""
    env = {k: v for k, v in os.environ.items() if not (allocator == "system" and k.startswith("MALLOC_"))}
    env.update(worker_env(threads, allocator))
    root = str(PROJECT_ROOT)
    env["PYTHONPATH"] = root + os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else root
    return env


def worker_env(threads: int, allocator: str = "pinned") -> dict[str, str]:
    """Environment a worker starts with (recorded in env.json): pinned malloc
    thresholds (unless ``allocator`` is "system"), and thread counts fixed
    before the first kernel, since OpenMP and MKL read them at start."""
    return {
        **malloc_env(allocator),
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "KINETO_LOG_LEVEL": "6",
    }


class Worker:
    """One `harness.run.worker` process and the line protocol to it (requests and replies, one JSON line each)."""

    START_TIMEOUT_S = 120.0

    def __init__(
        self, plugins: list[str], threads: int, memory_limit: int, log: Path, allocator: str = "pinned",
        server: ForkServer | None = None,
    ) -> None:  # fmt: skip
        # Forked from ``server`` (started with this worker's environment), or from a server of its own.
        self._own_server = server is None
        try:
            self.server = server or ForkServer(process_env(threads, allocator))
            args = ["--memory-limit", str(memory_limit), "--allocator", allocator]
            for plugin in plugins:
                args += ["--plugin", plugin]
            self.proc = ForkedProcess(self.server, args)
        except ForkServerDied as exc:
            if self._own_server and hasattr(self, "server"):
                self.server.close()
            raise WorkerDied(str(exc)) from None
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
                    self._died("died")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def run(
        self, case: Case, max_time_s: float, timeout: float, round_index: int = 0, rounds: int = 1, references: str | None = None
    ) -> dict | None:
        """The case's record (round 0: the whole measurement; later rounds: timing only), or None when it
        overran ``timeout`` (the worker is then killed). ``references``: the directory where the variants of one
        input set share its float64 reference (`harness.measure.reference_cache`)."""
        request = {"case": case.to_dict(), "max_time_s": max_time_s, "round": round_index, "rounds": rounds,
                   "references": references}  # fmt: skip
        return self.ask(request, timeout)

    def ask(self, message: dict, timeout: float) -> dict | None:
        """Send one request; its reply, or None past ``timeout`` (the worker is then killed)."""
        request = json.dumps(message) + "\n"
        try:
            self.proc.stdin.write(request.encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            self._died("died")
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

    def _died(self, what: str) -> None:
        """The worker is gone: reap it, release what it held, raise `WorkerDied` saying how it ended."""
        self._reap()
        reason = self.death_reason(what)
        self.close()
        raise WorkerDied(reason)

    def _reap(self, grace_s: float = 2.0) -> None:
        """Wait for a worker that closed its protocol pipe to exit (its status says why); past ``grace_s``, kill it."""
        deadline = time.monotonic() + grace_s
        while self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.proc.poll() is None:
            self._end_group()
            self.proc.wait()

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

    def _close_server(self) -> None:
        if self._own_server:
            self.server.close()

    def close(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        # Every reply has been read: what remains of the worker is interpreter teardown (~0.4 s of torch's
        # finalizers a worker, twice a sweep at least). Nothing of it is wanted, so the group ends now.
        self._end_group()
        self.proc.wait()
        self.log.close()
        self._close_server()


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
        if self._file.closed:
            return
        try:
            if self._dropped:
                self._file.write(f"[attnbench: {self._dropped} bytes of worker output dropped: log over its cap]\n".encode())
            self._file.close()
        except OSError:
            pass  # the log is a courtesy; a full disk is reported where the results are written


class WorkerDied(Exception):
    """The worker process exited; the message says how."""
