"""Plugin variants that fail the way real kernels do, for the runner's isolation tests."""

import ctypes
import time

import torch

from variants import register


@register("test-segfault", family="test", exact=True, time="O(N^2 d)", memory="O(N)")
def segfault(q, k, v, *, causal=False, scale=None):
    """Dereferences NULL: the worker dies with SIGSEGV."""
    ctypes.string_at(0)
    return v


@register("test-sleeper", family="test", exact=True, time="O(N^2 d)", memory="O(N)")
def sleeper(q, k, v, *, causal=False, scale=None):
    """Never returns: the runner must time it out."""
    time.sleep(10**6)
    return v


@register("test-hog", family="test", exact=True, time="O(N^2 d)", memory="O(N)")
def hog(q, k, v, *, causal=False, scale=None):
    """Asks for 1 TiB: must fail inside the worker, not wake the OOM killer."""
    return torch.empty(2**38, dtype=torch.float32)  # 2^38 x 4 bytes = 1 TiB


@register("test-hoarder", family="test", exact=True, time="O(N^2 d)", memory="O(N)")
def hoarder(q, k, v, *, causal=False, scale=None):
    """Exact, but holds the whole N x N score matrix its O(N) class denies: the budget learns from its peaks."""
    scores = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    return torch.softmax(scores, dim=-1) @ v
