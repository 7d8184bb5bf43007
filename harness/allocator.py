"""Pin glibc malloc's thresholds, so CPU timings do not flip between two allocator states.

PyTorch's CPU allocator does not cache: every tensor is a malloc and a free.
glibc serves large blocks with mmap (fresh pages, a page fault per 4 KiB) and
raises that threshold dynamically as blocks are freed, then trims the heap
again; so the same call can run from recycled heap pages or from page faults,
depending on what ran before. Measured here: naive attention at N=512 timed
0.5x to 1.9x of itself from one measurement to the next. Fixing both
thresholds makes the state depend on nothing but the block size: blocks up
to 32 MiB (glibc's largest allowed threshold) are recycled, larger ones are
always mmapped, as they are in any long-running PyTorch process.
"""

from __future__ import annotations

import ctypes
import ctypes.util

MMAP_THRESHOLD = 32 * 2**20  # glibc's maximum on 64-bit
TRIM_THRESHOLD = 2**30
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters from <malloc.h>
_pinned: dict | None = None


def pin_allocator() -> dict | None:
    """Fix malloc's mmap and trim thresholds for this process (idempotent).

    Returns the settings applied, or None where the C library is not glibc.
    The same settings reach child processes through ``malloc_env()``.
    """
    global _pinned
    if _pinned is not None:
        return _pinned
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    if not (mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        return None
    _pinned = {"mmap_threshold": MMAP_THRESHOLD, "trim_threshold": TRIM_THRESHOLD}
    return _pinned


def pinned() -> dict | None:
    """The settings `pin_allocator` applied in this process, or None if it has not."""
    return _pinned


def malloc_env() -> dict[str, str]:
    """The same thresholds as environment variables, for a worker process's start."""
    return {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD), "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD)}
