"""KV caches of unequal length in one decode batch: a server's batch, where each sequence has its own history.

A spec names the lengths: ``equal`` (every sequence holds the case's N keys), ``drawn`` (B lengths drawn from
the seed: log-normal weights, sigma `variants.masks.LOGNORMAL_SIGMA` = 1 as packed documents have, scaled so
the longest is N and the shortest at least the queries) or ``a+b+...`` (B lengths given, the longest N). The
cache tensors keep N slots a sequence (a padded batch); sequence b's keys are its first L_b.

Sequence b is read as decoding at its own length: its queries are the last of its L_b keys, so every mask
is read with N_kv = L_b (causal-br sees keys < L_b, sliding:W the W before L_b). `bounds` gives each
sequence's key interval per query, and `dense` the (B, 1, R, N) boolean matrix the float64 reference and
the dense-mask variants take. A variant that reads such a batch declares ``ragged=True`` and is called with
``kv_lens=``, an int64 (B,) tensor on the inputs' device.
"""

from __future__ import annotations

import torch

from .masks import LOGNORMAL_SIGMA, PACKED, Mask

EQUAL, DRAWN = "equal", "drawn"
POSITION_FREE = ("none", "softcap")  # score modifications that do not read a key's position, so not N_kv


class KVLensError(ValueError):
    """A lengths spec that names none, or lengths that cannot fit the case; the message is one line."""


def parse_kv_lens(spec: str) -> str:
    """The canonical spec: "equal", "drawn" or "a+b+..." (positive integers); `KVLensError` otherwise."""
    if not isinstance(spec, str):
        raise KVLensError(f"KV lengths are a spec string, got {spec!r}")
    spec = spec.strip()
    if spec in (EQUAL, DRAWN):
        return spec
    parts = spec.split("+")
    if not all(part.strip().isdigit() for part in parts):
        raise KVLensError(f"unknown KV lengths {spec!r}; known: equal, drawn, a+b+... (one length per sequence)")
    if any(int(part) < 1 for part in parts):
        raise KVLensError(f"KV lengths {spec!r}: every sequence holds at least one key")
    return "+".join(str(int(part)) for part in parts)


def cache_lengths(spec: str, batch: int, n: int, n_q: int = 1, seed: int = 0) -> tuple[int, ...] | None:
    """Each sequence's cache length for ``spec`` over ``batch`` sequences of up to ``n`` keys and ``n_q`` queries;
    None for "equal". `KVLensError` when given lengths do not fit (B of them, each n_q..n, the longest n)."""
    spec = parse_kv_lens(spec)
    if spec == EQUAL:
        return None
    if spec == DRAWN:
        gen = torch.Generator().manual_seed(seed)
        weights = (torch.randn(batch, generator=gen, dtype=torch.float64) * LOGNORMAL_SIGMA).exp()
        lengths = (weights / weights.max() * n).round().long().clamp(min=n_q, max=n)
        return tuple(int(x) for x in lengths)
    lengths = tuple(int(x) for x in spec.split("+"))
    if len(lengths) != batch:
        raise KVLensError(f"KV lengths {spec}: {len(lengths)} lengths for a batch of {batch}")
    if max(lengths) != n or min(lengths) < n_q:
        raise KVLensError(f"KV lengths {spec}: each from {n_q} (the queries) to N = {n}, the longest N")
    return lengths


def refusal(mask: Mask, score_mod_kind: str) -> str | None:
    """Why a batch of unequal caches cannot take this mask and score modification, or None: no packed documents
    (their lengths fix N), no score modification that reads a key's position (it would need each sequence's N_kv)."""
    if mask.kind in PACKED:
        return f"unequal KV lengths take no packed-document mask ({mask.spec}): its document lengths fix N"
    if score_mod_kind not in POSITION_FREE:
        return f"unequal KV lengths take score modifications {', '.join(POSITION_FREE)}, not {score_mod_kind}"
    return None


def bounds(mask: Mask, rows: torch.Tensor, n_q: int, kv_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(lo, hi), each (B, 1, R): sequence b's query ``rows`` see its keys lo <= j < hi (``mask`` at N_kv = L_b)."""
    lo, hi = mask.bounds(rows, n_q, kv_lens.to(rows.device)[:, None])  # (B, R) or, where not per sequence, (R,)
    shape = (len(kv_lens), len(rows))
    return lo.broadcast_to(shape)[:, None], hi.broadcast_to(shape)[:, None]


def dense(mask: Mask, n_q: int, n_kv: int, kv_lens: torch.Tensor, *, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Boolean (B, 1, R, n_kv), True where sequence b's query (all n_q, or ``rows``) sees key j. O(B·R·n_kv)."""
    rows = torch.arange(n_q, device=kv_lens.device) if rows is None else rows.to(kv_lens.device)
    lo, hi = bounds(mask, rows, n_q, kv_lens)
    keys = torch.arange(n_kv, device=kv_lens.device)
    return (keys >= lo[..., None]) & (keys < hi[..., None])


def visible_pairs(mask: Mask, n_q: int, lengths: tuple[int, ...]) -> int:
    """Query-key pairs visible over the batch: each sequence's at its own length (the work model)."""
    return sum(mask.visible_pairs(n_q, n) for n in lengths)


def mask_mod(mask: Mask, n_q: int, kv_lens: torch.Tensor):
    """FlexAttention's ``mask_mod(b, h, q_idx, kv_idx)``: sequence b's mask at its own length, ``kv_lens`` (B,)
    captured as a tensor on the inputs' device (indexed by ``b``, as a packed mask's tables are by ``q_idx``)."""
    queries = torch.tensor(n_q, device=kv_lens.device)

    def ragged_mod(b, h, q_idx, kv_idx):
        lo, hi = mask.bounds(q_idx, queries, kv_lens[b])
        return (kv_idx >= lo) & (kv_idx < hi)

    return ragged_mod
