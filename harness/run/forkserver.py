"""A fork server for measurement workers: torch and the harness imported once, each worker a fork of them.

A fresh ``python -m harness.run.worker`` costs about 2 s of imports on a
2-core machine, before it measures anything; a sweep measured in rounds
(each round of each variant in a process of its own, `harness.run.runner`)
would spend most of its time importing. The server is started once per sweep
with the workers' environment, imports what every worker imports, and then forks one
child per worker on request, in milliseconds. It never runs a kernel, so no
OpenMP or CUDA state exists to be inherited: each child initializes its own,
as a freshly started process would, and loads its plugins itself.

Protocol, over a Unix socket pair (one JSON line per message, the child's
three pipe ends passed with ``SCM_RIGHTS``)::

    {"spawn": [worker args...]} + fds (stdin, stdout, stderr) -> {"pid": P}
    {"wait": P, "block": bool}                                   -> {"status": S or null}

``status`` is ``os.waitstatus_to_exitcode``'s (negative: killed by that
signal); ``block`` false answers null for a child still running.

Whatever a variant starts ends with its worker. Each worker starts a session
of its own, so killing its process group ends what the variant started; a
process that left the group (``setsid``, a daemon's double fork) is caught
another way: the server is a child subreaper (``PR_SET_CHILD_SUBREAPER``),
so every orphan below it becomes its child instead of init's, and each time a
worker ends, the server kills and reaps every child of its that is not a
running worker (`harness.run.reaper`). The server ends whatever is left below it
when the runner closes the socket, and when the runner dies, however it dies
(``PR_SET_PDEATHSIG`` sends the server SIGTERM, which it handles the same way);
a worker whose server is gone is killed by its own death signal.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from .reaper import PR_SET_CHILD_SUBREAPER, die_with_parent, end_strays, prctl

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # on the workers' PYTHONPATH (`harness.run.client.process_env`)
MAX_MESSAGE = 1 << 20
# Nothing is imported from the working directory: a numpy.py or a plugin saved as variants.py there would
# otherwise shadow the real ones inside every worker. -P from Python 3.11; before it, see the __main__ block.
SAFE_PATH = ["-P"] if sys.version_info >= (3, 11) else []


class ForkServerDied(Exception):
    """The server process is gone or answered nonsense; the message says which."""


class ForkServer:
    """The runner's handle on one server process, started with ``env`` (the workers' environment)."""

    START_TIMEOUT_S = 120.0

    def __init__(self, env: dict[str, str]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock = ours
        self.proc = subprocess.Popen(
            [sys.executable, *SAFE_PATH, "-m", "harness.run.forkserver", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,  # Ctrl-C reaches the runner alone
        )  # fmt: skip
        theirs.close()
        self._file = ours.makefile("rb")
        ready = self._reply(self.START_TIMEOUT_S)
        if "ready" not in ready:
            self.close()
            raise ForkServerDied(f"worker fork server failed to start: {ready.get('error', ready)}")

    def _reply(self, timeout: float | None = None) -> dict:
        self.sock.settimeout(timeout)
        try:
            line = self._file.readline(MAX_MESSAGE)
        except (OSError, TimeoutError) as exc:
            raise ForkServerDied(f"worker fork server did not answer ({exc})") from None
        finally:
            self.sock.settimeout(None)
        if not line:
            code = self.proc.poll()
            raise ForkServerDied(f"worker fork server exited (status {code})")
        return json.loads(line)

    def _send(self, message: dict, fds: list[int] = ()) -> None:
        data = (json.dumps(message) + "\n").encode()
        try:
            if fds:
                socket.send_fds(self.sock, [data], list(fds))
            else:
                self.sock.sendall(data)
        except OSError as exc:
            raise ForkServerDied(f"worker fork server is gone ({exc.strerror})") from None

    def spawn(self, args: list[str], stdin: int, stdout: int, stderr: int) -> int:
        """Fork a worker running ``harness.run.worker`` with ``args`` on these three fds; its pid."""
        self._send({"spawn": args}, [stdin, stdout, stderr])
        return int(self._reply()["pid"])

    def wait(self, pid: int, block: bool = True) -> int | None:
        """The worker's exit code (negative: the signal that killed it), or None while it runs (``block`` false)."""
        self._send({"wait": pid, "block": block})
        return self._reply()["status"]

    def close(self) -> None:
        """End the server: it ends every process below it, then exits (killed if it has not within 10 s)."""
        self._file.close()  # the socket's descriptor closes with its last file: the server reads EOF
        self.sock.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class ForkedProcess:
    """A forked worker, as much of `subprocess.Popen` as `harness.run.client.Worker` uses."""

    def __init__(self, server: ForkServer, args: list[str]) -> None:
        self.server = server
        child_in, self._stdin_w = os.pipe()
        self._stdout_r, child_out = os.pipe()
        self._stderr_r, child_err = os.pipe()
        try:
            self.pid = server.spawn(args, child_in, child_out, child_err)
        finally:
            for fd in (child_in, child_out, child_err):
                os.close(fd)
        self.stdin = os.fdopen(self._stdin_w, "wb")
        self.stdout = os.fdopen(self._stdout_r, "rb", buffering=0)
        self.stderr = os.fdopen(self._stderr_r, "rb", buffering=0)
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                self.returncode = self.server.wait(self.pid, block=False)
            except ForkServerDied:
                self.returncode = -signal.SIGKILL  # the server's children die with it
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            try:
                self.returncode = self.server.wait(self.pid)
            except ForkServerDied:
                self.returncode = -signal.SIGKILL
        return self.returncode


