"""A variant that declares a mask it refuses, and two well-behaved variants written to either contract."""

import torch

from variants import Unsupported, register


@register("test-refuses-sliding", family="test", exact=True, time="O(N^2 d)", memory="O(N^2)", masks=("sliding",))
def refuses_sliding(q, k, v, *, mask, scale=None):
    """Declares sliding windows, and serves none of them."""
    raise Unsupported("sliding windows are not implemented yet")


@register("test-causal-keyword", family="test", exact=True, time="O(N^2 d)", memory="O(N^2)")
def causal_keyword(q, k, v, *, causal=False, scale=None):
    """The older contract: causal=True/False."""
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)


@register("test-mask-keyword", family="test", exact=True, time="O(N^2 d)", memory="O(N^2)", masks=("none", "causal", "sliding"))
def mask_keyword(q, k, v, *, mask, scale=None):
    """The mask contract: a `variants.masks.Mask`, its dense matrix built on the inputs' device."""
    allowed = mask.dense(q.shape[-2], k.shape[-2], device=q.device)
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=scale)
