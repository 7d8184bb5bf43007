"""The work model: how many FLOPs exact attention does for a case, counting only the pairs its mask leaves visible."""

from __future__ import annotations

from typing import Any

from .kv_lens import visible_pairs
from .masks import Mask, parse_mask


def case_mask(case: Any) -> Mask:
    """The mask of a case-like object (a harness ``Case``, or anything with a ``mask``: a Mask or its spec)."""
    return parse_mask(getattr(case, "mask", None))


def exact_flops(case: Any) -> float:
    """Forward FLOPs of exact attention: QK^T and PV, 2·D each per visible query-key pair, per head.

    ``case`` is anything with ``batch, heads, seq_len, head_dim`` and ``mask``
    (optionally ``q_len``, the query count when it differs from
    N): a harness ``Case``. A mask counts only the pairs it leaves visible, so
    a causal case does about half the work and ``sliding:W`` about N·W; caches
    of unequal length (``cache_lengths``) count each sequence's at its length.
    """
    n_q = getattr(case, "q_len", None) or case.seq_len
    lengths = getattr(case, "cache_lengths", None)  # caches of unequal length: each sequence's own pairs
    if lengths:
        return 4.0 * case.heads * visible_pairs(case_mask(case), n_q, lengths) * case.head_dim
    pairs = case_mask(case).visible_pairs(n_q, case.seq_len)
    return 4.0 * case.batch * case.heads * pairs * case.head_dim
