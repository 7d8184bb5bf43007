"""Out of memory, by a worker's history or always: the first is taken again in a fresh worker, the second stands."""

import os
import signal

import torch

from variants import register

_SERVED: set[int] = set()  # the N this worker process has served


@register("test-heap-history", family="test", exact=True, time="O(N^2 d)", memory="O(N^2)")
def heap_history(q, k, v, *, causal=False, scale=None):
    """Out of memory at a larger N only in a worker that served a smaller one first, as a worker whose heap the
    pinned allocator kept can be: its own process is no fault of the case."""
    _SERVED.add(k.shape[2])
    if k.shape[2] > min(_SERVED):
        raise MemoryError(f"N={k.shape[2]} after N={min(_SERVED)} in this process")
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)


@register("test-out-of-memory", family="test", exact=True, time="O(N^2 d)", memory="O(N^2)")
def out_of_memory(q, k, v, *, causal=False, scale=None):
    """Out of memory from N=128 on, in any process."""
    if k.shape[2] >= 128:
        raise MemoryError(f"N={k.shape[2]}")
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)


@register("test-killed-history", family="test", exact=True, time="O(N^2 d)", memory="O(N^2)")
def killed_history(q, k, v, *, causal=False, scale=None):
    """Killed by SIGKILL, as the kernel's OOM killer kills, at a larger N in a worker that served a smaller one."""
    _SERVED.add(k.shape[2])
    if k.shape[2] > min(_SERVED):
        os.kill(os.getpid(), signal.SIGKILL)
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)
