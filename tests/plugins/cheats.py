"""Variants that cheat the timer, one per way (tests/test_trust.py): each must be an error, never the fastest.

Each wraps SDPA, so its first answer is right; what it does after is the cheat.
"""

import time

import torch.nn.functional as F

from variants import register

_by_id: dict = {}
_by_pointer: dict = {}
_stale = {"calls": 0, "answer": None}
_last_call = {"at": 0.0}


def _sdpa(q, k, v):
    return F.scaled_dot_product_attention(q, k, v)


@register("cheat-memo-id", family="plugin", exact=True, time="O(1)", memory="O(N d)", masks=("none",))
def memo_by_identity(q, k, v, *, mask=None, scale=None):
    """Answers once per q object: the same tensor asked again gets the cached answer."""
    key = (id(q), id(k), id(v))
    if key not in _by_id:
        _by_id[key] = _sdpa(q, k, v)
    return _by_id[key]


@register("cheat-memo-ptr", family="plugin", exact=True, time="O(1)", memory="O(N d)", masks=("none",))
def memo_by_pointer(q, k, v, *, mask=None, scale=None):
    """Answers once per data pointer."""
    key = (q.data_ptr(), k.data_ptr(), v.data_ptr())
    if key not in _by_pointer:
        _by_pointer[key] = _sdpa(q, k, v)
    return _by_pointer[key]


@register("cheat-stale", family="plugin", exact=True, time="O(1)", memory="O(N d)", masks=("none",))
def stale_after_three(q, k, v, *, mask=None, scale=None):
    """Computes its first three calls, then repeats the third answer, whatever it is asked."""
    _stale["calls"] += 1
    if _stale["calls"] <= 3 or _stale["answer"] is None or _stale["answer"].shape[:3] != q.shape[:3]:
        _stale["answer"] = _sdpa(q, k, v)
    return _stale["answer"]


@register("cheat-timed-garbage", family="plugin", exact=True, time="O(1)", memory="O(N d)", masks=("none",))
def garbage_while_timed(q, k, v, *, mask=None, scale=None):
    """Right when called at leisure; zeros when called in a tight loop (within 50 ms of its last call)."""
    now, before = time.monotonic(), _last_call["at"]
    _last_call["at"] = now
    return q.new_zeros(*q.shape[:3], v.shape[-1]) if now - before < 0.05 else _sdpa(q, k, v)


@register("cheat-alias", family="plugin", exact=False, time="O(1)", memory="O(1)", masks=("none",))
def alias_input(q, k, v, *, mask=None, scale=None):
    """Hands back its input q: no work at all."""
    return q
