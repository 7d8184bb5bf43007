"""Low-rank approximations of the attention matrix: Nyströmformer and Linformer (non-causal).

Nyströmformer (Xiong et al., AAAI 2021, "Nyströmformer: A Nyström-Based
Algorithm for Approximating Self-Attention"): m landmarks, the segment means
of Q and of K, stand in for the N x N softmax matrix S:

    S ~ softmax(Q K~^T) · pinv(softmax(Q~ K~^T)) · softmax(Q~ K^T)

with the pseudo-inverse of the m x m middle factor by six Newton–Schulz
iterations (the paper's), never an SVD. Time O(N·m·d + m^3), memory O(N·m).

Linformer (Wang et al., 2020, "Linformer: Self-Attention with Linear
Complexity"): K and V are projected along N to k rows, K' = E K and V' = F V,
so softmax(Q K'^T) V' costs O(N·k·d). The paper learns E and F; a benchmark
measures the mechanism, so here E = F (the paper's key-value sharing) is a
seeded random projection whose rows are random averaging weights
(Dirichlet(1): non-negative, summing to one), drawn once per (N, k, seed) and
cached as trained weights would be. Why not the Gaussian projection of the
paper's Theorem 2: untrained, its projected values are sqrt(N/k) times too
large, and the output's error against exact attention measured 27 at N=1024
and 355 at N=8192 (k=128) -- a scale mismatch, not the mechanism. Averaging
rows keep the implied weights over the original keys a distribution, so the
error measures what a rank-k projection of the keys loses (0.8 on unit
Gaussian inputs, as Nyström's).

Neither has a causal form (each mixes every key into every landmark or
projected row), so both serve the mask "none" only.
"""

from __future__ import annotations

from typing import Any

import torch

from .common import made_once, softmax_scale
from .masks import NONE, Mask
from .registry import register

PINV_ITERATIONS = 6  # Xiong et al.: six iterations reach the pseudo-inverse to within fp32 for attention


def segment_means(x: torch.Tensor, m: int) -> torch.Tensor:
    """(B, H, N, D) -> (B, H, m, D): the means of m contiguous segments of near-equal length (all rows when N <= m).

    Prefix sums make any N work: segment j covers rows [floor(jN/m), floor((j+1)N/m)).
    """
    B, H, N, D = x.shape
    if N <= m:
        return x
    bounds = torch.div(torch.arange(m + 1, device=x.device) * N, m, rounding_mode="floor")  # (m + 1,)
    sums = torch.nn.functional.pad(x.cumsum(dim=2), (0, 0, 1, 0))  # (B, H, N + 1, D), sums[i] = rows before i
    counts = (bounds[1:] - bounds[:-1]).to(x.dtype)[:, None]  # (m, 1)
    return (sums[:, :, bounds[1:]] - sums[:, :, bounds[:-1]]) / counts


def newton_schulz_pinv(a: torch.Tensor, iterations: int = PINV_ITERATIONS) -> torch.Tensor:
    """Approximate pseudo-inverse of each (m, m) matrix in ``a`` (..., m, m) by the iteration of Xiong et al.:

    Z0 = A^T / (||A||_1 ||A||_inf),  Z <- Z (13 I - A Z (15 I - A Z (7 I - A Z))) / 4.
    """
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    norm_1 = a.abs().sum(dim=-2).amax(dim=-1, keepdim=True)[..., None]  # (..., 1, 1) max column sum
    norm_inf = a.abs().sum(dim=-1).amax(dim=-1, keepdim=True)[..., None]  # max row sum
    z = a.transpose(-1, -2) / (norm_1 * norm_inf)
    for _ in range(iterations):
        az = a @ z
        z = 0.25 * z @ (13 * eye - az @ (15 * eye - az @ (7 * eye - az)))
    return z


def nystrom_flops(case: Any, m: int) -> float:
    """Forward FLOPs: the three softmax factors, two products with V, and the pseudo-inverse (48·m^3)."""
    n_q, n = getattr(case, "q_len", None) or case.seq_len, case.seq_len
    d, m = case.head_dim, min(m, n_q, n)
    per_head = 2 * n_q * m * d + 2 * m * m * d + 2 * m * n * d  # the three score matrices
    per_head += 2 * m * n * d + 2 * m * m * d + 2 * n_q * m * d + 48 * m**3  # B·V, pinv·(B·V), F·(...), the pinv
    return float(case.batch * case.heads * per_head)


