"""Attention masks as a small vocabulary of spec strings, each a visible key interval per query.

With query i in [0, N_q), key j in [0, N_kv) and o = N_kv - N_q (the offset
that aligns the last query with the last key), query i sees key j when:

    none          always
    causal        j <= i                     (top-left, as ``is_causal=True`` in SDPA)
    causal-br     j <= i + o                 (bottom-right, FlashAttention >= 2.1, decoding)
    sliding:W     i + o - W < j <= i + o     (the W most recent keys)
    document:K    K equal packed documents over the keys, causal within each:
                  floor((i + o)·K / N_kv) = floor(j·K / N_kv) and j <= i + o
    prefix:P      j < P or j <= i + o        (prefix-LM: a bidirectional prefix)
    docs:K        packed documents of unequal length over the keys, causal within each:
                  doc(j) = doc(i + o) and j <= i + o; K lengths drawn by `drawn_lengths`, or
    docs:a+b+...  the lengths given (summing to N_kv)
    docs-bi:...   the same documents, every key of the query's own document visible (encoders)

Every kind gives each query one contiguous interval of keys, [lo(i), hi(i)),
with lo and hi non-decreasing in i. So a mask is two integer formulas: they
give the dense boolean matrix (naive, the reference, tests), the visible pair
count (the work model), the key range of a block of queries and the query
rows that meet a block of keys (blocked kernels skip what is hidden), and a
FlexAttention ``mask_mod``. A query that sees no key outputs zeros
(FlashAttention's convention), in every variant and in the reference.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

KINDS = ("none", "causal", "causal-br", "sliding", "document", "prefix", "docs", "docs-bi")
SIZED = {"sliding": "W", "document": "K", "prefix": "P", "docs": "K", "docs-bi": "K"}  # kinds that take a size, its letter
PACKED = ("docs", "docs-bi")  # documents of unequal length: the size is a count K or the lengths themselves
LOGNORMAL_SIGMA = 1.0  # spread of drawn document lengths (log-normal, sigma of the log); seeded, see drawn_lengths


class MaskError(ValueError):
    """A mask spec that names no mask; the message is one line saying why."""


@dataclass(frozen=True)
class Mask:
    """One mask: a kind from `KINDS` and, for sliding/document/prefix/docs, its size (packed documents: a
    count, or a tuple of lengths)."""

    kind: str = "none"
    size: int | tuple[int, ...] | None = None  # a tuple only for packed documents of given lengths

    @property
    def spec(self) -> str:
        """The string form, e.g. "sliding:256" or "docs:1+2+3" (the results table's ``mask`` column)."""
        if self.size is None:
            return self.kind
        return f"{self.kind}:{'+'.join(map(str, self.size)) if isinstance(self.size, tuple) else self.size}"

    def doc_lengths(self, n_kv: int) -> tuple[int, ...]:
        """The lengths of a packed mask's documents over ``n_kv`` keys (`MaskError` when they cannot fit)."""
        if isinstance(self.size, tuple):
            if min(self.size) < 1:
                raise MaskError(f"mask {self.spec}: every document needs at least one token")
            if sum(self.size) != n_kv:
                raise MaskError(f"mask {self.spec}: the document lengths sum to {sum(self.size)}, not to N = {n_kv}")
            return self.size
        return drawn_lengths(self.size, n_kv)

    def __str__(self) -> str:
        return self.spec

    def bounds(self, rows: torch.Tensor, n_q, n_kv) -> tuple[torch.Tensor, torch.Tensor]:
        """(lo, hi): query ``rows`` (int64 positions in [0, n_q)) see keys lo <= j < hi, clamped to [0, n_kv].

        Pure tensor arithmetic, so it also works on FlexAttention's index
        tensors; the lengths may be ints or 0-dim int64 tensors (`mask_mod`).
        """
        at = rows + (n_kv - n_q)  # each query's aligned key position, i + o
        zero = torch.zeros_like(rows)
        top = zero + n_kv

        def clip(x: torch.Tensor) -> torch.Tensor:  # into [0, n_kv]; torch.minimum, as n_kv may be a tensor
            return torch.minimum(x.clamp(min=0), top)

        upto = clip(at + 1)  # j <= i + o
        if self.kind == "none":
            return zero, top
        if self.kind == "causal":
            return zero, clip(rows + 1)
        if self.kind == "causal-br":
            return zero, upto
        if self.kind == "sliding":
            return clip(at - self.size + 1), upto
        if self.kind == "document":
            doc = torch.div(at * self.size, n_kv, rounding_mode="floor")  # the document holding key i + o
            start = torch.div(doc * n_kv + self.size - 1, self.size, rounding_mode="floor")  # its first key
            return clip(start), upto
        if self.kind == "prefix":
            return zero, clip(torch.maximum(at + 1, zero + self.size))
        if self.kind in PACKED:
            starts, ends = document_table(self.doc_lengths(int(n_kv)), rows.device)
            return _packed_bounds(self.kind, at, starts, ends, upto)
        raise MaskError(f"unknown mask kind {self.kind!r}")

    def dense(self, n_q: int, n_kv: int, *, rows: torch.Tensor | None = None, device=None) -> torch.Tensor:
        """Boolean (R, n_kv), True where a query (all n_q, or the positions ``rows``) sees a key."""
        rows = torch.arange(n_q, device=device) if rows is None else rows.to(device)
        lo, hi = self.bounds(rows, n_q, n_kv)
        keys = torch.arange(n_kv, device=rows.device)  # (n_kv,)
        return (keys >= lo[:, None]) & (keys < hi[:, None])  # (R, n_kv)

    def row_counts(self, n_q: int, n_kv: int) -> torch.Tensor:
        """Visible keys per query, (n_q,) int64."""
        lo, hi = self.bounds(torch.arange(n_q), n_q, n_kv)
        return (hi - lo).clamp(min=0)

    def visible_pairs(self, n_q: int, n_kv: int) -> int:
        """Query-key pairs the mask leaves visible: the work an exact kernel must do."""
        return int(self.row_counts(n_q, n_kv).sum())

    @property
    def hides_rows(self) -> bool:
        """Whether some shapes leave a query with no visible key (its output is then zeros)."""
        return self.kind in ("causal-br", "sliding", "document", "prefix", *PACKED)

    def mask_mod(self, n_q: int, n_kv: int, device: torch.device | str | None = None):
        """FlexAttention's ``mask_mod(b, h, q_idx, kv_idx) -> bool`` for these lengths.

        The lengths are captured as 0-dim tensors on ``device``, not ints:
        torch.compile lifts a captured tensor into a graph input, where it
        would bake an int into the graph, so one compiled kernel serves every N.
        """
        lengths = torch.tensor([n_q, n_kv], device=device)
        if self.kind in PACKED:  # each query's bounds, captured as tensors (the lengths fix N: a table per N)
            lo, hi = (bound.to(device) for bound in self.bounds(torch.arange(n_q), n_q, n_kv))

            def packed_mod(b, h, q_idx, kv_idx):  # indexed by q_idx alone: the form Inductor's CPU template builds
                return (kv_idx >= lo[q_idx]) & (kv_idx < hi[q_idx])

            return packed_mod

        def mask_mod(b, h, q_idx, kv_idx):
            lo, hi = self.bounds(q_idx, lengths[0], lengths[1])
            return (kv_idx >= lo) & (kv_idx < hi)

        return mask_mod


NONE = Mask("none")
CAUSAL = Mask("causal")


def drawn_lengths(count: int, n: int, seed: int = 0) -> tuple[int, ...]:
    """``count`` document lengths summing to ``n``, each at least 1: log-normal weights (sigma `LOGNORMAL_SIGMA`,
    the spread of real corpora's document lengths) from a generator seeded with ``seed``, so every variant, run
    and machine packs the same documents. The n - count tokens beyond one per document are shared out in
    proportion to the weights, rounded along their running sum."""
    if count > n:
        raise MaskError(f"docs:{count} needs N >= {count} keys (one per document); N = {n}")
    weights = torch.randn(count, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    weights = (weights * LOGNORMAL_SIGMA).exp()
    edges = torch.round(weights.cumsum(0) / weights.sum() * (n - count)).long()  # non-decreasing, ends at n - count
    extra = torch.diff(edges, prepend=torch.zeros(1, dtype=torch.long))
    return tuple(int(x) + 1 for x in extra)


@functools.lru_cache(maxsize=16)
def _table(lengths: tuple[int, ...], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    ends = torch.tensor(lengths, device=device).cumsum(0)  # (K,): each document's end
    per_key = torch.repeat_interleave(torch.arange(len(lengths), device=device), torch.tensor(lengths, device=device))
    return (ends - torch.tensor(lengths, device=device))[per_key], ends[per_key]  # (N,), (N,)


def document_table(lengths: tuple[int, ...], device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(starts, ends): int64 (N,) with the first key and one past the last key of key j's document."""
    return _table(tuple(lengths), str(torch.device(device or "cpu")))


def _packed_bounds(kind: str, at: torch.Tensor, starts: torch.Tensor, ends: torch.Tensor, upto: torch.Tensor):
    """Bounds of packed documents for aligned positions ``at`` (each below N_kv): a position before the first
    key (N_q > N_kv) sees nothing; any other sees its own document, up to itself for "docs"."""
    inside = at.clamp(min=0)
    lo = torch.where(at < 0, 0, starts[inside])
    hi = torch.where(at < 0, 0, upto if kind == "docs" else ends[inside])
    return lo, hi


KNOWN = "none, causal, causal-br, sliding:W, document:K, prefix:P, docs:K, docs:a+b+..., docs-bi:K, docs-bi:a+b+..."


def parse_mask(spec: str | Mask | None = None) -> Mask:
    """The one parser: a `Mask` from a spec (one of `KNOWN`), a `Mask` (returned as it is), or None ("none").
    `MaskError` for anything else."""
    if isinstance(spec, Mask):
        return spec
    if spec is None or spec == "none":
        return NONE
    if not isinstance(spec, str):
        raise MaskError(f"a mask is a spec string, got {spec!r}")
    kind, _, size = spec.strip().partition(":")
    if kind not in KINDS:
        raise MaskError(f"unknown mask {spec!r}; known: {KNOWN}")
    if kind in PACKED and "+" in size:
        parts = size.split("+")
        if not all(part.isdigit() and 1 <= int(part) <= 2**31 - 1 for part in parts):
            raise MaskError(f"mask {spec!r}: {kind}:a+b+... takes positive integer document lengths")
        return Mask(kind, tuple(int(part) for part in parts))
    if kind in SIZED:
        letter = SIZED[kind]
        if not size.isdigit() or int(size) < 1 or int(size) > 2**31 - 1:
            lengths = " or document lengths a+b+..." if kind in PACKED else ""
            raise MaskError(f"mask {spec!r}: {kind}:{letter} takes a positive integer {letter}{lengths}")
        return Mask(kind, int(size))
    if size:
        raise MaskError(f"mask {spec!r}: {kind} takes no size")
    return Mask(kind)


def tile_rows(lo: torch.Tensor, hi: torch.Tensor, k0: int, k1: int) -> tuple[int, int, int, int]:
    """For keys [k0, k1) and non-decreasing per-row bounds: (r0, r1, f0, f1).

    Rows [r0, r1) see at least one of the keys, or lie between rows that do (a
    row with an empty interval there is masked in full); rows [f0, f1), inside
    them, see every one of the keys, so their tile needs no mask.
    """
    r0 = int(torch.searchsorted(hi, k0, right=True))  # first row with hi > k0
    r1 = int(torch.searchsorted(lo, k1))  # first row with lo >= k1
    f0 = max(r0, int(torch.searchsorted(hi, k1)))  # first row with hi >= k1
    f1 = min(r1, int(torch.searchsorted(lo, k0, right=True)))  # first row with lo > k0
    return r0, r1, f0, max(f0, f1)
