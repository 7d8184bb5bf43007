"""A plugin that registers a name the project already has."""

from variants import register


@register("naive", family="plugin", exact=True, time="O(N^2 d)", memory="O(N^2)")
def naive_again(q, k, v, *, causal=False, scale=None):
    return v
