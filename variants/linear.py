"""Linear attention (Katharopoulos et al. 2020, "Transformers are RNNs").

Softmax's exp(q·k) is replaced by a feature-map kernel phi(q)·phi(k), so the
sum over keys factors out of the sum over queries:

    out_i = phi(q_i)^T S / phi(q_i)^T z,   S = sum_j phi(k_j) v_j^T,  z = sum_j phi(k_j)

Time O(N·m·D_v) and memory O(N·(m + D_v)) for m features. The causal form needs
prefix sums of phi(k_j) v_j^T; `linear_attention` computes them per chunk of C
positions, so it holds (N/C) states of m x D_v and never the N·m·D_v of a
per-position cumulative sum. `performer.py` reuses this core with its own
feature map.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .masks import CAUSAL, NONE, Mask
from .registry import Unsupported, register


def linear_attention(phi_q, phi_k, v, *, causal: bool, chunk: int) -> torch.Tensor:
    """Kernelized attention given features: phi_q (B, H, N_q, m), phi_k (B, H, N_kv, m), v (B, H, N_kv, E).

    Returns (B, H, N_q, E). Features must be positive so the denominator is.
    Causal (query i sees keys j <= i): chunked prefix sums, time O(N·C·(m + E) +
    N·m·E), memory O(N·C + (N/C)·m·E).
    """
    if not causal:
        state = torch.einsum("bhjm,bhje->bhme", phi_k, v)  # (B, H, m, E)
        norm = phi_k.sum(dim=2)  # (B, H, m)
        num = torch.einsum("bhim,bhme->bhie", phi_q, state)  # (B, H, N_q, E)
        den = torch.einsum("bhim,bhm->bhi", phi_q, norm)  # (B, H, N_q)
        return num / den.unsqueeze(-1)

    B, H, N, m = phi_q.shape
    L = -(-max(N, phi_k.shape[2]) // chunk) * chunk  # common length, a multiple of the chunk
    # Padding after the feature map: zero keys add nothing to any sum; padded
    # queries get features of one, so their (discarded) rows never divide 0/0,
    # which would send NaN through the backward pass.
    phi_q = F.pad(phi_q, (0, 0, 0, L - N), value=1.0).reshape(B, H, L // chunk, chunk, m)  # (B, H, c, C, m)
    phi_k = F.pad(phi_k, (0, 0, 0, L - phi_k.shape[2])).reshape(B, H, L // chunk, chunk, m)  # (B, H, c, C, m)
    v = F.pad(v, (0, 0, 0, L - v.shape[2])).reshape(B, H, L // chunk, chunk, -1)  # (B, H, c, C, E)

    chunk_state = torch.einsum("bhcjm,bhcje->bhcme", phi_k, v)  # (B, H, c, m, E)
    prior_state = chunk_state.cumsum(dim=2) - chunk_state  # (B, H, c, m, E): chunks strictly before
    chunk_norm = phi_k.sum(dim=3)  # (B, H, c, m)
    prior_norm = chunk_norm.cumsum(dim=2) - chunk_norm  # (B, H, c, m)

    within = torch.einsum("bhcim,bhcjm->bhcij", phi_q, phi_k)  # (B, H, c, C, C)
    within = within.tril()  # key j <= query i inside the chunk
    num = torch.einsum("bhcim,bhcme->bhcie", phi_q, prior_state) + within @ v  # (B, H, c, C, E)
    den = torch.einsum("bhcim,bhcm->bhci", phi_q, prior_norm) + within.sum(-1)  # (B, H, c, C)
    out = num / den.unsqueeze(-1)  # (B, H, c, C, E)
    return out.reshape(B, H, L, -1)[:, :, :N]  # (B, H, N_q, E)


def kernel_flops(case: Any, features: int) -> float:
    """Forward FLOPs of kernelized attention with m features: the state phi(K)^T V
    and the readout phi(Q)·S, 2·N·m·D each per head (causal does the same work)."""
    return 4.0 * case.batch * case.heads * case.seq_len * features * case.head_dim


@register(
    "linear-elu",
    family="linear",
    exact=False,
    time="O(N d^2)",
    memory="O(N)",
    params={"chunk": 64},
    flops=lambda case: kernel_flops(case, case.head_dim),
)
def linear_elu(q, k, v, *, mask: Mask = NONE, scale: float | None = None, chunk: int = 64) -> torch.Tensor:
    """Linear attention with phi(x) = elu(x) + 1 (Katharopoulos et al. 2020).

    q, k: (B, H, N_q|N_kv, D); v: (B, H, N_kv, D_v) -> (B, H, N_q, D_v).
    Time O(N·D·D_v); memory O(N·D). The feature map has no temperature, so an
    explicit ``scale`` is refused rather than silently ignored.
    """
    if scale is not None:
        raise Unsupported("linear-elu has no softmax temperature; scale must be None")
    return linear_attention(F.elu(q) + 1, F.elu(k) + 1, v, causal=mask == CAUSAL, chunk=chunk)
