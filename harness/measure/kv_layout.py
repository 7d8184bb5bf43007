"""A case's KV cache layout: ``contiguous`` (K and V as (B, H_kv, N, D) tensors) or ``paged:P`` (pages of P
tokens in a shared pool, in a seeded random order, read through a block table: `variants.paged`).

The harness keeps every case's q, k, v contiguous (the float64 reference, the accuracy, the refill check read
them so) and hands a paged case's variant the pools made from them; a paged cache is read by decoding only.
"""

from __future__ import annotations

import torch

from variants.paged import PageTable, page

CONTIGUOUS = "contiguous"


class KVLayoutError(ValueError):
    """A layout spec that names none; the message is one line."""


def parse_kv_layout(spec: str) -> str:
    """The canonical spec: "contiguous" or "paged:P" with P a positive integer; `KVLayoutError` otherwise."""
    if not isinstance(spec, str):
        raise KVLayoutError(f"a KV layout is a spec string, got {spec!r}")
    kind, _, size = spec.strip().partition(":")
    if kind == CONTIGUOUS and not size:
        return CONTIGUOUS
    if kind != "paged":
        raise KVLayoutError(f"unknown KV layout {spec!r}; known: contiguous, paged:P")
    if not size.isdigit() or not 1 <= int(size) <= 2**31 - 1:
        raise KVLayoutError(f"KV layout {spec!r}: paged:P takes a positive integer P (tokens a page)")
    return f"paged:{int(size)}"


class KVLayout:
    """How a case's contiguous k, v become what its variant reads, and how new values reach them in place."""

    def __init__(self, spec: str, seed: int = 0, lengths: tuple[int, ...] | None = None) -> None:
        self.spec, self.seed, self.lengths = parse_kv_layout(spec), seed, lengths  # lengths: variants.kv_lens
        self.page_size = int(self.spec.partition(":")[2]) if self.spec != CONTIGUOUS else None

    def store(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, PageTable | None]:
        """(k, v, None) as they are, or (k_pool, v_pool, PageTable) for a paged layout (pages placed by the seed)."""
        if self.page_size is None:
            return k, v, None
        return page(k, v, self.page_size, seed=self.seed, lengths=self.lengths)

    @staticmethod
    def write(handed: torch.Tensor, value: torch.Tensor, pages: PageTable | None) -> None:
        """Write contiguous ``value`` (B, H_kv, N, D) into ``handed`` in place: itself, or its pages of the pool."""
        if pages is None:
            handed.copy_(value)
        else:
            handed[0][:, pages.token_index(0, pages.n_kv)] = value.transpose(0, 1)
