"""How an approximation is wrong, not only how much: its implied attention matrix against exact attention's.

The implied matrix is extracted black-box, as the attention-map figure does (`harness.measure.attention_map`):
with V = the identity's columns j0..j1, a variant returns the weights its queries give keys j0..j1. Over the
case's own q and k, at N_kv up to `MAX_KEYS` (N_kv / `BLOCK` extra forward calls), on `ROWS` seeded query
rows, three numbers against the float64 weights P (`harness.measure.reference.reference_probabilities`):

- ``tv``: the mean total-variation distance ½·Σ_j |A_ij - P_ij|, defined for an implied row A_i that is
  negative or does not sum to one (linear attention's are not a distribution);
- ``recall``: the share of each row's exact top-8 keys among its implied top-8 (rows that see at least 8 keys);
- ``entropy``: the mean entropy (nats) of the implied rows read as distributions, |A_i| / Σ_j |A_ij|.

A sweep measures them for approximations (`harness.measure.measure_case`); an exact variant gets them too as a
check in the tests (tv ≈ 0, recall 1), not in sweeps, where V's new width would recompile a compiled kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from variants import Unsupported, VariantSpec
from variants.masks import Mask
from variants.score_mods import ScoreMod

from .accuracy import sample_rows
from .reference import reference_probabilities

MAX_KEYS = 1024  # beyond, N_kv / BLOCK more calls of a long case cost more than the case itself
BLOCK = 256  # identity columns per extracting call
ROWS = 64  # query rows compared
TOP = 8


@dataclass(frozen=True)
class Fidelity:
    tv: float
    recall: float
    entropy: float


def implied_rows(spec: VariantSpec, q, k, rows: torch.Tensor, *, mask: Mask, score_mod: ScoreMod, seed: int) -> torch.Tensor:
    """The variant's implied weights of query ``rows``: (B, H, R, N_kv) float64, from N_kv / BLOCK calls."""
    B, H_kv, n_kv, _ = k.shape
    blocks = []
    with torch.inference_mode():
        for start in range(0, n_kv, BLOCK):
            width = min(BLOCK, n_kv - start)
            identity = torch.zeros(n_kv, width, dtype=q.dtype, device=q.device)
            identity[start : start + width] = torch.eye(width, dtype=q.dtype, device=q.device)
            v = identity.expand(B, H_kv, n_kv, width).contiguous()
            out = spec(q, k, v, mask=mask, score_mod=score_mod, seed=seed)  # (B, H, N_q, width)
            blocks.append(out[:, :, rows.to(out.device)].double().cpu())
    return torch.cat(blocks, dim=-1)


def measure_fidelity(spec: VariantSpec, q, k, *, mask: Mask, score_mod: ScoreMod, seed: int = 0,
                     reference: Mask | None = None, top: int = TOP) -> Fidelity | None:  # fmt: skip
    """The three numbers above, or None past `MAX_KEYS` or when the variant cannot take V = identity columns.
    The variant is called under ``mask``; exact attention is under ``reference`` (default: the same mask)."""
    if k.shape[2] > MAX_KEYS:
        return None
    rows = sample_rows(q.shape[2], ROWS, seed)
    rows = torch.arange(q.shape[2]) if rows is None else rows
    try:
        implied = implied_rows(spec, q, k, rows, mask=mask, score_mod=score_mod, seed=seed)
    except Unsupported:  # a value head dim it does not take (a flash kernel's D_v = D)
        return None
    against = mask if reference is None else reference
    exact = reference_probabilities(q, k, mask=against, score_mod=score_mod, rows=rows).cpu()  # (B, H, R, N_kv)
    tv = 0.5 * (implied - exact).abs().sum(-1).mean().item()
    magnitude = implied.abs()
    spread = magnitude / magnitude.sum(-1, keepdim=True).clamp(min=1e-300)
    entropy = torch.special.entr(spread).sum(-1).mean().item()
    seeing = (exact > 0).sum(-1) >= top  # (B, H, R)
    if not bool(seeing.any()):
        return Fidelity(tv, float("nan"), entropy)
    top_exact, top_implied = exact.topk(top, dim=-1).indices, implied.topk(top, dim=-1).indices
    hits = (top_exact[..., :, None] == top_implied[..., None, :]).any(-1).sum(-1).double() / top  # (B, H, R)
    return Fidelity(tv, hits[seeing].mean().item(), entropy)
