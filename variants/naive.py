"""Naive attention: the textbook formula, materializing the N x N matrix.

    softmax(Q K^T / sqrt(d)) V

This is the classic ``SelfAttention`` core: time O(N^2 d), memory O(N^2) (the
scores and the probabilities are both (B, H, N_q, N_kv) tensors alive at once).
It is the baseline whose memory the fused and chunked variants exist to avoid.
"""

from __future__ import annotations

import torch

from .common import future_mask, softmax_scale
from .registry import register


@register("naive", family="naive", exact=True, time="O(N^2 d)", memory="O(N^2)")
def naive(q, k, v, *, causal: bool = False, scale: float | None = None) -> torch.Tensor:
    """Textbook QK^T/sqrt(d) -> softmax -> ·V, with the full (N_q, N_kv) matrix.

    q, k: (B, H, N_q|N_kv, D); v: (B, H, N_kv, D_v) -> (B, H, N_q, D_v).
    Time O(B·H·N_q·N_kv·D); memory O(B·H·N_q·N_kv).
    """
    scores = torch.einsum("bhid,bhjd->bhij", q, k) * softmax_scale(q, scale)  # (B, H, N_q, N_kv)
    if causal:
        mask = future_mask(q.shape[2], k.shape[2], device=q.device)  # (N_q, N_kv)
        scores = scores.masked_fill(mask, float("-inf"))
    probs = torch.softmax(scores, dim=-1)  # (B, H, N_q, N_kv)
    return torch.einsum("bhij,bhje->bhie", probs, v)  # (B, H, N_q, D_v)
