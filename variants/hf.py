"""Hugging Face Transformers, both ways (the optional extra ``.[hf]``).

Transformers' own attention functions as variants, called as a Transformers attention layer calls them, so a
Transformers user sees the code their model runs beside ours:

- ``hf-eager``: `eager_attention_forward` (Llama's, the one most models copy): q·kᵀ·scale plus an additive mask,
  softmax in fp32, ·v, with K and V repeated to H heads for grouped-query attention (``repeat_kv``); under a
  soft cap, Gemma 2's, which caps the scores first. Time O(N² d), memory O(N²).
- ``hf-sdpa``: `transformers.integrations.sdpa_attention.sdpa_attention_forward`: PyTorch SDPA under
  Transformers' rules (``is_causal`` when no mask is needed, ``enable_gqa`` or ``repeat_kv`` by its own test).
- ``hf-flex``: `transformers.integrations.flex_attention.flex_attention_forward`: FlexAttention through
  Transformers' compile-once wrapper and its ``score_mod`` closure (the soft cap Gemma 2 passes), K and V
  repeated where the head count is not a power of two; the ``BlockMask`` is attnbench's
  (`variants.compiled.block_mask`: the same mask Transformers' ``flex_attention_mask`` makes, built in
  O(N²/block²) rather than by evaluating every pair). It compiles (family ``compiled``); no CPU backward. It
  runs where named, not in ``--variants all``: ``flex`` already compiles the same kernel there, and a second
  compile per shape and round would add a minute to the quick preset.

Each gets q (B, H, N_q, D) and k, v (B, H_kv, N_kv, D), a stand-in for the layer module (its
``num_key_value_groups``, ``is_causal`` and ``training``), and the mask Transformers' mask builder would make for
that implementation: none for ``none``, and for a causal square case under SDPA (``is_causal`` instead); else
SDPA's boolean (N_q, N_kv) mask (True: attend) or eager's additive one (0, or the dtype's minimum). They return
(B, N_q, H, D_v), read back as a (B, H, N_q, D_v) view. A query that sees no key (``causal-br`` with N_q > N_kv)
is given zeros afterwards, as attnbench's contract asks, where Transformers' functions give it uniform weights
(eager) or NaN (SDPA).

The other way, `install` registers any attnbench variant in Transformers' ``AttentionInterface``, so a model
built from a config runs its attention through it (``attn_implementation="attnbench-<name>"``). Transformers
makes no mask for an implementation it does not know, so the variant gets the layer's own causality, with no
padding mask: batches of equal-length sequences.
"""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace

import torch

from .masks import CAUSAL, NONE, Mask, parse_mask
from .registry import Unsupported, get_variant, register
from .score_mods import NO_MOD, ScoreMod

MASKS = ("none", "causal", "causal-br", "sliding")  # sliding: Mistral's and Gemma 2's windows, as a mask
INSTALL_PREFIX = "attnbench-"


