"""The classic self-attention layer, with any registered variant as its core.

    x (B, N, d_model) -> Q, K, V = x W_Q, x W_K, x W_V -> attention -> (B, N, d_v)

so a whole layer (projections included) can be benchmarked with every core,
and two cores given the same weights must agree exactly when both are exact.
"""

from __future__ import annotations

import torch
from torch import nn

from .masks import NONE, Mask, parse_mask
from .registry import get_variant


class SelfAttention(nn.Module):
    """Self-attention with learned W_Q, W_K (d_model -> d_k) and W_V (d_model -> d_v).

    ``heads`` splits d_k and d_v evenly; ``variant`` names the registered core
    (looked up once, so an unknown name fails at construction). Time and memory
    are the core's, plus O(N·d_model·(2·d_k + d_v)) for the projections.
    """

    def __init__(
        self,
        d_model: int,
        d_k: int,
        d_v: int | None = None,
        *,
        heads: int = 1,
        variant: str = "naive",
        mask: Mask | str = NONE,
        seed: int = 0,
    ) -> None:
        super().__init__()
        d_v = d_k if d_v is None else d_v
        if d_k % heads or d_v % heads:
            raise ValueError(f"heads={heads} must divide d_k={d_k} and d_v={d_v}")
        self.heads, self.mask, self.seed = heads, parse_mask(mask), seed
        self.core = get_variant(variant)
        self.w_q = nn.Linear(d_model, d_k, bias=False)
        self.w_k = nn.Linear(d_model, d_k, bias=False)
        self.w_v = nn.Linear(d_model, d_v, bias=False)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        B, N, _ = x.shape
        return x.view(B, N, self.heads, -1).transpose(1, 2)  # (B, H, N, d/H)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, N, d_model) -> (B, N, d_v)."""
        B, N, _ = x.shape
        q, k, v = self._split(self.w_q(x)), self._split(self.w_k(x)), self._split(self.w_v(x))
        out = self.core(q, k, v, mask=self.mask, seed=self.seed)  # (B, H, N, d_v/H)
        return out.transpose(1, 2).reshape(B, N, -1)  # (B, N, d_v)

    def extra_repr(self) -> str:
        return f"variant={self.core.name!r}, heads={self.heads}, mask={self.mask.spec!r}"
