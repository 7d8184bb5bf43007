"""A plugin as a user would write one: a file with one @register function."""

import torch

from variants import register


@register("test-plugin-attn", family="plugin", exact=True, time="O(N^2 d)", memory="O(N^2)")
def plugin_attention(q, k, v, *, causal=False, scale=None):
    """softmax(q k^T · scale) v. q, k: (B, H, N, D); v: (B, H, N, D_v) -> (B, H, N, D_v)."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    s = (q @ k.transpose(-1, -2)) * scale  # (B, H, N_q, N_kv)
    if causal:
        s = s.masked_fill(torch.ones(s.shape[-2:], dtype=torch.bool).triu(1), float("-inf"))
    return s.softmax(-1) @ v
