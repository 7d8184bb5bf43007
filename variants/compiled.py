"""Compiled attention: PyTorch's FlexAttention, and the naive formula, under ``torch.compile``.

``flex`` is ``torch.nn.attention.flex_attention.flex_attention`` compiled by
Inductor (a C++ compiler on the CPU, Triton on CUDA). The case's mask becomes
a ``BlockMask`` (`variants.masks.Mask.mask_mod`), built once per (mask,
lengths, device) and cached, so the timed calls reuse it: a block the mask
hides in full is skipped, and a partly hidden one is masked element-wise, so
``sliding:W`` costs O(N·W·d) and ``causal`` half of the unmasked O(N²·d).
``naive-compiled`` is `variants.naive` under ``torch.compile``, which fuses the
scale, mask and softmax but still materializes the (N_q, N_kv) scores.

Three settings keep the measurement honest:

- ``fullgraph=True``: a graph break is an error (the row says why), never a
  silent fall back to eager PyTorch -- eager FlexAttention materializes the
  whole score matrix, so a fallback would time another algorithm.
- ``dynamic=True`` (the default `compile_mode`): sequence lengths are symbolic
  from the first compile, and the mask's lengths enter as tensors, so one
  compiled kernel serves every N (a sweep pays one compile per dtype and mask
  kind, not one per N). ``static`` and ``max-autotune-no-cudagraphs`` compile
  each shape apart, the latter autotuned: what a tuned deployment runs.
- the recompile limit is raised and hitting it fails instead of running eager,
  for the same reason.

The first call compiles (tens of seconds on a CPU); the harness times
compilation apart from the samples (``compile_s``) and warns on a row whose
timing recompiled (`harness.measure.compilation`).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Iterator

import torch
from torch.nn.attention.flex_attention import BlockMask, flex_attention

from .common import made_once
from .kv_lens import bounds as ragged_bounds
from .kv_lens import mask_mod as ragged_mask_mod
from .masks import PACKED, Mask
from .naive import naive
from .paged import PageTable, refuse_gradients
from .registry import ALL_MASKS, ALL_SCORE_MODS, Unsupported, register
from .score_mods import NO_MOD, ScoreMod

RECOMPILE_LIMIT = 64  # compiled graphs per function: dtypes x masks x grad modes of one long sweep (per shape: 8x)


# How the compiled variants compile (a case's ``compile_mode``, ``--compile-mode``): "default" is torch.compile's
# default mode with dynamic shapes (one kernel for every N: a sweep pays one compile per dtype and mask kind);
# "static" the default mode specialised to each shape (one compile per N, its constants folded in); and
# "max-autotune-no-cudagraphs" static shapes with Inductor's autotuning of the Triton kernels' tiles, warps and
# stages (what FlexAttention's authors benchmark; without CUDA graphs, which the harness's own --cuda-graphs
# chooses). Autotuning cost 4-15 s a shape on an H200 (flex forward); it is kept in compile_s, apart from the samples.
COMPILE_MODES = ("default", "static", "max-autotune-no-cudagraphs")
FOLLOW_MODE = ("flex", "naive-compiled")  # compiled by `_compiled` (hf-flex compiles through Transformers' own)
_mode: contextvars.ContextVar[str] = contextvars.ContextVar("compile_mode", default="default")


@contextlib.contextmanager
def compile_mode(mode: str) -> Iterator[None]:
    """Within: the compiled variants compile as ``mode`` (one of `COMPILE_MODES`)."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode {mode!r}; known: {', '.join(COMPILE_MODES)}")
    token = _mode.set(mode)
    try:
        yield
    finally:
        _mode.reset(token)


def _compiled(fn):
    """``fn`` under torch.compile as the current `compile_mode` says (one wrapper per function and mode)."""
    return _compiled_as(fn, _mode.get())


@functools.cache
def _compiled_as(fn, mode: str):
    # Per-shape modes compile once per N as well: a long-lived worker may hold a sweep's every shape.
    limit = RECOMPILE_LIMIT if mode == "default" else 8 * RECOMPILE_LIMIT
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, limit)
    torch._dynamo.config.fail_on_recompile_limit_hit = True
    tuned = mode if mode not in ("default", "static") else None
    return torch.compile(fn, dynamic=mode == "default", fullgraph=True, mode=tuned)


