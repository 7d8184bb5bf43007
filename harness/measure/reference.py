"""Exact attention in float64: the ground truth every variant's error is measured against.

Only the rows asked for are computed: an exact row costs O(N_kv·D), so a
seeded sample of query rows gives an error estimate at any N without the
O(N^2) memory of the full matrix.
"""

from __future__ import annotations

import math

import torch

from variants.kv_lens import dense as ragged_dense
from variants.kv_lens import refusal as kv_lens_refusal
from variants.masks import Mask, parse_mask
from variants.score_mods import ScoreMod, parse_score_mod


def reference_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    mask: Mask | str | None = None,
    score_mod: ScoreMod | str | None = None,
    scale: float | None = None,
    rows: torch.Tensor | None = None,
    kv_lens: torch.Tensor | None = None,
) -> torch.Tensor:
    """softmax(score_mod(q k^T · scale)) v in float64 under ``mask``, for all query rows or the positions in ``rows``.

    q: (B, H, N_q, D); k, v: (B, H_kv, N_kv, D|D_v), H_kv dividing H (query head
    h reads key head h // (H / H_kv)) -> (B, H, R, D_v) float64, R = N_q or
    len(rows). ``mask``: a `variants.masks.Mask` (or its spec); a query that
    sees no key gets zeros. ``score_mod``: a `variants.score_mods.ScoreMod` (or
    its spec), applied to the scaled scores before the mask. ``kv_lens``
    (B,): caches of unequal length, sequence b decoding at its own length
    (`variants.kv_lens`). Time O(R·N_kv·(D + D_v)); memory O(B·H·R·N_kv).
    Differentiable (float64 gradients are the reference for the variants'
    backward passes).
    """
    probs = reference_probabilities(q, k, mask=mask, score_mod=score_mod, scale=scale, rows=rows, kv_lens=kv_lens)
    return weighted_values(probs, v)


def weighted_values(probs: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """probs (B, H, R, N_kv) float64 times v (B, H_kv, N_kv, D_v) -> (B, H, R, D_v) float64, each group's
    G = H / H_kv query heads stacked as rows against its one value head (V is never expanded)."""
    B, H, R, n_kv = probs.shape
    out = probs.view(B, v.shape[1], H // v.shape[1] * R, n_kv) @ v.to(torch.float64)  # (B, H_kv, G·R, D_v)
    return out.view(B, H, R, v.shape[-1])


def reference_probabilities(
    q: torch.Tensor,
    k: torch.Tensor,
    *,
    mask: Mask | str | None = None,
    score_mod: ScoreMod | str | None = None,
    scale: float | None = None,
    rows: torch.Tensor | None = None,
    kv_lens: torch.Tensor | None = None,
) -> torch.Tensor:
    """The exact attention weights in float64: (B, H, R, N_kv), each row summing to 1 over the keys it sees
    (all zeros for a query that sees none). Arguments as `reference_attention`'s. Time O(R·N_kv·D)."""
    mask, score_mod = parse_mask(mask), parse_score_mod(score_mod)
    if kv_lens is not None and kv_lens_refusal(mask, score_mod.kind):
        raise ValueError(kv_lens_refusal(mask, score_mod.kind))
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    B, H, n_q, D = q.shape
    H_kv, n_kv = k.shape[1], k.shape[2]
    index = torch.arange(n_q, device=q.device) if rows is None else rows.to(q.device)
    R, G = len(index), H // H_kv
    # Each group's G query heads stacked as rows against its one key head: K and V are never
    # expanded to H heads (a broadcast matmul would copy them G times, in float64).
    qd = q.to(torch.float64)[:, :, index].reshape(B, H_kv, G * R, D)  # (B, H_kv, G·R, D)
    scores = (qd @ k.to(torch.float64).transpose(-1, -2) * scale).view(B, H, R, n_kv)  # head h = group·G + g
    scores = score_mod.apply(scores, index, n_q, n_kv)  # (B, H, R, N_kv)
    if kv_lens is None:
        visible = mask.dense(n_q, n_kv, rows=index, device=q.device)  # (R, N_kv)
    else:  # each sequence at its own cache length
        visible = ragged_dense(mask, n_q, n_kv, kv_lens.to(q.device), rows=index)  # (B, 1, R, N_kv)
    probs = torch.softmax(scores.masked_fill(~visible, float("-inf")), dim=-1)
    return probs.masked_fill(~visible.any(-1, keepdim=True), 0.0)  # no visible key: zeros, not NaN
