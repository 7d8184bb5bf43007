"""Score modifications as a small vocabulary of spec strings: what a model does to a score before softmax.

With s = q·k·scale the scaled score of query i and key j, o = N_kv - N_q (the
offset that aligns the last query with the last key), h the query head (0-based)
and H the heads:

    none          s
    alibi         s - m_h·|i + o - j|        slopes m_h (Press et al. 2022; BLOOM's build_alibi_tensor)
    softcap:C     C·tanh(s / C)              C > 0 (Gemma 2: after scaling, before masking)
    rel-bias:R    s + b[h, clip(j - i - o, -R, R)]   a seeded (H, 2R + 1) table standing for a learned one

A case has one mask and one score modification; the mask still decides which
keys a query sees. ``alibi`` and ``rel-bias`` add a bias that depends only on
(h, i, j): `ScoreMod.bias` gives it as a tensor, for a dense kernel (naive, the
reference, SDPA's float ``attn_mask``) or one tile of a blocked one.
``softcap`` is not a bias: `ScoreMod.apply` applies every kind to a block of scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

KINDS = ("none", "alibi", "softcap", "rel-bias")
SIZED = {"softcap": "C", "rel-bias": "R"}  # kinds that take a size, and its letter
REL_BIAS_SEED = 0  # the table is the same for every case of a given H and R: a stand-in for learned weights


class ScoreModError(ValueError):
    """A score-modification spec that names none; the message is one line saying why."""


def alibi_slopes(heads: int) -> torch.Tensor:
    """ALiBi's per-head slopes, float64 (heads,): 2^(-8h/H) for h = 1..H when H is a power of two; otherwise
    those of the largest power of two P below H, then every other slope of 2P (2^(-4h/P), h = 1, 3, 5, ...)."""
    p = 2 ** math.floor(math.log2(heads))
    slopes = [2.0 ** (-8.0 * h / p) for h in range(1, p + 1)]
    slopes += [2.0 ** (-4.0 * h / p) for h in range(1, 2 * (heads - p), 2)]
    return torch.tensor(slopes, dtype=torch.float64)


def rel_bias_table(heads: int, radius: int) -> torch.Tensor:
    """The seeded relative-position bias table, float64 (heads, 2·radius + 1), standard normal entries."""
    gen = torch.Generator().manual_seed(REL_BIAS_SEED)
    return torch.randn(heads, 2 * radius + 1, generator=gen, dtype=torch.float64)


@dataclass(frozen=True)
class ScoreMod:
    """One score modification: a kind from `KINDS` and, for softcap and rel-bias, its size."""

    kind: str = "none"
    size: float | None = None

    @property
    def spec(self) -> str:
        """The string form, e.g. "softcap:50" (the results table's ``score_mod`` column)."""
        return self.kind if self.size is None else f"{self.kind}:{repr(self.size).removesuffix('.0')}"  # reads back exact

    def __str__(self) -> str:
        return self.spec

    @property
    def is_bias(self) -> bool:
        """Whether the modification adds a bias that depends only on (head, query, key)."""
        return self.kind in ("alibi", "rel-bias")

    def bias(self, heads: int, rows: torch.Tensor, n_q: int, n_kv: int, keys: torch.Tensor | None = None,
             dtype: torch.dtype = torch.float32, head_of_row: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """The additive bias (heads, R, K) for query positions ``rows`` (R,) and key positions ``keys`` (K,; all
        n_kv when None), on the rows' device, in ``dtype``. Only for `is_bias` kinds.

        With ``head_of_row`` (A, R), row r of slice a is head ``head_of_row[a, r]``'s instead: (A, R, K).
        """
        keys = torch.arange(n_kv, device=rows.device) if keys is None else keys.to(rows.device)
        distance = keys[None, :] - (rows[:, None] + (n_kv - n_q))  # (R, K): j - (i + o)
        head = torch.arange(heads, device=rows.device)[:, None] if head_of_row is None else head_of_row  # (A, 1|R)
        if self.kind == "alibi":  # built in ``dtype``: the (A, R, K) result is the only tensor of its size
            slopes = alibi_slopes(heads).to(device=rows.device, dtype=dtype)[head]  # (A, 1|R)
            return distance.abs().to(dtype)[None] * -slopes[..., None]  # (A, R, K)
        if self.kind == "rel-bias":
            radius = int(self.size)
            table = rel_bias_table(heads, radius).to(device=rows.device, dtype=dtype)  # (H, 2R + 1)
            return table[head[..., None], (distance.clamp(-radius, radius) + radius)[None]]  # (A, R, K)
        raise ScoreModError(f"{self.spec} is not a bias")

    def apply(self, scores: torch.Tensor, rows: torch.Tensor, n_q: int, n_kv: int,
              keys: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """``scores`` (..., H, R, K) of query positions ``rows`` against keys ``keys`` (all when None), modified
        (a new tensor; autograd flows through it)."""
        if self.kind == "none":
            return scores
        if self.kind == "softcap":
            return self.size * torch.tanh(scores / self.size)
        return scores + self.bias(scores.shape[-3], rows, n_q, n_kv, keys, scores.dtype)

    def folded_bias(self, heads: int, heads_kv: int, folded: torch.Tensor, n_q: int, n_kv: int,
                    keys: torch.Tensor | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:  # fmt: skip
        """The bias (H_kv, r, K) of folded rows ``folded`` (r,): in `variants.common.group_queries` order, row f is
        query position f // G of query head g = f % G of its key head's group of G = heads / H_kv."""
        groups = heads // heads_kv
        head_of_row = torch.arange(heads_kv, device=folded.device)[:, None] * groups + folded % groups  # (H_kv, r)
        return self.bias(heads, folded // groups, n_q, n_kv, keys, dtype, head_of_row)  # (H_kv, r, K)

    def apply_folded(self, scores: torch.Tensor, folded: torch.Tensor, n_q: int, n_kv: int, heads: int,
                     keys: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """`apply` on scores (..., H_kv, r, K) of folded rows ``folded`` (r,) (see `folded_bias`) against keys
        ``keys`` (all when None): in place (the result is ``scores``) unless autograd needs what it overwrites."""
        if self.kind == "softcap":
            if scores.requires_grad:  # tanh's backward reads its own output: no in-place scaling after it
                return self.size * torch.tanh(scores / self.size)
            # C·tanh(s/C) = 2C·sigmoid(2s/C) - C: torch's CPU sigmoid is ~4x faster than its tanh (measured on
            # 4M-score tiles), within 3e-7 of the score's size -- far inside fp32 attention's tolerance.
            return scores.mul_(2.0 / self.size).sigmoid_().mul_(2.0 * self.size).sub_(self.size)
        if self.kind == "alibi":  # -slope·|distance| added in one pass, never an (H_kv, r, K) bias tensor
            heads_kv, groups = scores.shape[-3], heads // scores.shape[-3]
            keys = torch.arange(n_kv, device=folded.device) if keys is None else keys
            distance = (keys[None, :] - (folded[:, None] // groups + (n_kv - n_q))).abs_().to(scores.dtype)  # (r, K)
            head_of_row = torch.arange(heads_kv, device=folded.device)[:, None] * groups + folded % groups
            slopes = alibi_slopes(heads).to(device=folded.device, dtype=scores.dtype)[head_of_row]  # (H_kv, r)
            add = torch.addcmul if scores.requires_grad else torch.Tensor.addcmul_
            return add(scores, slopes[..., None], distance[None], value=-1.0)
        if self.is_bias:
            return scores.add_(self.folded_bias(heads, scores.shape[-3], folded, n_q, n_kv, keys, scores.dtype))
        return scores

    def score_mod_fn(self, n_q: int, n_kv: int, heads: int, device: torch.device | str | None = None):
        """FlexAttention's ``score_mod(score, b, h, q_idx, kv_idx)`` for these lengths and heads (None for "none").

        Every number it uses -- the cap, the slopes, the table, the radius, the offset -- is captured as a tensor
        on ``device``: torch.compile (dynamic) lifts a tensor into a graph input, where a captured Python number
        becomes a symbol Inductor's FlexAttention lowering cannot take. One compiled kernel serves every N.
        """
        if self.kind == "none":
            return None
        offset = torch.tensor(n_kv - n_q, device=device)
        size = torch.tensor(self.size or 1.0, device=device)  # the cap C, or the radius R
        radius = size.long()
        slopes = alibi_slopes(heads).to(device=device, dtype=torch.float32)
        table = rel_bias_table(heads, int(self.size or 1)).to(device=device, dtype=torch.float32)

        def softcap(score, b, h, q_idx, kv_idx):
            return size * torch.tanh(score / size)

        def alibi(score, b, h, q_idx, kv_idx):
            return score - slopes[h] * (q_idx + offset - kv_idx).abs()

        def rel_bias(score, b, h, q_idx, kv_idx):
            return score + table[h, torch.minimum(torch.maximum(kv_idx - q_idx - offset, -radius), radius) + radius]

        return {"softcap": softcap, "alibi": alibi, "rel-bias": rel_bias}[self.kind]


NO_MOD = ScoreMod("none")


def parse_score_mod(spec: str | ScoreMod | None = None) -> ScoreMod:
    """The one parser: a `ScoreMod` from a spec ("none", "alibi", "softcap:C", "rel-bias:R"), a `ScoreMod` (as it
    is), or None ("none"). `ScoreModError` for anything else: C is a finite number above 0, R an integer >= 1."""
    if isinstance(spec, ScoreMod):
        return spec
    if spec is None or spec == "none":
        return NO_MOD
    if not isinstance(spec, str):
        raise ScoreModError(f"a score modification is a spec string, got {spec!r}")
    kind, _, size = spec.strip().partition(":")
    if kind not in KINDS:
        raise ScoreModError(f"unknown score modification {spec!r}; known: none, alibi, softcap:C, rel-bias:R")
    if kind == "softcap":
        try:
            cap = float(size)
        except ValueError:
            cap = math.nan
        if not (math.isfinite(cap) and cap > 0):
            raise ScoreModError(f"score modification {spec!r}: softcap:C takes a finite number C above 0")
        return ScoreMod(kind, cap)
    if kind == "rel-bias":
        if not size.isdigit() or not 1 <= int(size) <= 2**20:
            raise ScoreModError(f"score modification {spec!r}: rel-bias:R takes an integer R from 1 to {2**20}")
        return ScoreMod(kind, float(int(size)))
    if size:
        raise ScoreModError(f"score modification {spec!r}: {kind} takes no size")
    return ScoreMod(kind)
