"""Performer / FAVOR+ (Choromanski et al. 2021): positive orthogonal random features.

exp(q·k) = E_w[phi(q)·phi(k)] with phi(x) = exp(W x - |x|^2 / 2) / sqrt(m) for
rows of W drawn from N(0, I). The estimate is unbiased and, unlike
trigonometric features, positive, so the normalizer never goes negative.
Rows of W are made orthogonal in blocks of D (lower variance for the same m).
Linear-time attention then follows from `linear.linear_attention`.

Numerical stabilization (see `_features`): each query row's features are
divided by their own maximum and all keys' features of a head by one shared
maximum; both factors cancel in the ratio, and exp never overflows.
"""

from __future__ import annotations

import math

import torch

from .common import made_once, softmax_scale
from .linear import kernel_flops, linear_attention
from .masks import CAUSAL, NONE, Mask
from .registry import register


@made_once(maxsize=32)
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


def _features(x: torch.Tensor, w: torch.Tensor, *, scale: float, shared: bool) -> torch.Tensor:
    """Positive random features of sqrt(scale)·x for x (B, H, N, D) -> (B, H, N, m), up to a constant.

    phi(y) = exp(w y - |y|^2 / 2) with y = sqrt(scale)·x, divided by its
    maximum: per row (``shared=False``, queries) or over all rows of a head
    (``shared=True``, keys). That constant cancels between numerator and
    denominator and puts the largest feature at exactly 1, so exp never
    overflows. Per row, |y|^2/2 is such a constant too and is skipped; so is
    the usual 1/sqrt(m). Shared features get a floor of 1e-6 so a key whose
    features all underflow cannot leave a causal prefix with a zero denominator.
    """
    B, H, N, D = x.shape
    root = math.sqrt(scale)
    proj = (x.reshape(B * H * N, D) @ (w.T * root)).view(B, H, N, -1)  # (B, H, N, m) = w·y
    if shared:
        proj.sub_(x.pow(2).sum(dim=-1, keepdim=True).mul_(scale / 2))  # - |y|^2/2
    with torch.no_grad():  # the stabilizer cancels, so no gradient flows through it
        top = proj.amax(dim=(-2, -1) if shared else -1, keepdim=True)
    features = proj.sub_(top).exp_()
    return features + 1e-6 if shared else features  # out of place: exp_ saved its output for backward


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
    q, k, v, *, mask: Mask = NONE, scale: float | None = None, seed: int = 0, features: int = 256, chunk: int = 64
) -> torch.Tensor:
    """FAVOR+ softmax attention with ``features`` positive orthogonal random features.

    q, k: (B, H, N_q|N_kv, D); v: (B, H, N_kv, D_v) -> (B, H, N_q, D_v).
    Time O(N·m·(D + D_v)); memory O(N·m). FLOPs counted as twice the kernelized
    core: the feature projections cost as much again. ``seed`` fixes the projection.
    """
    w = orthogonal_gaussian(features, q.shape[-1], seed, str(q.device), q.dtype)  # (m, D)
    scale = softmax_scale(q, scale)  # exp(scale·q·k) = exp(y_q·y_k) with y = sqrt(scale)·x
    phi_q = _features(q, w, scale=scale, shared=False)  # (B, H, N_q, m)
    phi_k = _features(k, w, scale=scale, shared=True)  # (B, H, N_kv, m)
    return linear_attention(phi_q, phi_k, v, causal=mask == CAUSAL, chunk=chunk)
