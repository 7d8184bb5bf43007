"""Variants that declare caches of unequal length (``ragged=True``), as a user would write them: one honours each
sequence's length, one reads every slot of the padded batch."""

import torch

from variants import register


def _attend(q, k, v, scale):
    """Softmax attention, every key visible. q: (1, H, N_q, D); k, v: (1, H, N, D|D_v) -> (1, H, N_q, D_v)."""
    return torch.softmax(q @ k.transpose(-1, -2) * (q.shape[-1] ** -0.5 if scale is None else scale), -1) @ v


@register("test-honors-lengths", family="plugin", exact=True, time="O(N^2 d)", memory="O(N^2)", masks=("none",),
          ragged=True)  # fmt: skip
def honors(q, k, v, *, mask=None, scale=None, kv_lens=None):
    """Sequence b against its first kv_lens[b] keys, one at a time. O(B·N_q·N·D)."""
    if kv_lens is None:
        return _attend(q, k, v, scale)
    return torch.cat(
        [_attend(q[b : b + 1], k[b : b + 1, :, :n], v[b : b + 1, :, :n], scale) for b, n in enumerate(kv_lens.tolist())]
    )


@register("test-ignores-lengths", family="plugin", exact=True, time="O(N^2 d)", memory="O(N^2)", masks=("none",),
          ragged=True)  # fmt: skip
def ignores(q, k, v, *, mask=None, scale=None, kv_lens=None):
    """Every slot of the padded batch, whatever each sequence holds: wrong for all but the longest."""
    return _attend(q, k, v, scale)
