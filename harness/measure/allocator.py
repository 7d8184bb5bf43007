"""Pin glibc malloc to the heap, so CPU timings do not flip between allocator states.

PyTorch's CPU allocator does not cache: every tensor is a malloc and a free.
By default glibc serves large blocks with mmap -- fresh pages, a page fault
per 4 KiB, on every call -- and moves that threshold as blocks are freed, so
the same call can run from recycled pages or from page faults depending on
what ran before. Measured here: naive attention at N=512 timed 0.5x to 1.9x of
itself from one measurement to the next, and every (B, H, N, N) tensor past 32
MiB (glibc's largest threshold) paid for page faults, a step in the time
curve (a local slope of 3.7 from N=512 to 1024) that is the allocator's, not
the algorithm's.

Pinned: no mmap (``M_MMAP_MAX=0``) and no trimming (``M_TRIM_THRESHOLD=-1``),
so every block is recycled from the heap once first touched -- the steady state
of a caching allocator, which is what PyTorch's CUDA allocator gives GPU code.
First-touch page faults land in the untimed call and the warm-up, not in the
samples. Trimming is off, not merely high: with a 1 GiB threshold a call that
frees over 1 GiB at the heap's top (naive or sdpa-math at N=4096, H=8) gave it
back to the kernel and faulted it in again on every call -- 262,144 page
faults, 0.36 s -> 0.63 s a call, or not, depending on what ran before in
the process. The heap keeps its high-water mark instead, which a worker
(one variant, one round) can afford.
"""

from __future__ import annotations

import ctypes
import ctypes.util

ALLOCATORS = ("pinned", "system")  # a case's choice: pinned here, or glibc's defaults as a plain Python process has
MMAP_MAX = 0
TRIM_THRESHOLD = -1  # never give the heap's top back (mallopt(3))
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt parameters from <malloc.h>
_pinned: dict | None = None


def pin_allocator() -> dict | None:
    """Keep every allocation of this process on the recycled heap (idempotent).

    Returns the settings applied, or None where the C library is not glibc.
    The same settings reach child processes through ``malloc_env()``.
    """
    global _pinned
    if _pinned is not None:
        return _pinned
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    if not (mallopt(_M_MMAP_MAX, MMAP_MAX) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        return None
    _pinned = {"mmap_max": MMAP_MAX, "trim_threshold": TRIM_THRESHOLD}
    return _pinned


def allocator_state() -> str:
    """ "pinned" when this process pinned malloc (`pin_allocator`), else "system"."""
    return "pinned" if _pinned is not None else "system"


def malloc_env(allocator: str = "pinned") -> dict[str, str]:
    """The settings as glibc environment variables for a worker's start; empty for the system allocator."""
    if allocator == "system":
        return {}
    return {"MALLOC_MMAP_MAX_": str(MMAP_MAX), "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD)}