def _child(args: list[str], fds: list[int], server_sock: socket.socket) -> None:
    """In the forked child: become a worker on the passed fds; never returns."""
    code = 1
    try:
        server_sock.close()
        os.setsid()  # a session of its own: killing its group ends whatever a variant starts
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        die_with_parent()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):  # a worker's own, not the server's
            signal.signal(sig, signal.SIG_DFL)
        from .worker import main

        code = main(args)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - a worker's failure is its exit status; the runner reads the log
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush() if not sys.stdout.closed else None
        sys.stderr.flush() if not sys.stderr.closed else None
        os._exit(code)


def serve(fd: int) -> int:
    """The server's loop: import once, then fork on request until the runner closes the socket or dies."""
    sock = socket.socket(fileno=fd)
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    signal.signal(signal.SIGTERM, _end_everything)
    die_with_parent(signal.SIGTERM)
    if os.getppid() == 1:  # the runner died before the death signal was asked for
        return 0
    reply = sock.makefile("wb", buffering=0)
    try:
        return _serve(sock, reply)
    finally:
        end_strays(set())


def _end_everything(signum, frame) -> None:
    """SIGTERM (the runner died, or someone asked): end every process below the server, then the server."""
    end_strays(set())
    os._exit(0)


def _serve(sock: socket.socket, reply) -> int:
    """Import once, then answer requests until the socket closes."""
    try:
        # What every worker imports; plugins are not: each worker loads its own.
        import torch  # noqa: F401

        import variants  # noqa: F401

        from ..measure.attention_map import attention_map  # noqa: F401
        from ..measure.measure_case import measure_case  # noqa: F401
        from ..verify.checks import run_check  # noqa: F401
        from .worker import main  # noqa: F401
    except BaseException as exc:  # noqa: BLE001 - said to the runner, which reports it
        reply.write((json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n").encode())
        return 1
    reply.write(b'{"ready": true}\n')
    buffer, workers = b"", set()
    while True:
        message, fds, _flags, _addr = socket.recv_fds(sock, MAX_MESSAGE, 3)
        if not message:
            return 0
        buffer += message
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            request = json.loads(line)
            if "spawn" in request:
                pid = os.fork()
                if pid == 0:
                    _child(request["spawn"], fds, sock)
                workers.add(pid)
                for fd in fds:
                    os.close(fd)
                fds = []
                answer = {"pid": pid}
            else:
                answer = {"status": _wait(request["wait"], request.get("block", True))}
                if answer["status"] is not None:  # a worker ended: nothing it started may outlive it
                    workers.discard(request["wait"])
                    end_strays(workers)
            reply.write((json.dumps(answer) + "\n").encode())


def _wait(pid: int, block: bool) -> int | None:
    try:
        done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
    except ChildProcessError:  # already reaped: it ended
        return -signal.SIGKILL
    return os.waitstatus_to_exitcode(status) if done else None


if __name__ == "__main__":
    if not SAFE_PATH and sys.path and sys.path[0] == os.getcwd():
        del sys.path[0]  # what -m put first: the working directory
    os._exit(serve(int(sys.argv[1])))  # everything below it ended; no interpreter teardown (torch: ~0.5 s) to wait for
