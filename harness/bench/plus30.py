"""A plugin for `harness.bench.reprocheck`'s A/B test: built-in variants made 30 % slower on purpose.

Each ``<name>-plus30`` calls the built-in, then the built-in again on 30 % of
the problem, and returns the first answer: the same output for 1.3 x the
work. The quadratic ones redo 30 % of the query rows against every key (work
N_q·N_kv); the linear ones redo 30 % of queries, keys and values (work N_q +
N_kv). Not a variant anyone should use: load it with ``--plugin``.
"""

from __future__ import annotations

from variants import get_variant, register

EXTRA = 0.3
SLOWED = {"naive": False, "sdpa": False, "chunked-online": False, "linear-elu": True, "performer-64": True}


def _slowed(name: str, cut_keys: bool):
    base = get_variant(name)

    def call(q, k, v, *, mask="none", scale=None, seed=0):
        out = base(q, k, v, mask=mask, scale=scale, seed=seed)
        m = max(1, round(EXTRA * q.shape[2]))
        kv = max(1, round(EXTRA * k.shape[2])) if cut_keys else k.shape[2]
        base(q[:, :, :m], k[:, :, :kv], v[:, :, :kv], mask=mask, scale=scale, seed=seed)  # the extra work, thrown away
        return out

    register(f"{name}-plus30", family="plugin", exact=base.exact, time=base.time, memory=base.memory, masks=base.masks,
             flops=base.flops, randomized=True)(call)  # fmt: skip


for _name, _cut in SLOWED.items():
    _slowed(_name, _cut)
