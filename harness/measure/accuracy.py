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
    totals = _Totals()
    totals.add(out, ref)
    return totals.result()


class _Totals:
    """Running sums for the error metrics, so the reference can be built a chunk of rows at a time."""

    def __init__(self) -> None:
        self.diff_sq = self.ref_sq = self.out_sq = self.dot = self.max_abs = 0.0

    def add(self, out: torch.Tensor, ref: torch.Tensor) -> None:
        out, ref = out.detach().to(torch.float64), ref.detach().to(torch.float64)
        diff = out - ref
        self.diff_sq += diff.square().sum().item()
        self.ref_sq += ref.square().sum().item()
        self.out_sq += out.square().sum().item()
        self.dot += (out * ref).sum().item()
        self.max_abs = max(self.max_abs, diff.abs().max().item() if diff.numel() else 0.0)

    def result(self) -> tuple[float, float, float]:
        rel = (self.diff_sq / self.ref_sq) ** 0.5 if self.ref_sq > 0 else self.diff_sq**0.5
        norms = (self.out_sq * self.ref_sq) ** 0.5
        return rel, self.max_abs, self.dot / norms if norms > 0 else float("nan")


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
) -> Accuracy:
    """Error of ``out`` (B, H, N_q, D_v) against float64 attention of q, k, v (under ``mask`` and ``score_mod``) on the same rows.

    The reference is built ``chunk_bytes`` of float64 scores at a time, so its
    memory stays bounded at any N.
    """
    rows = sample_rows(q.shape[2], max_rows, seed)
    rows = torch.arange(q.shape[2]) if rows is None else rows
    B, H, _, _ = q.shape
    per_chunk = max(1, chunk_bytes // (B * H * k.shape[2] * 8))  # rows of float64 scores per chunk
    totals, entropy, seeing = _Totals(), 0.0, 0
    with torch.no_grad():
        for start in range(0, len(rows), per_chunk):
            part = rows[start : start + per_chunk]
            probs = reference_probabilities(q, k, mask=mask, score_mod=score_mod, scale=scale, rows=part)  # (B, H, r, N_kv)
            totals.add(out[:, :, part.to(out.device)], weighted_values(probs, v))  # against (B, H, r, D_v)
            entropy += torch.special.entr(probs).sum().item()  # -p log p, 0 where p = 0
            seeing += int((probs.sum(-1) > 0).sum())
    rel, max_abs, cosine = totals.result()
    return Accuracy(rel, max_abs, cosine, len(rows), entropy / seeing if seeing else float("nan"))
