"""Exact attention in float64: the ground truth every variant's error is measured against.

Only the rows asked for are computed: an exact row costs O(N_kv·D), so a
seeded sample of query rows gives an error estimate at any N without the
O(N^2) memory of the full matrix.
"""

from __future__ import annotations

import math

import torch


def reference_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    scale: float | None = None,
    rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """softmax(q k^T · scale) v in float64, for all query rows or the indices in ``rows``.

    q, k: (B, H, N_q|N_kv, D); v: (B, H, N_kv, D_v) -> (B, H, R, D_v) float64, with
    R = N_q or len(rows). Causal: query i sees keys j <= i (top-left aligned).
    Time O(R·N_kv·(D + D_v)); memory O(B·H·R·N_kv). Differentiable (float64 gradients
    are the reference for the variants' backward passes).
    """
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    index = torch.arange(q.shape[2], device=q.device) if rows is None else rows.to(q.device)
    qd = q.to(torch.float64)[:, :, index]  # (B, H, R, D)
    scores = qd @ k.to(torch.float64).transpose(-1, -2) * scale  # (B, H, R, N_kv)
    if causal:
        keys = torch.arange(k.shape[2], device=q.device)
        scores = scores.masked_fill(keys[None, :] > index[:, None], float("-inf"))
    return torch.softmax(scores, dim=-1) @ v.to(torch.float64)  # (B, H, R, D_v)
