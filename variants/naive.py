"""Naive attention: the textbook formula, materializing the N x N matrix.

    softmax(Q K^T / sqrt(d)) V

This is the classic ``SelfAttention`` core: time O(N^2 d), memory O(N^2) (the
scores and the probabilities are both (B, H, N_q, N_kv) tensors alive at once).
It is the baseline whose memory the fused and chunked variants exist to avoid.
"""

from __future__ import annotations

import torch

from .common import group_queries, hide, row_positions, softmax_scale, ungroup
from .masks import Mask
from .registry import ALL_MASKS, ALL_SCORE_MODS, register
from .score_mods import NO_MOD, ScoreMod


@register("naive", family="naive", exact=True, time="O(N^2 d)", memory="O(N^2)", masks=ALL_MASKS, gqa=True,
          score_mods=ALL_SCORE_MODS, ragged=True)  # fmt: skip
def naive(q, k, v, *, mask: Mask, scale: float | None = None, score_mod: ScoreMod = NO_MOD,
          kv_lens: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Textbook QK^T/sqrt(d) -> softmax -> ·V, with the full (N_q, N_kv) matrix.

    q: (B, H, N_q, D); k, v: (B, H_kv, N_kv, D|D_v) -> (B, H, N_q, D_v). Grouped
    heads are folded into the query rows (`variants.common.group_queries`), so K
    and V are read as they are. ``score_mod`` modifies the whole score matrix
    before the mask. ``kv_lens`` (B,): sequence b reads its first kv_lens[b] keys (`variants.kv_lens`).
    Time O(B·H·N_q·N_kv·D); memory O(B·H·N_q·N_kv).
    """
    H, n_q, n_kv = q.shape[1], q.shape[2], k.shape[2]
    groups = H // k.shape[1]
    rows = group_queries(q, k.shape[1])  # (B, H_kv, N_q·G, D)
    scores = torch.einsum("bhid,bhjd->bhij", rows, k) * softmax_scale(q, scale)  # (B, H_kv, N_q·G, N_kv)
    scores = score_mod.apply_folded(scores, torch.arange(n_q * groups, device=q.device), n_q, n_kv, H)
    if mask.kind != "none" or kv_lens is not None:
        hide(scores, mask, row_positions(n_q, groups, q.device), n_q, n_kv, kv_lens=kv_lens)  # on the device: no copy
    probs = torch.softmax(scores, dim=-1)  # (B, H_kv, N_q·G, N_kv); a row with no visible key is NaN
    if mask.hides_rows:
        probs = probs.nan_to_num(0.0)  # that row's output is zeros
    return ungroup(torch.einsum("bhij,bhje->bhie", probs, v), H)  # (B, H, N_q, D_v)
