"""A plugin with side effects beyond its variant: none may reach another variant's measurement."""

import time

import torch

from variants import register

_real_clock = time.perf_counter_ns
time.perf_counter_ns = lambda: _real_clock() // 100  # merely loaded, it makes every clock read 100x slow to move


@register("test-meddler", family="test", exact=True, time="O(N^2 d)", memory="O(N^2)")
def meddles(q, k, v, *, causal=False, scale=None):
    """SDPA, after switching the process's default dtype to float64 and grad mode off."""
    torch.set_default_dtype(torch.float64)
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)
    torch.set_grad_enabled(False)
    return out
