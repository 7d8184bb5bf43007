"""Exact attention in blocks, so the N x N matrix never exists at once.

``chunked-query`` splits the queries (Rabe & Staats 2021, the simple half):
each block of queries sees all keys through an ordinary softmax. Memory
O(block · N). Under autograd each block is checkpointed, so the backward pass
recomputes a block instead of keeping every block's probabilities.

``chunked-online`` splits the keys and values and carries a running maximum and
sum per query row (the online softmax, the FlashAttention recurrence written
with PyTorch ops). Memory O(N): one (rows, block) score tile, reused across
blocks. Its backward is the FlashAttention backward: it keeps only the output
and the per-row log-sum-exp and recomputes each tile's probabilities.

Both serve every mask of `variants.masks` and grouped-query heads without
copying K and V (the group's query heads folded into rows,
`variants.common.group_queries`). Both touch only the keys a block's queries
can see: chunked-query slices each query block's key range, chunked-online
meets each key block only with the rows that see it and masks only the rows
that see part of it, so a banded mask costs O(N·W·d), not O(N^2·d).
"""

from __future__ import annotations

import functools

import torch
from torch.utils.checkpoint import checkpoint

from .common import group_queries, hide, row_positions, softmax_scale, ungroup
from .kv_lens import bounds as ragged_bounds
from .masks import Mask, tile_rows
from .paged import PageTable, refuse_gradients
from .registry import ALL_MASKS, ALL_SCORE_MODS, register
from .score_mods import NO_MOD, ScoreMod

# exp of a score this far below its row's maximum is a float32 denormal, which this CPU computes about 6x more
# slowly (measured on 4M-score tiles: a bias such as ALiBi puts most scores there); exp(-87) = 1.6e-38 is as
# good as zero beside the row's largest term, 1 (a hidden key's -inf is clamped too: its weight is as good as 0).
EXP_FLOOR = -87.0


def _query_block(q_blk, k, v, mask: Mask, rows, n_q: int, n_kv: int, k0: int, modify) -> torch.Tensor:
    """Exact attention of the (already scaled) query rows q_blk (B, H_kv, r, D) over keys k0.. of k, v.

    ``rows`` (r,) are the rows' query positions; ``modify(scores, k0)`` applies the score modification.
    Differentiable by autograd (through `checkpoint`).
    """
    scores = modify(q_blk @ k.transpose(-1, -2), k0)  # (B, H_kv, r, n)
    if mask.kind != "none":
        scores = hide(scores.clone(), mask, rows, n_q, n_kv, k0)
    probs = torch.softmax(scores, dim=-1)  # a row with no visible key is NaN
    return (probs.nan_to_num(0.0) if mask.hides_rows else probs) @ v  # (B, H_kv, r, D_v)


def _query_block_into(out, tile, q_blk, k, v, mask: Mask, rows, n_q: int, n_kv: int, k0: int, modify) -> None:
    """`_query_block` without allocating: scores and softmax in ``tile``, the result in ``out``."""
    scores = tile[:, :, : q_blk.shape[2], : k.shape[2]]  # (B, H_kv, r, n), a view of the reused buffer
    torch.matmul(q_blk, k.transpose(-1, -2), out=scores)
    modify(scores, k0)  # in place: no autograd here
    if mask.kind != "none":
        hide(scores, mask, rows, n_q, n_kv, k0)
    top = scores.amax(dim=-1, keepdim=True)  # (B, H_kv, r, 1)
    empty = top == float("-inf")  # a row with no visible key: its output is zeros
    top.masked_fill_(empty, 0.0)  # (not -inf - -inf = NaN)
    scores.sub_(top).clamp_(min=EXP_FLOOR).exp_()
    scores.div_(scores.sum(dim=-1, keepdim=True))
    torch.matmul(scores, v, out=out)
    if mask.hides_rows:
        out.masked_fill_(empty, 0.0)


@register("chunked-query", family="chunked", exact=True, time="O(N^2 d)", memory="O(N)", params={"block": 128},
          masks=ALL_MASKS, gqa=True, skips_masked=True, score_mods=ALL_SCORE_MODS)  # fmt: skip