def _layer(q: torch.Tensor, k: torch.Tensor, causal: bool) -> SimpleNamespace:
    """What Transformers' attention functions read of the layer module that calls them."""
    return SimpleNamespace(num_key_value_groups=q.shape[1] // k.shape[1], is_causal=causal, training=False)


def _blind_rows_zeroed(out: torch.Tensor, visible: torch.Tensor | None) -> torch.Tensor:
    """``out`` (B, H, N_q, D_v) with the rows of queries that see no key set to zero (the contract's answer)."""
    if visible is None or bool(visible.any(-1).all()):
        return out
    return out.masked_fill(~visible.any(-1)[:, None], 0.0)


# Transformers' wrappers of kernels the registry has already (sdpa, naive) run where named: the models preset compares
# them at their models' shapes. In "--variants all" they cost the quick preset a fifth of its time (an import of
# Transformers in every round's fresh worker, 2.3 s a round) for rows that repeat sdpa's and naive's.
@register("hf-sdpa", family="hf", exact=True, time="O(N^2 d)", memory="O(N)", masks=MASKS, gqa=True,
          requires="transformers", in_all=False)  # fmt: skip
def hf_sdpa(q, k, v, *, mask: Mask, scale: float | None = None) -> torch.Tensor:
    """Transformers' ``sdpa_attention_forward``. q: (B, H, N_q, D); k, v: (B, H_kv, N_kv, D|D_v) -> (B, H, N_q, D_v)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    n_q, n_kv = q.shape[2], k.shape[2]
    square_causal = mask.kind in ("causal", "causal-br") and n_q == n_kv  # Transformers' is_causal case
    needs_mask = mask != NONE and not square_causal and not (mask.kind == "causal-br" and n_q == 1)
    visible = mask.dense(n_q, n_kv, device=q.device) if needs_mask else None
    attention_mask = visible[None, None] if needs_mask else None  # True: attend, as Transformers' sdpa_mask makes it
    scaling = scale if scale is not None else 1 / math.sqrt(q.shape[-1])
    out, _ = sdpa_attention_forward(_layer(q, k, square_causal), q, k, v, attention_mask, scaling=scaling,
                                    is_causal=square_causal)  # fmt: skip
    return _blind_rows_zeroed(out.transpose(1, 2), visible)


@register("hf-eager", family="hf", exact=True, time="O(N^2 d)", memory="O(N^2)", masks=MASKS, gqa=True,
          score_mods=("none", "softcap"), requires="transformers", in_all=False)  # fmt: skip
def hf_eager(q, k, v, *, mask: Mask, scale: float | None = None, score_mod: ScoreMod = NO_MOD) -> torch.Tensor:
    """Transformers' ``eager_attention_forward``: Llama's, or under a soft cap Gemma 2's (which caps the scores
    before the mask). Shapes as `hf_sdpa`'s."""
    if score_mod.kind == "softcap":
        from transformers.models.gemma2.modeling_gemma2 import eager_attention_forward as gemma2_eager

        eager_attention_forward = functools.partial(gemma2_eager, softcap=score_mod.size)
    else:
        from transformers.models.llama.modeling_llama import eager_attention_forward

    n_q, n_kv = q.shape[2], k.shape[2]
    visible = attention_mask = None
    if mask != NONE:
        visible = mask.dense(n_q, n_kv, device=q.device)
        attention_mask = torch.zeros(n_q, n_kv, dtype=q.dtype, device=q.device).masked_fill(~visible, torch.finfo(q.dtype).min)
        attention_mask = attention_mask[None, None]  # (1, 1, N_q, N_kv), added to the scores
    scaling = scale if scale is not None else 1 / math.sqrt(q.shape[-1])
    out, _ = eager_attention_forward(_layer(q, k, mask != NONE), q, k, v, attention_mask, scaling=scaling)
    return _blind_rows_zeroed(out.transpose(1, 2), visible)


@register("hf-flex", family="compiled", exact=True, time="O(N^2 d)", memory="O(N)", masks=MASKS, gqa=True,
          skips_masked=True, dtypes=("float32", "bfloat16", "float16"), score_mods=("none", "softcap"),
          requires="transformers", in_all=False)  # fmt: skip
def hf_flex(q, k, v, *, mask: Mask, scale: float | None = None, score_mod: ScoreMod = NO_MOD) -> torch.Tensor:
    """Transformers' ``flex_attention_forward``. Shapes as `hf_sdpa`'s; time O(B·H·visible pairs·D)."""
    from transformers.integrations.flex_attention import flex_attention_forward

    from .compiled import block_mask

    if q.device.type == "cpu" and any(t.requires_grad for t in (q, k, v)):
        raise Unsupported("hf-flex: FlexAttention does not support backward on CPU (torch's own limit)")
    blocks = None if mask == NONE else block_mask(mask, q.shape[2], k.shape[2], q.device)
    scaling = scale if scale is not None else 1 / math.sqrt(q.shape[-1])
    softcap = score_mod.size if score_mod.kind == "softcap" else None
    out, _ = flex_attention_forward(_layer(q, k, mask != NONE), q, k, v, blocks, scaling=scaling, softcap=softcap)
    return out.transpose(1, 2)


def install(name: str) -> str:
    """Register attnbench variant ``name`` in Transformers' ``AttentionInterface``; returns the implementation name
    to build a model with (``attn_implementation=...``). Transformers' layers hand it (B, H, N, D) q, k, v and the
    layer module; it answers (B, N_q, H, D_v) and no weights, as Transformers' own functions do."""
    from transformers import AttentionInterface

    spec = get_variant(name)

    def attention(module, query, key, value, attention_mask=None, scaling=None, dropout=0.0, **kwargs):
        causal = getattr(module, "is_causal", True)
        n_q, n_kv = query.shape[2], key.shape[2]
        mask = NONE if not causal else CAUSAL if n_q == n_kv else parse_mask("causal-br")
        return spec(query, key, value, mask=mask, scale=scaling).transpose(1, 2), None

    implementation = INSTALL_PREFIX + name
    AttentionInterface.register(implementation, attention)
    return implementation