@register("nystrom-64", family="nystrom", exact=False, time="O(N m d)", memory="O(N m)", params={"landmarks": 64},
          masks=("none",), flops=lambda case: nystrom_flops(case, 64))  # fmt: skip
@register("nystrom-32", family="nystrom", exact=False, time="O(N m d)", memory="O(N m)", params={"landmarks": 32},
          masks=("none",), flops=lambda case: nystrom_flops(case, 32))  # fmt: skip
def nystrom(q, k, v, *, mask: Mask = NONE, scale: float | None = None, landmarks: int = 64,
            iterations: int = PINV_ITERATIONS) -> torch.Tensor:  # fmt: skip
    """Nyström attention with ``landmarks`` segment-mean landmarks (Xiong et al. 2021).

    q, k: (B, H, N_q|N_kv, D); v: (B, H, N_kv, D_v) -> (B, H, N_q, D_v).
    Time O(N·m·(D + D_v) + m^3); memory O(N·m). Factors and the pseudo-inverse
    run in float32 at least (half-precision inputs are cast up and back).
    """
    given, dtype = q.dtype, torch.promote_types(q.dtype, torch.float32)
    q, k, v = (t.to(dtype) for t in (q, k, v))
    s = softmax_scale(q, scale)
    m = min(landmarks, q.shape[2], k.shape[2])  # as many query as key landmarks: the middle factor is square
    q_land, k_land = segment_means(q, m), segment_means(k, m)  # (B, H, m, D)
    kernel_1 = torch.softmax(q @ k_land.transpose(-1, -2) * s, dim=-1)  # (B, H, N_q, m)
    kernel_2 = torch.softmax(q_land @ k_land.transpose(-1, -2) * s, dim=-1)  # (B, H, m, m)
    kernel_3 = torch.softmax(q_land @ k.transpose(-1, -2) * s, dim=-1)  # (B, H, m, N_kv)
    out = kernel_1 @ (newton_schulz_pinv(kernel_2, iterations) @ (kernel_3 @ v))  # (B, H, N_q, D_v)
    return out.to(given)


@made_once(maxsize=16)
def projection(rows: int, n: int, seed: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    """Seeded (rows, n) projection whose rows are Dirichlet(1) weights (non-negative, each summing to one).

    Drawn in float64 on the CPU (normalized Exp(1) draws), then cast. Cached
    per shape and seed, as trained weights exist before a forward call; never modified.
    """
    gen = torch.Generator().manual_seed(seed)
    weights = -torch.log1p(-torch.rand(rows, n, generator=gen, dtype=torch.float64))  # Exp(1)
    return (weights / weights.sum(dim=1, keepdim=True)).to(device=device, dtype=dtype)


def linformer_flops(case: Any, rows: int) -> float:
    """Forward FLOPs: projecting K and V (2·k·N·D each) and attention over k rows (2·N_q·k·D twice)."""
    n_q = getattr(case, "q_len", None) or case.seq_len
    return float(case.batch * case.heads * (4 * rows * case.seq_len * case.head_dim + 4 * n_q * rows * case.head_dim))


@register("linformer-256", family="linformer", exact=False, time="O(N k d)", memory="O(N k)", params={"rows": 256},
          masks=("none",), randomized=True, flops=lambda case: linformer_flops(case, 256))  # fmt: skip
@register("linformer-128", family="linformer", exact=False, time="O(N k d)", memory="O(N k)", params={"rows": 128},
          masks=("none",), randomized=True, flops=lambda case: linformer_flops(case, 128))  # fmt: skip
def linformer(q, k, v, *, mask: Mask = NONE, scale: float | None = None, seed: int = 0, rows: int = 256):
    """Linformer attention: K and V projected along N to ``rows`` rows by one seeded averaging projection.

    q, k: (B, H, N_q|N_kv, D); v: (B, H, N_kv, D_v) -> (B, H, N_q, D_v).
    Time O(N·k·(D + D_v)); memory O(N·k) (the projection, and the N_q x k scores).
    """
    e = projection(rows, k.shape[2], seed, str(k.device), k.dtype)  # (k, N_kv), shared by K and V
    k_rows, v_rows = e @ k, e @ v  # (B, H, k, D), (B, H, k, D_v)
    return torch.softmax(q @ k_rows.transpose(-1, -2) * softmax_scale(q, scale), dim=-1) @ v_rows  # (B, H, N_q, D_v)