def chunked_query(q, k, v, *, mask: Mask, scale: float | None = None, block: int = 128,
                  score_mod: ScoreMod = NO_MOD) -> torch.Tensor:  # fmt: skip
    """Queries in blocks of ``block`` positions, each against the keys any of them can see.

    q: (B, H, N_q, D); k, v: (B, H_kv, N_kv, D|D_v) -> (B, H, N_q, D_v).
    Time O(visible pairs·D) up to a block's spread; memory O(block·G·N_kv) beyond
    the output. Without autograd one tile is reused by every block: the CPU
    allocator does not cache, and a fresh tile per block costs page faults
    (measured 2x slower at N=4096). With autograd each block is checkpointed.
    """
    H, n_q, n_kv, H_kv = q.shape[1], q.shape[2], k.shape[2], k.shape[1]
    groups = H // H_kv
    rows = group_queries(q * softmax_scale(q, scale), H_kv)  # (B, H_kv, N_q·G, D): a scaled copy
    positions = row_positions(n_q, groups)  # (N_q·G,)
    lo, hi = mask.bounds(positions, n_q, n_kv)
    out = rows.new_zeros(*rows.shape[:3], v.shape[-1])  # (B, H_kv, N_q·G, D_v)
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    step = block * groups
    tile = None if needs_grad else rows.new_empty(*rows.shape[:2], min(step, rows.shape[2]), n_kv)
    for start in range(0, rows.shape[2], step):
        stop = min(start + step, rows.shape[2])
        k0, k1 = int(lo[start]), int(hi[stop - 1])  # bounds are non-decreasing: the block's key range
        if k1 <= k0:
            continue  # no query of the block sees a key: its output stays zero
        modify = functools.partial(_modify, score_mod, torch.arange(start, stop, device=q.device), n_q, n_kv, H)
        args = (rows[:, :, start:stop], k[:, :, k0:k1], v[:, :, k0:k1], mask, positions[start:stop], n_q, n_kv, k0, modify)
        if needs_grad:
            out[:, :, start:stop] = checkpoint(_query_block, *args, use_reentrant=False)
        else:
            _query_block_into(out[:, :, start:stop], tile, *args)
    return ungroup(out, H)


def _modify(score_mod: ScoreMod, folded, n_q: int, n_kv: int, heads: int, scores, k0: int):
    """``score_mod`` on a tile of scores: folded rows ``folded`` against keys k0.. (`ScoreMod.apply_folded`)."""
    keys = torch.arange(k0, k0 + scores.shape[-1], device=scores.device)
    return score_mod.apply_folded(scores, folded.to(scores.device), n_q, n_kv, heads, keys)


class _OnlineSoftmaxAttention(torch.autograd.Function):
    """Online-softmax attention with a recomputing (FlashAttention-style) backward."""

    @staticmethod
    def forward(ctx, q, k, v, mask: Mask, scale: float, block: int, score_mod: ScoreMod):
        out, lse = _online_forward(q, k, v, mask, scale, block, score_mod)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.mask, ctx.scale, ctx.block, ctx.score_mod = mask, scale, block, score_mod
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = _online_backward(q, k, v, out, lse, grad_out, ctx.mask, ctx.scale, ctx.block, ctx.score_mod)
        return dq, dk, dv, None, None, None, None


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # Half-precision inputs keep fp32 tiles and accumulators, as fused kernels do.
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