@made_once(maxsize=8)
def block_mask(mask: Mask, n_q: int, n_kv: int, device: torch.device, block: int = 128, kv_block: int | None = None,
               lengths: tuple[int, ...] | None = None) -> BlockMask:  # fmt: skip
    """The ``BlockMask`` of ``mask`` for these lengths on ``device`` (tiles of ``block`` queries by ``kv_block``
    keys, default ``block``); with ``lengths`` (caches of unequal length, `variants.kv_lens`) one per sequence,
    each read at its own length.

    Read off the mask's per-query key intervals (`Mask.bounds`, non-decreasing
    in the query): a query tile [a, b] meets key tile [k0, k1) when
    [lo(a), hi(b)) overlaps it, and sees all of it when lo(b) <= k0 and
    hi(a) >= k1 (and neither sequence ends inside the tile, as FlexAttention
    expects); the tiles it meets but not wholly are masked element-wise by
    ``mask_mod``. O(N_q + N_q·N_kv / block²) work and memory -- where
    ``create_block_mask`` evaluates ``mask_mod`` at all N_q·N_kv points (3 GB
    at N = 16384). Cached, so the timed calls of a case reuse it.
    """
    kv_block = kv_block or block
    if lengths is None:
        lo, hi = (bound[None] for bound in mask.bounds(torch.arange(n_q), n_q, n_kv))  # (1, N_q) each
        mask_mod = mask.mask_mod(n_q, n_kv, device)
    else:
        lo, hi = (bound[:, 0] for bound in ragged_bounds(mask, torch.arange(n_q), n_q, torch.tensor(lengths)))  # (B, N_q)
        mask_mod = ragged_mask_mod(mask, n_q, torch.tensor(lengths, device=device))
    first = torch.arange(0, n_q, block)  # each query tile's first row
    last = (first + block).clamp(max=n_q) - 1
    k0 = torch.arange(0, n_kv, kv_block)  # each key tile's first key
    k1 = (k0 + kv_block).clamp(max=n_kv)
    meets = (lo[:, first, None] < k1) & (hi[:, last, None] > k0)  # (B or 1, query tiles, key tiles)
    whole = (lo[:, last, None] <= k0) & (hi[:, first, None] >= k1)
    whole &= ((first + block <= n_q)[:, None]) & (k0 + kv_block <= n_kv)  # a tile cut by a sequence end is partial
    partial = meets & ~whole

    def listed(tiles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # (count per row, indices, True first)
        order = torch.argsort((~tiles).to(torch.int8), dim=-1, stable=True)
        return tiles.sum(-1, dtype=torch.int32)[:, None].to(device), order.to(torch.int32)[:, None].to(device)

    return BlockMask.from_kv_blocks(*listed(partial), *listed(whole), BLOCK_SIZE=(block, kv_block),
                                    mask_mod=mask_mod, seq_lengths=(n_q, n_kv))  # fmt: skip


@made_once(maxsize=8)
def flex_score_mod(score_mod: ScoreMod, n_q: int, n_kv: int, heads: int, device: torch.device):
    """The case's ``score_mod`` function (`ScoreMod.score_mod_fn`), cached: the same function object for every
    timed call, so the compiled kernel is reused, not recompiled."""
    return score_mod.score_mod_fn(n_q, n_kv, heads, device)


@made_once(maxsize=8)
def paged_block_mask(mask: Mask, n_q: int, pages: PageTable, pool_tokens: int, device: torch.device,
                     lengths: tuple[int, ...] | None = None) -> BlockMask:  # fmt: skip
    """The case's ``BlockMask`` over a paged pool (`variants.paged`): the logical mask in key tiles of one page
    (PagedAttention asks a key tile to be a page), one per sequence, its tiles mapped to their physical pages
    by torch's ``PagedAttention.convert_logical_block_mask``, keys past the sequence's length (N, or its own
    of ``lengths``) hidden. Cached: the timed calls of a case reuse it. O(B·pool pages) memory."""
    from torch.nn.attention.experimental._paged_attention import PagedAttention

    B, per_sequence = pages.block_table.shape
    logical = block_mask(mask, n_q, pages.n_kv, device, 128, pages.page_size, lengths)

    def batched(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.expand(B, *t.shape[1:]).contiguous()

    logical = BlockMask.from_kv_blocks(batched(logical.kv_num_blocks), batched(logical.kv_indices),
                                       batched(logical.full_kv_num_blocks), batched(logical.full_kv_indices),
                                       BLOCK_SIZE=logical.BLOCK_SIZE, mask_mod=logical.mask_mod,
                                       seq_lengths=logical.seq_lengths)  # fmt: skip
    table = PagedAttention(pool_tokens // pages.page_size, pages.page_size, B, device=device)
    table.page_table[:, :per_sequence] = pages.block_table
    logical_pages = torch.arange(per_sequence, device=device).expand(B, -1)
    table.physical_to_logical.scatter_(1, pages.block_table, logical_pages)
    kv_len = torch.tensor(lengths or (pages.n_kv,) * B, device=device)
    return table.convert_logical_block_mask(logical, kv_len=kv_len)


@register("flex", family="compiled", exact=True, time="O(N^2 d)", memory="O(N)", masks=ALL_MASKS, gqa=True,
          skips_masked=True, dtypes=("float32", "bfloat16", "float16"), score_mods=ALL_SCORE_MODS,
          layouts=("contiguous", "paged"), ragged=True)  # fmt: skip
def flex(q, k, v, *, mask: Mask, scale: float | None = None, score_mod: ScoreMod = NO_MOD,
         pages: PageTable | None = None, kv_lens: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """FlexAttention under torch.compile, with the case's mask as a cached block mask.

    q: (B, H, N_q, D); k, v: (B, H_kv, N_kv, D|D_v) -> (B, H, N_q, D_v); grouped
    heads natively (``enable_gqa``); the score modification as FlexAttention's
    ``score_mod``, fused into the kernel. Time O(B·H·visible pairs·D): blocks the
    mask hides cost nothing; memory O(B·H·N_q·D) beyond the inputs.
    FlexAttention has no CPU backward and no float64 CPU kernel. With ``pages``
    (`variants.paged`, decode), k and v are pools (1, H_kv, T, D) read in place
    through a paged block mask (`paged_block_mask`: torch's PagedAttention), no
    copy; unmodified scores only. With ``kv_lens`` (B,; decode), each sequence is read to its own length
    through a block mask per sequence (`variants.kv_lens`).
    Paper: Dong et al., "Flex Attention: A Programming Model for Generating
    Optimized Attention Kernels", 2024.
    """
    if q.device.type == "cpu" and any(t.requires_grad for t in (q, k, v)):
        raise Unsupported("flex: FlexAttention does not support backward on CPU (torch's own limit)")
    grouped = k.shape[1] != q.shape[1]
    lengths = None if kv_lens is None else tuple(kv_lens.tolist())  # a cache key, by value
    if pages is not None:  # k, v are pools (1, H_kv, T, D), read through the paged block mask
        refuse_gradients(q, k, v)
        if score_mod.kind != "none":
            raise Unsupported("flex: a score modification over a paged cache is not wired (its positions are logical)")
        blocks = paged_block_mask(mask, q.shape[2], pages, k.shape[2], q.device, lengths)
        return _compiled(_paged_flex)(q, k, v, blocks, scale, grouped)
    blocks = block_mask(mask, q.shape[2], k.shape[2], q.device, lengths=lengths)
    if lengths is not None and score_mod.kind == "none":  # its mask_mod indexes the lengths: compiled apart
        return _compiled(_ragged_flex)(q, k, v, blocks, scale, grouped)
    if score_mod.kind == "none" and mask.kind not in PACKED:
        return _compiled(flex_attention)(q, k, v, block_mask=blocks, scale=scale, enable_gqa=grouped)
    if score_mod.kind == "none":  # per-query bounds captured as tensors: compiled apart, as _modified_flex says
        return _compiled(_packed_flex)(q, k, v, blocks, scale, grouped)
    modify = flex_score_mod(score_mod, q.shape[2], k.shape[2], q.shape[1], q.device)
    return _compiled(_modified_flex)(q, k, v, modify, blocks, scale, grouped)


def _modified_flex(q, k, v, score_mod, block_mask, scale, enable_gqa):
    """FlexAttention with a ``score_mod``, compiled as a function of its own. With torch 2.13 on the CPU, a
    process that had compiled the unmodified kernels (dynamic shapes) then failed to compile a score_mod one
    (C++ error: an undeclared ``cur_kvSplitSize5``); compiled apart, with its own cache, it builds."""
    return flex_attention(q, k, v, score_mod=score_mod, block_mask=block_mask, scale=scale, enable_gqa=enable_gqa)


def _packed_flex(q, k, v, block_mask, scale, enable_gqa):
    """FlexAttention under a packed-document mask (its ``mask_mod`` indexes captured tensors), compiled as a
    function of its own for the same torch 2.13 CPU fault as `_modified_flex`: after the plain kernel compiled
    in the process, this one failed to build (an undeclared ``cur_qSplitSize7``)."""
    return flex_attention(q, k, v, block_mask=block_mask, scale=scale, enable_gqa=enable_gqa)


def _ragged_flex(q, k, v, block_mask, scale, enable_gqa):
    """FlexAttention over caches of unequal length (its ``mask_mod`` indexes the lengths by batch), compiled as a
    function of its own, as `_packed_flex` is, for the same fault."""
    return flex_attention(q, k, v, block_mask=block_mask, scale=scale, enable_gqa=enable_gqa)


def _paged_flex(q, k, v, block_mask, scale, enable_gqa):
    """FlexAttention over a paged pool (the query batch against a pool of batch 1), compiled as a function of its
    own, as `_packed_flex` is: its mask_mod indexes the page tables."""
    return flex_attention(q, k, v, block_mask=block_mask, scale=scale, enable_gqa=enable_gqa)


@register("naive-compiled", family="compiled", exact=True, time="O(N^2 d)", memory="O(N^2)", masks=ALL_MASKS,
          gqa=True)  # fmt: skip
def naive_compiled(q, k, v, *, mask: Mask, scale: float | None = None) -> torch.Tensor:
    """`variants.naive` (QK^T/sqrt(d) -> mask -> softmax -> ·V) under torch.compile.

    q: (B, H, N_q, D); k, v: (B, H_kv, N_kv, D|D_v) -> (B, H, N_q, D_v). Inductor
    fuses the elementwise work around the two matmuls; the (N_q, N_kv) scores
    are still materialized. Time O(B·H·N_q·N_kv·D); memory O(B·H·N_q·N_kv).
    """
    return _compiled(naive)(q, k, v, mask=mask, scale=scale)
