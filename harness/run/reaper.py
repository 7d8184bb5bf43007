"""Ending every process below this one: the fork server's part in "a process a variant starts ends with it".

A process group ends what stayed in it; a process that left it (``setsid``, a
daemon's double fork) is reached another way. A child subreaper
(``PR_SET_CHILD_SUBREAPER``, Linux 3.4+) becomes the parent of every orphan
below it instead of init, so it can find them among its own children and end
them (`end_strays`). Elsewhere than Linux these calls do nothing and a
variant's processes end with their group only.
"""

from __future__ import annotations

import os
import signal

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def prctl(option: int, value: int) -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(option, value)
    except (OSError, AttributeError):  # not Linux: workers still end with their process groups
        pass


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to send this process ``sig`` when its parent dies."""
    prctl(PR_SET_PDEATHSIG, sig)


def children() -> list[int]:
    """The pids whose parent is this process (from /proc: a stray's parent is not known to us otherwise)."""
    me, found = os.getpid(), []
    try:
        entries = list(os.scandir("/proc"))
    except OSError:  # no /proc (not Linux): nothing to find, and nothing was reparented here either
        return []
    for entry in entries:
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as stat:
                    fields = stat.read().rsplit(b")", 1)[1].split()  # after "pid (comm)": state, ppid, ...
            except OSError:  # it ended while we looked
                continue
            if int(fields[1]) == me:
                found.append(int(entry.name))
    return found


def end_strays(workers: set[int]) -> None:
    """SIGKILL and reap every child that is not one of ``workers``, again until none is left: each one
    killed hands its own children to this subreaper."""
    while strays := [pid for pid in children() if pid not in workers]:
        for pid in strays:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in strays:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
