"""Paged KV caches: K and V in a shared pool of fixed-size pages, read through a block table (vLLM's
PagedAttention, FlexAttention's paged attention), and the variant that gathers them first.

A pool holds every sequence's keys in pages of P tokens, (1, H_kv, pages·P, D), the pages in a seeded random
order (a server's pool after many requests came and went); ``block_table[b, i]`` is the physical page of
sequence b's i-th logical page. A variant that declares ``layouts=("paged", ...)`` is called as
``spec(q, k_pool, v_pool, pages=PageTable, mask=...)`` and reads logical keys through the table:

``gather``          indexes the pool into contiguous (B, H_kv, N, D) K and V, then runs SDPA: what a simple
                    server does, paying a copy of the whole cache per call.
``chunked-online``  walks the cache a key block at a time, gathering only that block's pages (a tile, as a
                    kernel loads a page into fast memory), never the whole cache (`variants.chunked`).
``flex``            FlexAttention reading the pool in place through a block mask whose key tiles are pages,
                    mapped to their physical pages by torch's PagedAttention (`variants.compiled`).

Sequences hold the case's N keys, or their own lengths (`variants.kv_lens`); a last page may be partly filled.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import torch

from .masks import Mask
from .registry import ALL_MASKS, Unsupported, register


@dataclass(frozen=True, eq=False)
class PageTable:
    """Where each sequence's keys live: ``block_table`` (B, pages) int64 physical page ids, ``page_size`` P
    tokens a page, ``n_kv`` keys per sequence (the last page holds n_kv - (pages - 1)·P of them)."""

    block_table: torch.Tensor
    page_size: int
    n_kv: int

    @functools.cached_property
    def positions(self) -> torch.Tensor:
        """(B, n_kv) int64: the pool position of each sequence's every logical key (computed once)."""
        logical = torch.arange(self.n_kv, device=self.block_table.device)
        return self.block_table[:, logical // self.page_size] * self.page_size + logical % self.page_size

    def token_index(self, start: int, stop: int) -> torch.Tensor:
        """(B, stop - start) int64: the pool position of each sequence's logical keys start..stop-1."""
        return self.positions[:, start:stop]

    @functools.cached_property
    def _flat_rows(self) -> dict[tuple[int, int], torch.Tensor]:
        return {}

    def flat_rows(self, heads: int, rows: int, per_page: bool = False) -> torch.Tensor:
        """(B, heads, n_kv) int64: each sequence's every key's row in a pool (1, heads, T, D) viewed as
        (heads·T, D), ``rows`` = T. Computed once per pool shape, as `positions` is: a server keeps its table.
        ``per_page``: (1, heads, 1), each head's first row in the pool viewed a page a row (heads·T/P, P·D),
        ``rows`` = T/P, to add to page ids."""
        key = (heads, rows, per_page)
        if key not in self._flat_rows:
            offsets = torch.arange(heads, device=self.block_table.device)[:, None] * rows  # each head's first row
            self._flat_rows[key] = offsets[None] if per_page else (self.positions[:, None, :] + offsets).contiguous()
        return self._flat_rows[key]

    def gather(self, pool: torch.Tensor, start: int = 0, stop: int | None = None, out: torch.Tensor | None = None):
        """The logical keys start..stop-1 of every sequence, (B, H_kv, stop - start, D), copied out of ``pool``
        (1, H_kv, pages·P, D), into ``out`` (a buffer of at least B·H_kv·(stop - start)·D elements, reused across
        calls) where given. O(B·H_kv·(stop - start)·D).

        One index per token: gathering whole pages instead (one index per page, then a trim) measured 1.05x
        faster at P = 16 and 0.5-0.86x at P = 256 on a 2-core CPU (8 sequences of 8K keys, H_kv = 8, D = 128).
        A reused buffer and the index computed once measured 1.31x faster than a fresh tensor and index per
        128-key block there (chunked-online at P = 16: 84.7 against 64.8 ms, 1.83x and 1.40x naive's contiguous);
        into a buffer, a run of whole pages is gathered a page a row, which needs no trim (1.12x faster again).
        """
        _, H_kv, T, D = pool.shape
        stop = self.n_kv if stop is None else stop
        P = self.page_size
        if out is not None and start % P == 0 and (stop - start) % P == 0:  # whole pages: one index per page
            pages = self.block_table[:, None, start // P : stop // P] + self.flat_rows(H_kv, T // P, per_page=True)
            target = out.view(-1)[: pages.numel() * P * D].view(pages.numel(), P * D)
            torch.index_select(pool.view(H_kv * T // P, P * D), 0, pages.flatten(), out=target)
            return target.view(pages.shape[0], H_kv, stop - start, D)
        index = self.flat_rows(H_kv, T)[:, :, start:stop]  # (B, H_kv, b)
        rows = pool.view(H_kv * T, D)
        if out is None:
            return rows.index_select(0, index.flatten()).view(*index.shape, D)  # one gather, contiguous
        target = out.view(-1)[: index.numel() * D].view(index.numel(), D)
        return torch.index_select(rows, 0, index.flatten(), out=target).view(*index.shape, D)

    @property
    def bytes(self) -> int:
        """The block table's size, read once per call."""
        return self.block_table.numel() * self.block_table.element_size()


def page(k: torch.Tensor, v: torch.Tensor, page_size: int, seed: int = 0, lengths: tuple[int, ...] | None = None):
    """(k_pool, v_pool, PageTable) holding k, v (B, H_kv, N, D): each sequence's ceil(N / P) pages placed at a
    seeded random permutation of the pool's pages (a partly filled last page padded with zeros).

    With ``lengths`` (caches of unequal length, `variants.kv_lens`) sequence b holds ceil(L_b / P) pages, and the
    rest of its row of the block table names one scratch page at the pool's end: a server's table holds no
    page a sequence does not have, and what is written past L_b lands there, never in another's page."""
    B, H_kv, n_kv, _ = k.shape
    per_sequence = math.ceil(n_kv / page_size)
    held = [per_sequence] * B if lengths is None else [math.ceil(n / page_size) for n in lengths]
    total = sum(held)
    order = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
    table = torch.full((B, per_sequence), total, dtype=torch.int64)  # the scratch page, where a sequence has none
    for b, (start, count) in enumerate(zip(itertools.accumulate([0, *held]), held)):
        table[b, :count] = order[start : start + count]
    table = PageTable(table.to(k.device), page_size, n_kv)
    index = table.token_index(0, n_kv)  # (B, N)
    pages = total + (lengths is not None)

    def pool_of(x: torch.Tensor) -> torch.Tensor:
        pool = x.new_zeros(1, H_kv, pages * page_size, x.shape[-1])
        pool[0][:, index] = x.transpose(0, 1)  # (H_kv, B, N, ·) into their pages
        return pool

    return pool_of(k), pool_of(v), table


@register("gather", family="paged", exact=True, time="O(N^2 d)", memory="O(N)", masks=ALL_MASKS, gqa=True,
          layouts=("paged",), ragged=True)  # fmt: skip
def gather(q, k, v, *, mask: Mask, scale: float | None = None, pages: PageTable,
           kv_lens: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """A paged cache gathered into contiguous K and V, then SDPA. q (B, H, N_q, D); k, v pools (1, H_kv, T, D)
    -> (B, H, N_q, D_v). Time and memory: SDPA's plus the copy, O(B·H_kv·N·D). Caches of unequal lengths
    (``kv_lens``) are gathered padded to the longest, as a simple server does, and masked."""
    from .sdpa import sdpa  # the registered function: what the gathered cache is handed to

    return sdpa(q, pages.gather(k), pages.gather(v), mask=mask, scale=scale, kv_lens=kv_lens)


def refuse_gradients(*tensors: torch.Tensor) -> None:
    """A paged cache is read by decoding, which takes no gradient: refused, not silently detached."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        raise Unsupported("a paged KV cache is read in decode, forward only")
