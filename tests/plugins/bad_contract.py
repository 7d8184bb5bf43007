"""Variants that break the contract in the three usual ways; one good one beside them."""

from variants import register


@register("test-bad-signature", family="plugin", exact=False, time="O(N)", memory="O(N)")
def bad_signature(q, k, v):
    """Takes no causal/scale keywords."""
    return v


@register("test-bad-shape", family="plugin", exact=False, time="O(N)", memory="O(N)")
def bad_shape(q, k, v, *, causal=False, scale=None):
    """Returns one column too few."""
    return v[..., :-1]


@register("test-bad-dtype", family="plugin", exact=False, time="O(N)", memory="O(N)")
def bad_dtype(q, k, v, *, causal=False, scale=None):
    """Returns float64 for float32 inputs."""
    return v[:, :, : q.shape[2]].double()


@register("test-fine", family="plugin", exact=False, time="O(N^2 d)", memory="O(N^2)")
def fine(q, k, v, *, causal=False, scale=None):
    """Softmax attention at a tenth of the temperature: wrong, but within the contract."""
    s = (q @ k.transpose(-1, -2)) * 0.1  # (B, H, N_q, N_kv)
    if causal:
        s = s.masked_fill(s.new_ones(s.shape[-2:], dtype=bool).triu(1), float("-inf"))
    return s.softmax(-1) @ v
