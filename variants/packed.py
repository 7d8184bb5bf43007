"""What people run instead of a packed-document mask: documents padded to a batch, and PyTorch's nested tensors.

A packed case is one sequence of N tokens holding documents of lengths l_1 .. l_K (masks ``docs:`` and
``docs-bi:``, `variants.masks`). An exact kernel with that mask does Σ l_i² pairs (half, causal) and skips the
rest. The common practice instead:

``sdpa-padded``  every document padded to the longest, L = max l_i, and the K of them run as a batch through
                 SDPA (``is_causal`` for ``docs``: a real query never sees a padded key, which comes after it; a
                 key-padding mask for ``docs-bi``). It does K·L² pairs: the padding is work done, so its FLOPs
                 count it, and the row records the padding fraction 1 - Σ l_i / (K·L). Time O(K L² d), memory
                 O(K L d) for the padded copies (plus SDPA's own).
``sdpa-nested``  the documents as one nested jagged tensor (B·K, H, j, D) into SDPA: no padding (its values
                 are tokens-major, (B·N, H, D), so q, k and v are transposed once, a copy). This torch takes no
                 ``is_causal`` with nested query and key, so ``docs`` is `Unsupported` with torch's own reason;
                 ``docs-bi`` runs.

Both pack self-attention: N_q = N_kv (a decoding query belongs to no packed batch).
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F

from .common import made_once
from .masks import Mask
from .registry import Unsupported, register
from .work import case_mask

PACKED_MASKS = ("docs", "docs-bi")


def _lengths(q: torch.Tensor, k: torch.Tensor, mask: Mask) -> tuple[int, ...]:
    if q.shape[2] != k.shape[2]:
        raise Unsupported(f"packs self-attention: N_q ({q.shape[2]}) must equal N_kv ({k.shape[2]})")
    return mask.doc_lengths(k.shape[2])


@made_once(maxsize=8)
def _padded_index(lengths: tuple[int, ...], device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(gather (K·L,), valid (K, L) bool, scatter (N,)): token of each padded slot (0 for padding), which slots
    are real, and the padded slot of each token."""
    longest, starts = max(lengths), torch.tensor((0, *lengths[:-1]), device=device).cumsum(0)
    offset = torch.arange(longest, device=device)
    valid = offset < torch.tensor(lengths, device=device)[:, None]  # (K, L)
    gather = torch.where(valid, starts[:, None] + offset, 0).reshape(-1)  # (K·L,)
    scatter = torch.nonzero(valid.reshape(-1)).squeeze(1)  # (N,): real slots in token order
    return gather, valid, scatter


def padding_fraction(case) -> float | None:
    """1 - Σ l_i / (K · max l_i): the share of the padded batch's tokens that are padding (None unpacked)."""
    mask = case_mask(case)
    if mask.kind not in PACKED_MASKS:
        return None
    lengths = mask.doc_lengths(case.seq_len)
    return 1 - sum(lengths) / (len(lengths) * max(lengths))


def padded_flops(case) -> float:
    """FLOPs of the padded batch as run: K documents of the longest length L, L² pairs each (L(L+1)/2 causal)."""
    mask = case_mask(case)
    lengths = mask.doc_lengths(case.seq_len)
    longest = max(lengths)
    pairs = len(lengths) * (longest * (longest + 1) // 2 if mask.kind == "docs" else longest**2)
    return 4.0 * case.batch * case.heads * pairs * case.head_dim


@register("sdpa-padded", family="packed", exact=True, time="O(N^2 d)", memory="O(N)", masks=PACKED_MASKS, gqa=True,
          flops=padded_flops, padding=padding_fraction)  # fmt: skip
def sdpa_padded(q, k, v, *, mask: Mask, scale: float | None = None) -> torch.Tensor:
    """Packed documents padded to the longest and run as a batch through SDPA. (B, H, N, D) -> (B, H, N, D_v)."""
    lengths = _lengths(q, k, mask)
    gather, valid, scatter = _padded_index(lengths, str(q.device))
    K, L = valid.shape
    B, H, N, _ = q.shape

    def pad(x: torch.Tensor) -> torch.Tensor:  # (B, h, N, E) -> (B·K, h, L, E), a copy as a server makes it
        return x[:, :, gather].unflatten(2, (K, L)).transpose(1, 2).reshape(B * K, x.shape[1], L, x.shape[-1])

    keep = None if mask.kind == "docs" else valid.repeat(B, 1)[:, None, None, :]  # (B·K, 1, 1, L) key padding
    out = F.scaled_dot_product_attention(pad(q), pad(k), pad(v), attn_mask=keep, is_causal=mask.kind == "docs",
                                         scale=scale, enable_gqa=k.shape[1] != H)  # fmt: skip
    out = out.view(B, K, H, L, -1).transpose(1, 2).reshape(B, H, K * L, -1)  # (B, H, K·L, D_v)
    return out[:, :, scatter]  # (B, H, N, D_v)


class _Reasons(logging.Handler):
    """Collects what torch's nested SDPA logs about each kernel it turned down."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage().strip()
        if line and not line.endswith("because:"):
            self.lines.append(line)


# gqa=False: the spec repeats K and V to H heads (nested SDPA takes no enable_gqa). delegate_checks: what this
# torch's nested SDPA serves is its to say (it refuses is_causal today), with its own reasons.
@register("sdpa-nested", family="packed", exact=True, time="O(N^2 d)", memory="O(N)", masks=PACKED_MASKS,
          delegate_checks=True)  # fmt: skip
def sdpa_nested(q, k, v, *, mask: Mask, scale: float | None = None) -> torch.Tensor:
    """Packed documents as one nested jagged tensor into SDPA, no padding. (B, H, N, D) -> (B, H, N, D_v)."""
    lengths = _lengths(q, k, mask)
    B, H, N, _ = q.shape
    offsets = torch.tensor((0, *lengths), device=q.device).cumsum(0)
    offsets = (offsets[:-1] + N * torch.arange(B, device=q.device)[:, None]).reshape(-1)
    offsets = torch.cat([offsets, offsets.new_tensor([B * N])])  # (B·K + 1,): every batch's documents in turn

    def nest(x: torch.Tensor) -> torch.Tensor:  # (B, h, N, E) -> jagged (B·K, h, j, E)
        values = x.transpose(1, 2).contiguous().view(B * N, x.shape[1], x.shape[-1])  # tokens-major, as it wants
        return torch.nested.nested_tensor_from_jagged(values, offsets).transpose(1, 2)

    logger, reasons = logging.getLogger("torch.nested._internal.sdpa"), _Reasons()
    logger.addHandler(reasons)
    propagate, logger.propagate = logger.propagate, False  # torch's reasons become the Unsupported reason
    try:
        out = F.scaled_dot_product_attention(nest(q), nest(k), nest(v), is_causal=mask.kind == "docs",
                                             scale=scale if scale is not None else 1 / math.sqrt(q.shape[-1]))  # fmt: skip
    except RuntimeError as exc:
        raise Unsupported("; ".join(reasons.lines) or str(exc)) from None
    finally:
        logger.removeHandler(reasons)
        logger.propagate = propagate
    return out.transpose(1, 2).values().view(B, N, H, -1).transpose(1, 2)  # (B, H, N, D_v)
