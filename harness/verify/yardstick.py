"""What a check measures a variant with: float64's answer, the tolerances, and the form of a check's result."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from variants import VariantSpec
from variants.masks import Mask
from variants.paged import page
from variants.score_mods import ScoreMod

from ..measure.accuracy import relative_error
from ..measure.case import seeded_qkv
from ..measure.reference import reference_attention

TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 2e-2, torch.float64: 1e-10}
GRAD_TOLERANCE = 1e-4


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome; ``passed`` is None when the variant declared it unsupported."""

    name: str
    passed: bool | None
    detail: str


def exact_error(spec: VariantSpec, *, n_q: int, n_kv: int | None = None, d: int = 64, d_v: int | None = None,
                mask: Mask | str | None = None, score_mod: ScoreMod | str | None = None, heads: int = 2,
                heads_kv: int | None = None,
                dtype: torch.dtype = torch.float32, device: str = "cpu", scale: float | None = None,
                input_scale: float = 2.0, seed: int = 0, page_size: int | None = None,
                lengths: tuple[int, ...] | None = None) -> float:  # fmt: skip
    """Relative error against float64 attention; raises `Unsupported` where the variant does. ``page_size``:
    the variant reads k and v from a paged cache of pages that size (`variants.paged`). ``lengths``: a batch
    of caches of these lengths, N_kv slots each (`variants.kv_lens`)."""
    q, k, v = seeded_qkv(n_q, n_kv, batch=len(lengths or (0,)), heads=heads, heads_kv=heads_kv, d=d, d_v=d_v,
                         dtype=dtype, device=device, seed=seed, scale=input_scale)  # fmt: skip
    ragged = {} if lengths is None else {"kv_lens": torch.tensor(lengths, device=device)}
    if page_size is None:
        out = spec(q, k, v, mask=mask, scale=scale, score_mod=score_mod, **ragged)
    else:
        k_pool, v_pool, pages = page(k, v, page_size, seed=seed, lengths=lengths)
        out = spec(q, k_pool, v_pool, mask=mask, scale=scale, score_mod=score_mod, pages=pages, **ragged)
    return relative_error(out, reference_attention(q, k, v, mask=mask, score_mod=score_mod, scale=scale, **ragged))
