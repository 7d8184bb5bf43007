"""Error of a variant's output against exact float64 attention on the same inputs.

Up to ``max_rows`` query rows the comparison is complete; beyond, a seeded
sample of ``max_rows`` rows (each exact row costs O(N·D), so this keeps
accuracy available at every N). Causal masking is respected row by row.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from variants.masks import Mask
from variants.score_mods import ScoreMod

from .reference import reference_probabilities, weighted_values

DEFAULT_MAX_ROWS = 1024
CHUNK_BYTES = 256 * 2**20  # float64 scores of the reference built at a time


@dataclass(frozen=True)
class Accuracy:
    """``rel_err`` = ||out - ref||_F / ||ref||_F over the compared rows; ``rows`` how many; ``entropy`` the mean
    entropy (nats) of the exact attention rows (those that see a key): near log N for uniform attention, near 0
    for a one-hot one, so inputs of any family sit on one axis."""

    rel_err: float
    max_abs_err: float
    cosine: float
    rows: int
    entropy: float = float("nan")


def sample_rows(n: int, max_rows: int, seed: int) -> torch.Tensor | None:
    """Sorted indices of ``max_rows`` distinct rows out of ``n`` (seeded), or None for all rows."""
    if n <= max_rows:
        return None
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=gen)[:max_rows].sort().values


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """||out - ref||_F / ||ref||_F, in float64."""
    return compare(out, ref)[0]


def compare(out: torch.Tensor, ref: torch.Tensor) -> tuple[float, float, float]:
    """(relative Frobenius error, max abs error, cosine similarity) of ``out`` against ``ref``, in float64."""
    out, ref = out.detach().to(torch.float64), ref.detach().to(torch.float64)
    diff = out - ref
    diff_sq, ref_sq, out_sq = diff.square().sum().item(), ref.square().sum().item(), out.square().sum().item()
    rel = (diff_sq / ref_sq) ** 0.5 if ref_sq > 0 else diff_sq**0.5
    norms = (out_sq * ref_sq) ** 0.5
    max_abs = diff.abs().max().item() if diff.numel() else 0.0
    return rel, max_abs, (out * ref).sum().item() / norms if norms > 0 else float("nan")


@dataclass(frozen=True)
class ExactRows:
    """Exact float64 attention on a case's compared query rows: ``rows`` (R,) their indices, ``values``
    (B, H, R, D_v) float64 their outputs, ``entropy`` the summed entropy (nats) of the rows that see a key
    and ``seeing`` how many do. What `measure_accuracy` compares against, and what the variants of one input
    set share (`harness.measure.reference_cache`)."""

    rows: torch.Tensor
    values: torch.Tensor
    entropy: float
    seeing: int


def exact_rows(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    mask: Mask | str | None = None,
    score_mod: ScoreMod | str | None = None,
    scale: float | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    seed: int = 0,
    chunk_bytes: int = CHUNK_BYTES,
    kv_lens: torch.Tensor | None = None,
) -> ExactRows:
    """Float64 attention of q (B, H, N_q, D), k, v (B, H_kv, N_kv, D|D_v) under ``mask`` and ``score_mod`` on up
    to ``max_rows`` query rows (`sample_rows`). Time O(B·H·R·N_kv·D); the float64 scores are built
    ``chunk_bytes`` at a time, so memory stays O(chunk_bytes + B·H·R·D_v) at any N. ``kv_lens``: caches of
    unequal length (`variants.kv_lens`)."""
    rows = sample_rows(q.shape[2], max_rows, seed)
    rows = torch.arange(q.shape[2]) if rows is None else rows
    B, H, _, _ = q.shape
    per_chunk = max(1, chunk_bytes // (B * H * k.shape[2] * 8))  # rows of float64 scores per chunk
    parts, entropy, seeing = [], 0.0, 0
    with torch.no_grad():
        for start in range(0, len(rows), per_chunk):
            part = rows[start : start + per_chunk]
            probs = reference_probabilities(q, k, mask=mask, score_mod=score_mod, scale=scale, rows=part,
                                            kv_lens=kv_lens)  # (B, H, r, N_kv)  # fmt: skip
            parts.append(weighted_values(probs, v))  # (B, H, r, D_v)
            entropy += torch.special.entr(probs).sum().item()  # -p log p, 0 where p = 0
            seeing += int((probs.sum(-1) > 0).sum())
    return ExactRows(rows, torch.cat(parts, dim=2), entropy, seeing)


def measure_accuracy(
    out: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    mask: Mask | str | None = None,
    score_mod: ScoreMod | str | None = None,
    scale: float | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    seed: int = 0,
    chunk_bytes: int = CHUNK_BYTES,
    exact: ExactRows | None = None,
    kv_lens: torch.Tensor | None = None,
) -> Accuracy:
    """Error of ``out`` (B, H, N_q, D_v) against float64 attention of q, k, v (under ``mask`` and ``score_mod``) on
    the same rows: ``exact`` when given (computed once for these inputs), else `exact_rows` of them."""
    if exact is None:
        exact = exact_rows(q, k, v, mask=mask, score_mod=score_mod, scale=scale, max_rows=max_rows, seed=seed,
                           chunk_bytes=chunk_bytes, kv_lens=kv_lens)  # fmt: skip
    rel, max_abs, cosine = compare(out[:, :, exact.rows.to(out.device)], exact.values.to(out.device))
    entropy = exact.entropy / exact.seeing if exact.seeing else float("nan")
    return Accuracy(rel, max_abs, cosine, len(exact.rows), entropy)
