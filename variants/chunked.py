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
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from .common import future_mask, softmax_scale
from .registry import register


def _query_block(q_blk, k, v, start: int, causal: bool) -> torch.Tensor:
    """Exact attention for the queries start..start+n in q_blk (B, H, n, D), already scaled.

    Out of place, so autograd (through `checkpoint`) can differentiate it.
    """
    scores = q_blk @ k.transpose(-1, -2)  # (B, H, n, N_kv)
    if causal:
        mask = future_mask(q_blk.shape[2], k.shape[2], offset=start, device=q_blk.device)  # (n, N_kv)
        scores = scores.masked_fill(mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v  # (B, H, n, D_v)


def _query_block_into(out, tile, q_blk, k, v, start: int, causal: bool) -> None:
    """`_query_block` without allocating: scores and softmax in ``tile``, the result in ``out``."""
    n, n_kv = q_blk.shape[2], k.shape[2]
    scores = tile[:, :, :n, :n_kv]  # (B, H, n, N_kv), a view of the reused buffer
    torch.matmul(q_blk, k.transpose(-1, -2), out=scores)
    if causal:
        scores.masked_fill_(future_mask(n, n_kv, offset=start, device=q_blk.device), float("-inf"))
    scores.sub_(scores.amax(dim=-1, keepdim=True)).exp_()
    scores.div_(scores.sum(dim=-1, keepdim=True))
    torch.matmul(scores, v, out=out)


@register(
    "chunked-query",
    family="chunked",
    exact=True,
    time="O(N^2 d)",
    memory="O(N)",
    params={"block": 128},
)
def chunked_query(q, k, v, *, causal: bool = False, scale: float | None = None, block: int = 128) -> torch.Tensor:
    """Queries in blocks of ``block`` rows, each against all keys.

    q, k: (B, H, N_q|N_kv, D); v: (B, H, N_kv, D_v) -> (B, H, N_q, D_v).
    Time O(N_q·N_kv·D); memory O(block·N_kv) beyond the output. Without
    autograd one (B, H, block, N_kv) tile is reused by every block: the CPU
    allocator does not cache, and a fresh tile per block costs page faults
    (measured 2x slower at N=4096). With autograd each block is checkpointed.
    """
    B, H, N, D = q.shape
    q = q * softmax_scale(q, scale)  # (B, H, N_q, D): a scaled copy, the input is untouched
    out = q.new_empty(B, H, N, v.shape[-1])  # (B, H, N_q, D_v)
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    tile = None if needs_grad else q.new_empty(B, H, min(block, N), k.shape[2])  # (B, H, block, N_kv)
    for start in range(0, N, block):
        q_blk = q[:, :, start : start + block]  # (B, H, n, D)
        # Under causal masking, keys past this block's last query are never seen.
        stop = min(k.shape[2], start + q_blk.shape[2]) if causal else k.shape[2]
        args = (q_blk, k[:, :, :stop], v[:, :, :stop], start, causal)
        if needs_grad:
            out[:, :, start : start + block] = checkpoint(_query_block, *args, use_reentrant=False)
        else:
            _query_block_into(out[:, :, start : start + block], tile, *args)
    return out


class _OnlineSoftmaxAttention(torch.autograd.Function):
    """Online-softmax attention with a recomputing (FlashAttention-style) backward."""

    @staticmethod
    def forward(ctx, q, k, v, causal: bool, scale: float, block: int):
        out, lse = _online_forward(q, k, v, causal, scale, block)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.causal, ctx.scale, ctx.block = causal, scale, block
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = _online_backward(q, k, v, out, lse, grad_out, ctx.causal, ctx.scale, ctx.block)
        return dq, dk, dv, None, None, None


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # Half-precision inputs keep fp32 tiles and accumulators, as fused kernels do.
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _online_forward(q, k, v, causal: bool, scale: float, block: int):
    """Returns out (B, H, N_q, D_v) in q's dtype and lse (B·H, N_q, 1) in fp32/fp64."""
    B, H, N, D = q.shape
    M, E = k.shape[2], v.shape[-1]
    dt = _compute_dtype(q.dtype)
    qs = (q.to(dt) * scale).reshape(B * H, N, D)  # (BH, N, D), scaled copy
    kf = k.to(dt).reshape(B * H, M, D)  # (BH, M, D)
    vf = v.to(dt).reshape(B * H, M, E)  # (BH, M, E)
    acc = torch.zeros(B * H, N, E, dtype=dt, device=q.device)  # running numerator
    row_max = torch.full((B * H, N, 1), float("-inf"), dtype=dt, device=q.device)
    row_sum = torch.zeros(B * H, N, 1, dtype=dt, device=q.device)
    # Reused per block, so the loop allocates nothing of size N·block.
    tile = torch.empty(B * H, N, block, dtype=dt, device=q.device)  # scores, then probabilities
    new_max = torch.empty_like(row_max)
    rescale = torch.empty_like(row_max)
    diagonal = future_mask(block, block, device=q.device) if causal else None  # (block, block)
    for start in range(0, M, block):
        first = start if causal else 0  # under causal, queries before `start` see none of these keys
        if first >= N:
            break
        kb, vb = kf[:, start : start + block], vf[:, start : start + block]  # (BH, b, D), (BH, b, E)
        rows, b = N - first, kb.shape[1]
        s = tile[:, :rows, :b]  # (BH, rows, b)
        torch.bmm(qs[:, first:], kb.transpose(1, 2), out=s)
        if causal:  # only the first b rows of this slice reach past the diagonal
            s[:, :b].masked_fill_(diagonal[: min(b, rows), :b], float("-inf"))
        m, total, a = row_max[:, first:], row_sum[:, first:], acc[:, first:]
        torch.amax(s, dim=-1, keepdim=True, out=new_max[:, first:])
        torch.maximum(new_max[:, first:], m, out=new_max[:, first:])
        torch.sub(m, new_max[:, first:], out=rescale[:, first:])
        r = rescale[:, first:].exp_()  # exp(old max - new max), <= 1
        m.copy_(new_max[:, first:])
        s.sub_(m).exp_()  # (BH, rows, b) unnormalized probabilities
        total.mul_(r).add_(s.sum(dim=-1, keepdim=True))
        a.mul_(r).baddbmm_(s, vb)
    out = (acc / row_sum).reshape(B, H, N, E).to(q.dtype)
    return out, row_max + row_sum.log()


def _online_backward(q, k, v, out, lse, grad_out, causal: bool, scale: float, block: int):
    """Blockwise gradients recomputing each tile's probabilities from the saved lse. O(N) memory.

    Two (rows, block) tiles are reused by every block, as in the forward pass.
    """
    B, H, N, D = q.shape
    M, E = k.shape[2], v.shape[-1]
    dt = lse.dtype
    qs = (q.to(dt) * scale).reshape(B * H, N, D)  # (BH, N, D)
    kf, vf = k.to(dt).reshape(B * H, M, D), v.to(dt).reshape(B * H, M, E)
    do = grad_out.to(dt).reshape(B * H, N, E)  # (BH, N, E)
    delta = (do * out.to(dt).reshape(B * H, N, E)).sum(-1, keepdim=True)  # (BH, N, 1) = rowsum(dO∘O)
    dqs = torch.zeros_like(qs)  # gradient w.r.t. the scaled queries
    dk, dv = torch.empty_like(kf), torch.empty_like(vf)
    p_tile = torch.empty(B * H, N, block, dtype=dt, device=q.device)  # probabilities
    ds_tile = torch.empty_like(p_tile)  # dP, then dS
    diagonal = future_mask(block, block, device=q.device) if causal else None
    for start in range(0, M, block):
        first = start if causal else 0
        kb, vb = kf[:, start : start + block], vf[:, start : start + block]  # (BH, b, ·)
        b = kb.shape[1]
        if first >= N:  # no query sees these keys
            dk[:, start : start + b].zero_()
            dv[:, start : start + b].zero_()
            continue
        rows = N - first
        p, ds = p_tile[:, :rows, :b], ds_tile[:, :rows, :b]  # (BH, rows, b)
        torch.bmm(qs[:, first:], kb.transpose(1, 2), out=p)
        if causal:
            p[:, :b].masked_fill_(diagonal[: min(b, rows), :b], float("-inf"))
        p.sub_(lse[:, first:]).exp_()  # normalized probabilities
        torch.bmm(p.transpose(1, 2), do[:, first:], out=dv[:, start : start + b])  # (BH, b, E)
        torch.bmm(do[:, first:], vb.transpose(1, 2), out=ds)  # dP
        ds.sub_(delta[:, first:]).mul_(p)  # dS = P ∘ (dP - delta)
        dqs[:, first:].baddbmm_(ds, kb)  # (BH, rows, D)
        torch.bmm(ds.transpose(1, 2), qs[:, first:], out=dk[:, start : start + b])  # (BH, b, D)
    dq = (dqs * scale).reshape(B, H, N, D).to(q.dtype)
    return dq, dk.reshape(B, H, M, D).to(k.dtype), dv.reshape(B, H, M, E).to(v.dtype)


@register(
    "chunked-online",
    family="chunked",
    exact=True,
    time="O(N^2 d)",
    memory="O(N)",
    params={"block": 128},
)
def chunked_online(q, k, v, *, causal: bool = False, scale: float | None = None, block: int = 128) -> torch.Tensor:
    """Keys/values in blocks of ``block`` with a running max and sum (online softmax).

    q, k: (B, H, N_q|N_kv, D); v: (B, H, N_kv, D_v) -> (B, H, N_q, D_v).
    Time O(N_q·N_kv·D), halved under causal masking (each key block only meets
    the queries at or after it); memory O(N_q·block) for the one reused tile
    plus O(N·D) accumulators. A 128-key block measured fastest on a 2-core
    AVX-512 CPU at N=4096 (64: 1.13x slower, 192: same, 256: 1.07x slower).
    """
    return _OnlineSoftmaxAttention.apply(q, k, v, causal, softmax_scale(q, scale), block)
