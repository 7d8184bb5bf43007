"""xformers ``memory_efficient_attention``, dispatching to its fused CUDA kernels.

xformers takes (B, N, H, D) tensors; the (B, H, N, D) inputs are passed as
transposed views (the last dimension stays contiguous, which is all its
kernels require) and the output is transposed back, so no copy is timed.
xformers has no CPU kernels: there, and wherever its dispatcher finds no
operator, the variant raises `Unsupported` carrying xformers' own reasons.
"""

from __future__ import annotations

import logging
import re

import torch

from .masks import CAUSAL, NONE, Mask
from .registry import Unsupported, register


def _xformers_ops():
    """Import xformers.ops quietly (it logs a warning when its C++ extensions are absent)."""
    logger = logging.getLogger("xformers")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        import xformers.ops as xops
    except ImportError as exc:
        raise Unsupported(f"xformers is not installed ({exc}); pip install 'attnbench[xformers]'") from None
    finally:
        logger.setLevel(level)
    return xops


def _condense(message: str) -> str:
    """xformers' multi-line 'No operator found' message -> one line of reasons per operator."""
    lines = message.splitlines()
    reasons, current = [], None
    for line in lines:
        header = re.match(r"\s*`(\w+)` is not supported because:", line)
        if header:
            current = header.group(1)
            continue
        if current and line.startswith("    ") and line.strip():
            reasons.append(f"{current}: {line.strip()}")
    return "; ".join(reasons) if reasons else " ".join(line.strip() for line in lines if line.strip())


@register(
    "xformers",
    family="xformers",
    exact=True,
    time="O(N^2 d)",
    memory="O(N)",
    devices=("cuda",),
    dtypes=("float32", "bfloat16", "float16"),
    requires="xformers",
    delegate_checks=True,
)
def xformers_attention(q, k, v, *, mask: Mask = NONE, scale: float | None = None) -> torch.Tensor:
    """``xformers.ops.memory_efficient_attention``; causal through its LowerTriangularMask.

    q, k: (B, H, N_q|N_kv, D); v: (B, H, N_kv, D_v) -> (B, H, N_q, D_v).
    Time O(N^2 d); memory O(N) (a fused kernel, no N x N tensor).
    """
    xops = _xformers_ops()
    bias = xops.LowerTriangularMask() if mask == CAUSAL else None
    try:
        out = xops.memory_efficient_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_bias=bias, scale=scale
        )  # (B, N_q, H, D_v)
    except NotImplementedError as exc:
        raise Unsupported(f"xformers cannot run this case: {_condense(str(exc))}") from None
    return out.transpose(1, 2)  # (B, H, N_q, D_v)
