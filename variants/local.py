"""Local (sliding-window) attention computed on the band only, in one batched pass.

Exact attention under a ``sliding:W`` mask (`variants.masks`): query i sees
the W keys up to its aligned position i + o (o = N_kv - N_q). The queries are
cut into blocks of b; block n needs only the W + b - 1 keys from n·b + o - W + 1,
one overlapping window each (Longformer's "sliding chunks", Beltagy et al.
2020). All windows are taken at once (``unfold`` of the padded keys), so the
whole band is two batched matmuls and one softmax, with no Python loop over
blocks, unlike the chunked kernels. Time O(N·(W + b)·d), memory O(N·(W + b))
for the band's scores; other masks are `Unsupported`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .common import softmax_scale
from .masks import Mask
from .registry import ALL_SCORE_MODS, register
from .score_mods import NO_MOD, ScoreMod


def _windows(x: torch.Tensor, first: int, size: int, step: int, count: int) -> torch.Tensor:
    """``count`` windows of ``size`` rows of x (B, H, L, E), starting at ``first`` + n·step -> (B, H, count, size, E).

    Rows outside [0, L) are zeros (masked by the caller).
    """
    left = max(0, -first)
    right = max(0, first + (count - 1) * step + size - x.shape[2])
    padded = F.pad(x, (0, 0, left, right))  # (B, H, left + L + right, E)
    start = first + left
    return padded[:, :, start:].unfold(2, size, step)[:, :, :count].transpose(-1, -2)  # (B, H, count, size, E)


def _modified(scores: torch.Tensor, score_mod: ScoreMod, heads: int, b: int, W: int) -> torch.Tensor:
    """``score_mod`` on the band's scores (B, H_kv, n, G·b, W + b - 1), rows g-major (g·b + r).

    Query r of a block sits at key offset r + W - 1 of its window, in every block alike, so a bias depends
    on (head, r, c) only: it is the bias of b queries over W + b - 1 keys offset by W - 1 (computed once, not
    per block). A soft cap is elementwise.
    """
    if score_mod.kind == "softcap":
        return score_mod.size * torch.tanh(scores / score_mod.size)
    if not score_mod.is_bias:
        return scores
    H_kv, width = scores.shape[1], scores.shape[-1]
    rows, keys = torch.arange(b, device=scores.device), torch.arange(width, device=scores.device)
    bias = score_mod.bias(heads, rows, 0, W - 1, keys, scores.dtype)  # (H, b, W + b - 1): o = W - 1
    return scores + bias.view(H_kv, 1, heads // H_kv * b, width)


@register("local", family="local", exact=True, time="O(N W d)", memory="O(N W)", masks=("sliding",), gqa=True,
          skips_masked=True, params={"block": 128}, score_mods=ALL_SCORE_MODS)  # fmt: skip
def local(q, k, v, *, mask: Mask, scale: float | None = None, block: int = 128,
          score_mod: ScoreMod = NO_MOD) -> torch.Tensor:  # fmt: skip
    """Exact sliding-window attention over the band only.

    q: (B, H, N_q, D); k, v: (B, H_kv, N_kv, D|D_v) -> (B, H, N_q, D_v), ``mask`` sliding:W.
    Query blocks of b = min(block, W) positions (a group's G query heads stacked
    in each), each against its window of W + b - 1 keys.
    Time O(B·H·N_q·(W + b)·D); memory O(B·H·N_q·(W + b)).
    """
    B, H, n_q, D = q.shape
    H_kv, n_kv, E = k.shape[1], k.shape[2], v.shape[-1]
    G, W = H // H_kv, mask.size
    b = max(1, min(block, W))
    count, width = -(-n_q // b), W + b - 1  # query blocks; keys per window
    first = n_kv - n_q - W + 1  # block 0's first key: query 0 sits at key o and sees back to o - W + 1
    keys = _windows(k, first, width, b, count)  # (B, H_kv, n, W + b - 1, D)
    values = _windows(v, first, width, b, count)  # (B, H_kv, n, W + b - 1, D_v)
    rows = F.pad(q, (0, 0, 0, count * b - n_q)).view(B, H_kv, G, count, b, D)  # (B, H_kv, G, n, b, D)
    rows = rows.permute(0, 1, 3, 2, 4, 5).reshape(B, H_kv, count, G * b, D)  # (B, H_kv, n, G·b, D)
    scores = (rows @ keys.transpose(-1, -2)) * softmax_scale(q, scale)  # (B, H_kv, n, G·b, W + b - 1)
    scores = _modified(scores, score_mod, H, b, W)
    r = torch.arange(b, device=q.device)[:, None]  # query offset within its block
    c = torch.arange(width, device=q.device)[None, :]  # key offset within the window
    band = (c >= r) & (c <= r + W - 1)  # (b, W + b - 1): key j = i + o - W + 1 + (c - r), inside the window
    key = first + b * torch.arange(count, device=q.device)[:, None, None] + c  # (n, 1, W + b - 1) absolute key index
    visible = band & (key >= 0) & (key < n_kv)  # (n, b, W + b - 1)
    visible = visible[:, None].expand(count, G, b, width).reshape(count, G * b, width)  # (n, G·b, W + b - 1)
    probs = torch.softmax(scores.masked_fill(~visible, float("-inf")), dim=-1).nan_to_num(0.0)  # no key: zeros
    out = (probs @ values).view(B, H_kv, count, G, b, E)  # (B, H_kv, n, G, b, D_v)
    return out.permute(0, 1, 3, 2, 4, 5).reshape(B, H, count * b, E)[:, :, :n_q]  # (B, H, N_q, D_v)