class _Blocks:
    """The key blocks of a masked problem in folded rows, each with the rows that meet it.

    For key block [k0, k1): rows [r0, r1) see some of its keys, and rows
    [f0, f1) inside them see all of them; only the rows outside [f0, f1)
    need their tile masked.
    """

    def __init__(self, mask: Mask, n_q: int, n_kv: int, groups: int, block: int, kv_lens: torch.Tensor | None = None):
        self.mask, self.n_q, self.n_kv, self.kv_lens = mask, n_q, n_kv, kv_lens
        self.positions = row_positions(n_q, groups)  # (R,)
        self.folded = torch.arange(len(self.positions))  # (R,): the folded rows, for a score modification
        if kv_lens is None:
            self.lo, self.hi = mask.bounds(self.positions, n_q, n_kv)
            self.full = (self.lo, self.hi)
        else:  # caches of unequal lengths: a row meets a block if it does in any sequence, skips the mask in all
            lo, hi = ragged_bounds(mask, self.positions, n_q, kv_lens.cpu())  # (B, 1, R)
            self.lo, self.hi = lo.amin(0)[0], hi.amax(0)[0]
            self.full = (lo.amax(0)[0], hi.amin(0)[0])
        self.block = block

    def __iter__(self):
        for k0 in range(0, self.n_kv, self.block):
            k1 = min(k0 + self.block, self.n_kv)
            r0, r1, f0, f1 = tile_rows(self.lo, self.hi, k0, k1)
            if self.kv_lens is not None:
                f0, f1 = tile_rows(*self.full, k0, k1)[2:]
                f0 = min(max(f0, r0), r1)
                f1 = max(f0, min(f1, r1))
            if r1 > r0:
                yield k0, k1, r0, r1, f0, f1

    def hide(self, tile: torch.Tensor, k0: int, r0: int, r1: int, f0: int, f1: int) -> None:
        """Mask the partly visible rows of ``tile`` (B·H_kv, rows r0..r1, keys k0..)."""
        for a, b in ((r0, f0), (f1, r1)):
            if b > a:
                part = tile[:, a - r0 : b - r0]
                if self.kv_lens is not None:
                    part = part.unflatten(0, (len(self.kv_lens), -1))  # (B, H_kv, rows, keys): a view
                hide(part, self.mask, self.positions[a:b], self.n_q, self.n_kv, k0, self.kv_lens)


