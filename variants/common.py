"""Small helpers every family shares: the softmax scale and the causal mask.

Causal convention (the same as ``torch.nn.functional.scaled_dot_product_attention``
with ``is_causal=True`` and xformers' ``LowerTriangularMask``): query ``i`` sees
keys ``j <= i``, aligned at the top-left corner when N_q != N_kv. Key 0 is
visible to every query, so no row is ever fully masked.
"""

from __future__ import annotations

import torch


def softmax_scale(q: torch.Tensor, scale: float | None) -> float:
    """The logit scale: ``scale`` if given, else 1/sqrt(D) for q of shape (..., D)."""
    return q.shape[-1] ** -0.5 if scale is None else float(scale)


def future_mask(n_q: int, n_kv: int, *, offset: int = 0, device: torch.device | str = "cpu") -> torch.Tensor:
    """Boolean (n_q, n_kv) mask, True where key ``j`` lies after query ``i + offset``.

    ``offset`` places a block of queries that starts at row ``offset`` against
    keys that start at column 0 of the block (blocked variants pass the
    difference of the two starting indices).
    """
    rows = torch.arange(n_q, device=device).unsqueeze(1) + offset  # (n_q, 1)
    cols = torch.arange(n_kv, device=device).unsqueeze(0)  # (1, n_kv)
    return cols > rows
