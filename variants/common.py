"""Small helpers every family shares: the softmax scale, grouped-query heads, and masking a score tile.

Causal convention (``torch.nn.functional.scaled_dot_product_attention`` with
``is_causal=True``, xformers' ``LowerTriangularMask``): query ``i`` sees keys
``j <= i``, aligned at the top-left corner when N_q != N_kv. Other masks
(`variants.masks`) may leave a query no key; its output row is then zeros.

Grouped-query attention: k and v have H_kv heads, H_kv dividing q's H, and
query head h reads key head h // (H / H_kv). Kernels here serve it without
copying K and V: the G = H / H_kv query heads of a group are folded into the
query rows, (B, H, N, D) -> (B, H_kv, N·G, D), ordered by position, so row r
is position r // G and every row-wise mask bound stays non-decreasing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import torch

from .kv_lens import bounds as ragged_bounds
from .masks import Mask

F = TypeVar("F", bound=Callable[..., object])


def made_once(maxsize: int) -> Callable[[F], F]:
    """``functools.lru_cache`` for what a variant makes once and reuses (projections, block masks), made outside
    inference mode whatever the first caller's mode: a tensor first made under ``torch.inference_mode`` is an
    inference tensor, which autograd refuses to save, so a later call that needs gradients would fail."""

    def wrap(fn: F) -> F:
        @functools.lru_cache(maxsize=maxsize)
        @functools.wraps(fn)
        def made(*args, **kwargs):
            with torch.inference_mode(False):
                return fn(*args, **kwargs)

        return made  # type: ignore[return-value]

    return wrap


def softmax_scale(q: torch.Tensor, scale: float | None) -> float:
    """The logit scale: ``scale`` if given, else 1/sqrt(D) for q of shape (..., D)."""
    return q.shape[-1] ** -0.5 if scale is None else float(scale)


def group_queries(q: torch.Tensor, heads_kv: int) -> torch.Tensor:
    """(B, H, N, D) -> (B, H_kv, N·G, D), row r = position r // G of query head (r % G) of its group."""
    B, H, N, D = q.shape
    G = H // heads_kv
    return q.view(B, heads_kv, G, N, D).transpose(2, 3).reshape(B, heads_kv, N * G, D)  # a view when G == 1


def ungroup(out: torch.Tensor, heads: int) -> torch.Tensor:
    """The inverse of `group_queries` on an output: (B, H_kv, N·G, E) -> (B, H, N, E)."""
    B, H_kv, NG, E = out.shape
    G = heads // H_kv
    return out.view(B, H_kv, NG // G, G, E).transpose(2, 3).reshape(B, heads, NG // G, E)


def row_positions(n_q: int, groups: int, device=None) -> torch.Tensor:
    """The query position of each folded row: (N·G,) = [0]*G + [1]*G + ..."""
    return torch.arange(n_q, device=device).repeat_interleave(groups)


def hide(scores: torch.Tensor, mask: Mask, rows: torch.Tensor, n_q: int, n_kv: int, k0: int = 0,
         kv_lens: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Set to -inf, in place, the entries of a (..., R, C) score tile that ``mask`` hides.

    ``rows`` (R,) are the tile rows' query positions, its columns keys k0..k0+C. With ``kv_lens`` (B,) the
    tile is (B, H_kv, R, C) and sequence b's mask is read at its own cache length (`variants.kv_lens`).
    """
    if kv_lens is None:
        lo, hi = mask.bounds(rows, n_q, n_kv)  # (R,)
    else:
        lo, hi = ragged_bounds(mask, rows, n_q, kv_lens)  # (B, 1, R)
    keys = torch.arange(k0, k0 + scores.shape[-1], device=scores.device)
    hidden = (keys < lo[..., None].to(scores.device)) | (keys >= hi[..., None].to(scores.device))  # (R, C), (B, 1, R, C)
    return scores.masked_fill_(hidden, float("-inf"))


def zero_empty_rows(out: torch.Tensor, mask: Mask, n_q: int, n_kv: int) -> torch.Tensor:
    """``out`` (B, H, N_q, E) with the rows of queries that see no key set to zero (NaN from 0/0 otherwise)."""
    if not mask.hides_rows:
        return out
    empty = _empty_rows(mask, n_q, n_kv, out.device)
    return out if empty is None else out.masked_fill(empty[:, None], 0.0)


@made_once(maxsize=8)
def _empty_rows(mask: Mask, n_q: int, n_kv: int, device: torch.device) -> torch.Tensor | None:
    """The queries that see no key, (N_q,) bool on ``device``, or None when there are none: decided from the shape
    on the host, once. Per call, the copy to the device (and the device-to-host ``any``) made the host wait for the
    device every call: on the H200, sdpa decode and sdpa under a sliding or document mask read "host-synchronizing"
    and no CUDA graph could hold them."""
    empty = mask.row_counts(n_q, n_kv) == 0
    return empty.to(device) if bool(empty.any()) else None