def _online_forward(q, k, v, mask: Mask, scale: float, block: int, score_mod: ScoreMod, pages: PageTable | None = None,
                    kv_lens: torch.Tensor | None = None):  # fmt: skip
    """Returns out (B, H, N_q, D_v) in q's dtype and lse (B·H_kv, N_q·G, 1) in fp32/fp64. With ``pages``, k and v
    are pools (`variants.paged`) and each key block is gathered from its pages as the loop reaches it; with
    ``kv_lens`` (B,), sequence b reads its first kv_lens[b] keys (`variants.kv_lens`)."""
    B, H, n_q, D = q.shape
    H_kv, E = k.shape[1], v.shape[-1]
    n_kv = k.shape[2] if pages is None else pages.n_kv
    dt = _compute_dtype(q.dtype)
    qs = group_queries(q.to(dt) * scale, H_kv).reshape(B * H_kv, -1, D)  # (BH_kv, R, D), R = N_q·G, scaled copy
    R = qs.shape[1]

    if pages is None:
        kf = k.to(dt).reshape(B * H_kv, n_kv, D)  # (BH_kv, N_kv, D)
        vf = v.to(dt).reshape(B * H_kv, n_kv, E)  # (BH_kv, N_kv, E)
    else:  # each block's keys are gathered into these, reused: one allocation per call, not two per block
        k_buffer = torch.empty(B * H_kv * block * D, dtype=k.dtype, device=k.device)
        v_buffer = torch.empty(B * H_kv * block * E, dtype=v.dtype, device=v.device)

    def keys(k0: int, k1: int) -> tuple[torch.Tensor, torch.Tensor]:  # (BH_kv, b, D), (BH_kv, b, E)
        if pages is None:
            return kf[:, k0:k1], vf[:, k0:k1]  # views
        kb, vb = pages.gather(k, k0, k1, k_buffer), pages.gather(v, k0, k1, v_buffer)  # (B, H_kv, b, ·): its pages only
        return kb.to(dt).reshape(B * H_kv, k1 - k0, D), vb.to(dt).reshape(B * H_kv, k1 - k0, E)

    acc = torch.zeros(B * H_kv, R, E, dtype=dt, device=q.device)  # running numerator
    row_max = torch.full((B * H_kv, R, 1), float("-inf"), dtype=dt, device=q.device)
    row_sum = torch.zeros(B * H_kv, R, 1, dtype=dt, device=q.device)
    # Reused per block, so the loop allocates nothing of size R·block.
    tile = torch.empty(B * H_kv, R, block, dtype=dt, device=q.device)  # scores, then probabilities
    new_max = torch.empty_like(row_max)
    rescale = torch.empty_like(row_max)
    blocks = _Blocks(mask, n_q, n_kv, H // H_kv, block, kv_lens)
    for k0, k1, r0, r1, f0, f1 in blocks:
        kb, vb = keys(k0, k1)  # (BH_kv, b, D), (BH_kv, b, E)
        s = tile[:, : r1 - r0, : k1 - k0]  # (BH_kv, rows, b)
        torch.bmm(qs[:, r0:r1], kb.transpose(1, 2), out=s)
        _modify(score_mod, blocks.folded[r0:r1], n_q, n_kv, H, s.view(B, H_kv, r1 - r0, k1 - k0), k0)  # in place
        blocks.hide(s, k0, r0, r1, f0, f1)  # every row here sees at least one of these keys
        m, total, a, nm = row_max[:, r0:r1], row_sum[:, r0:r1], acc[:, r0:r1], new_max[:, r0:r1]
        torch.amax(s, dim=-1, keepdim=True, out=nm)
        torch.maximum(nm, m, out=nm)
        # Unequal caches: a block one sequence's row does not see yet (a window further on) is all -inf for it,
        # and -inf - -inf is NaN; subtracting 0 there leaves junk that the row's first visible block scales away.
        # (Elsewhere such a row sees no key at all: its NaN becomes the zeros of an empty row.)
        top = nm if kv_lens is None else nm.masked_fill(nm == float("-inf"), 0.0)
        torch.sub(m, top, out=rescale[:, r0:r1])
        r = rescale[:, r0:r1].exp_()  # exp(old max - new max), <= 1
        m.copy_(nm)
        s.sub_(top).clamp_(min=EXP_FLOOR).exp_()  # (BH_kv, rows, b) unnormalized probabilities
        total.mul_(r).add_(s.sum(dim=-1, keepdim=True))
        a.mul_(r).baddbmm_(s, vb)
    out = acc / row_sum  # a row no block reached (it sees no key) is 0/0
    if mask.hides_rows:
        out = out.nan_to_num_(0.0)
    return ungroup(out.reshape(B, H_kv, R, E), H).to(q.dtype), row_max + row_sum.log()


def _online_backward(q, k, v, out, lse, grad_out, mask: Mask, scale: float, block: int, score_mod: ScoreMod):
    """Blockwise gradients recomputing each tile's probabilities from the saved lse. O(N) memory.

    Two (rows, block) tiles are reused by every block, as in the forward pass (three under a soft cap, whose
    derivative 1 - tanh²(s/C) = 1 - (s'/C)² is kept from the capped scores s').
    """
    B, H, n_q, D = q.shape
    H_kv, n_kv, E = k.shape[1], k.shape[2], v.shape[-1]
    dt = lse.dtype
    qs = group_queries(q.to(dt) * scale, H_kv).reshape(B * H_kv, -1, D)  # (BH_kv, R, D)
    R = qs.shape[1]
    kf, vf = k.to(dt).reshape(B * H_kv, n_kv, D), v.to(dt).reshape(B * H_kv, n_kv, E)
    do = group_queries(grad_out.to(dt), H_kv).reshape(B * H_kv, R, E)  # (BH_kv, R, E)
    o = group_queries(out.to(dt), H_kv).reshape(B * H_kv, R, E)
    delta = (do * o).sum(-1, keepdim=True)  # (BH_kv, R, 1) = rowsum(dO∘O)
    dqs = torch.zeros_like(qs)  # gradient w.r.t. the scaled queries
    dk, dv = torch.zeros_like(kf), torch.zeros_like(vf)  # key blocks no row meets keep zero gradients
    p_tile = torch.empty(B * H_kv, R, block, dtype=dt, device=q.device)  # probabilities
    ds_tile = torch.empty_like(p_tile)  # dP, then dS
    capped = score_mod.kind == "softcap"
    cap_tile = torch.empty_like(p_tile) if capped else None  # d(capped score)/d(score)
    blocks = _Blocks(mask, n_q, n_kv, H // H_kv, block)
    for k0, k1, r0, r1, f0, f1 in blocks:
        kb, vb = kf[:, k0:k1], vf[:, k0:k1]  # (BH_kv, b, ·)
        p, ds = p_tile[:, : r1 - r0, : k1 - k0], ds_tile[:, : r1 - r0, : k1 - k0]  # (BH_kv, rows, b)
        torch.bmm(qs[:, r0:r1], kb.transpose(1, 2), out=p)
        _modify(score_mod, blocks.folded[r0:r1], n_q, n_kv, H, p.view(B, H_kv, r1 - r0, k1 - k0), k0)  # in place
        if capped:
            slope = torch.mul(p, p, out=cap_tile[:, : r1 - r0, : k1 - k0]).div_(-(score_mod.size**2)).add_(1.0)
        blocks.hide(p, k0, r0, r1, f0, f1)
        p.sub_(lse[:, r0:r1]).clamp_(min=EXP_FLOOR).exp_()  # normalized probabilities
        torch.bmm(p.transpose(1, 2), do[:, r0:r1], out=dv[:, k0:k1])  # (BH_kv, b, E)
        torch.bmm(do[:, r0:r1], vb.transpose(1, 2), out=ds)  # dP
        ds.sub_(delta[:, r0:r1]).mul_(p)  # dS = P ∘ (dP - delta), the gradient of the modified scores
        if capped:
            ds.mul_(slope)  # through the cap, to the scores
        dqs[:, r0:r1].baddbmm_(ds, kb)  # (BH_kv, rows, D)
        torch.bmm(ds.transpose(1, 2), qs[:, r0:r1], out=dk[:, k0:k1])  # (BH_kv, b, D)
    dq = ungroup((dqs * scale).reshape(B, H_kv, R, D), H).to(q.dtype)
    return dq, dk.reshape(B, H_kv, n_kv, D).to(k.dtype), dv.reshape(B, H_kv, n_kv, E).to(v.dtype)


@register("chunked-online", family="chunked", exact=True, time="O(N^2 d)", memory="O(N)", params={"block": 128},
          masks=ALL_MASKS, gqa=True, skips_masked=True, score_mods=ALL_SCORE_MODS, layouts=("contiguous", "paged"),
          ragged=True)  # fmt: skip
def chunked_online(q, k, v, *, mask: Mask, scale: float | None = None, block: int = 128, score_mod: ScoreMod = NO_MOD,
                   pages: PageTable | None = None, kv_lens: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Keys/values in blocks of ``block`` with a running max and sum (online softmax).

    q: (B, H, N_q, D); k, v: (B, H_kv, N_kv, D|D_v) -> (B, H, N_q, D_v).
    Time O(visible pairs·D) up to a block's edge: each key block meets only the
    rows that see it (half the work under causal, O(N·W·d) under sliding:W);
    memory O(N_q·G·block) for the one reused tile plus O(N·D) accumulators. A
    128-key block measured fastest on a 2-core AVX-512 CPU at N=4096 (64: 1.13x
    slower, 192: same, 256: 1.07x slower). With ``pages`` (`variants.paged`), k and v are pools of pages and
    each key block is gathered from its pages when the loop reaches it (decode: forward only). With ``kv_lens``
    (B,), sequence b reads its first kv_lens[b] keys (`variants.kv_lens`; decode: forward only): a key block
    is computed where any sequence sees it and masked per sequence.
    """
    if pages is not None or kv_lens is not None:
        refuse_gradients(q, k, v)
        return _online_forward(q, k, v, mask, softmax_scale(q, scale), block, score_mod, pages, kv_lens)[0]
    return _OnlineSoftmaxAttention.apply(q, k, v, mask, softmax_scale(q, scale), block, score_mod)
