"""Sliding-window plugins as a user would write them: approximations of full attention that declare the
exact attention they compute (``reference="sliding:64"``), one with its window off by one."""

import torch

from variants import register


def windowed_attention(q, k, v, *, window, scale=None):
    """Each query attends to the ``window`` most recent keys (bottom-right aligned).
    q: (B, H, N_q, D); k, v: (B, H, N_kv, D|D_v) -> (B, H, N_q, D_v). Dense: O(N^2 d) time, O(N^2) memory."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    n_q, n_kv = q.shape[-2], k.shape[-2]
    i = torch.arange(n_q).unsqueeze(1) + (n_kv - n_q)  # each query's position among the keys
    j = torch.arange(n_kv).unsqueeze(0)
    hidden = (j > i) | (j <= i - window)
    s = ((q @ k.transpose(-1, -2)) * scale).masked_fill(hidden, float("-inf"))
    return torch.nan_to_num(s.softmax(-1)) @ v  # a query with no key in its window: zeros


@register("test-window-64", family="plugin", exact=False, time="O(N^2 d)", memory="O(N^2)", causal=False,
          reference="sliding:64", tolerance=1e-5)  # fmt: skip
def window_64(q, k, v, *, causal=False, scale=None):
    return windowed_attention(q, k, v, window=64, scale=scale)


@register("test-window-off-by-one", family="plugin", exact=False, time="O(N^2 d)", memory="O(N^2)", causal=False,
          reference="sliding:64", tolerance=1e-5)  # fmt: skip
def window_off_by_one(q, k, v, *, causal=False, scale=None):
    return windowed_attention(q, k, v, window=65, scale=scale)
