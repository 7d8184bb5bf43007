"""Performer / FAVOR+ (Choromanski et al. 2021): positive orthogonal random features.

exp(q·k) = E_w[phi(q)·phi(k)] with phi(x) = exp(W x - |x|^2 / 2) / sqrt(m) for
rows of W drawn from N(0, I). The estimate is unbiased and, unlike
trigonometric features, positive, so the normalizer never goes negative.
Rows of W are made orthogonal in blocks of D (lower variance for the same m).
Linear-time attention then follows from `linear.linear_attention`.

Numerical stabilization: each query row's features are divided by their own
maximum and all keys' features (of one head) by one shared maximum; both
factors cancel between numerator and denominator, and exp never overflows.
"""

from __future__ import annotations

import functools
import math

import torch

from .common import softmax_scale
from .linear import kernel_flops, linear_attention
from .registry import register


@functools.lru_cache(maxsize=32)
def orthogonal_gaussian(features: int, dim: int, seed: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    """(features, dim) matrix whose rows are N(0, I) in law and orthogonal within blocks of dim.

    Drawn in float64 on the CPU from a generator seeded by ``seed`` (so a seed
    gives the same matrix on every device), then cast. Cached: a Performer
    layer draws its projection once, not per forward call.
    """
    gen = torch.Generator().manual_seed(seed)
    blocks = []
    for _ in range(-(-features // dim)):
        gaussian = torch.randn(dim, dim, generator=gen, dtype=torch.float64)
        basis, _ = torch.linalg.qr(gaussian)  # orthonormal columns
        blocks.append(basis.T)  # (dim, dim), orthonormal rows
    rows = torch.cat(blocks)[:features]  # (features, dim)
    # Orthonormal rows have unit norm; give each a chi(dim) norm as a Gaussian vector has.
    norms = torch.randn(features, dim, generator=gen, dtype=torch.float64).norm(dim=1, keepdim=True)
    return (rows * norms).to(device=device, dtype=dtype)


def _features(x: torch.Tensor, w: torch.Tensor, stabilizer_dims: tuple[int, ...]) -> torch.Tensor:
    """Positive random features of x (B, H, N, D) -> (B, H, N, m), stabilized over ``stabilizer_dims``."""
    proj = torch.einsum("bhnd,md->bhnm", x, w)  # (B, H, N, m)
    sq = x.pow(2).sum(dim=-1, keepdim=True) / 2  # (B, H, N, 1)
    exponent = proj - sq  # (B, H, N, m)
    # Subtracting the maximum over stabilizer_dims multiplies by a constant that
    # cancels in the ratio and puts the largest feature at exactly 1; the small
    # additive term keeps every feature strictly positive after underflow.
    exponent = exponent - exponent.amax(dim=stabilizer_dims, keepdim=True)
    return (torch.exp(exponent) + 1e-6) / math.sqrt(w.shape[0])


@register(
    "performer-256",
    family="performer",
    exact=False,
    time="O(N m d)",
    memory="O(N m)",
    params={"features": 256},
    randomized=True,
    flops=lambda case: 2 * kernel_flops(case, 256),
)
@register(
    "performer-64",
    family="performer",
    exact=False,
    time="O(N m d)",
    memory="O(N m)",
    params={"features": 64},
    randomized=True,
    flops=lambda case: 2 * kernel_flops(case, 64),
)
def performer(
    q, k, v, *, causal: bool = False, scale: float | None = None, seed: int = 0, features: int = 256, chunk: int = 64
) -> torch.Tensor:
    """FAVOR+ softmax attention with ``features`` positive orthogonal random features.

    q, k: (B, H, N_q|N_kv, D); v: (B, H, N_kv, D_v) -> (B, H, N_q, D_v).
    Time O(N·m·(D + D_v)); memory O(N·m). FLOPs counted as twice the kernelized
    core: the feature projections cost as much again. ``seed`` fixes the projection.
    """
    root = math.sqrt(softmax_scale(q, scale))  # exp(scale·q·k) = exp((root·q)·(root·k))
    w = orthogonal_gaussian(features, q.shape[-1], seed, str(q.device), q.dtype)  # (m, D)
    phi_q = _features(q * root, w, stabilizer_dims=(-1,))  # per query row
    phi_k = _features(k * root, w, stabilizer_dims=(-2, -1))  # one constant for all keys of a head
    return linear_attention(phi_q, phi_k, v, causal=causal, chunk=chunk)
