"""A case's calls: the timed one, a forward one for accuracy and checks, and what keeps them honest.

The timed call keeps the forward output of its latest call (``last``), so
the output a timing ends on is looked at, not only the untimed first one: a
variant that answers garbage, or a stale answer, once it is called in a
tight loop is caught (`harness.measure.contract.unlike`). `follows_inputs`
catches an answer cached by the tensors' identity: the inputs are refilled
in place with new values (the same tensors, the same data pointers) and the
answer must equal the variant's own on new tensors holding those values.
Keeping ``last`` costs one store per call; the refill, one call per case, the memory pass's own (and one more
for an approximation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from variants import get_variant

from .accuracy import measure_accuracy
from .case import Case, make_grad_output, make_inputs
from .contract import REPEAT_TOLERANCE, contract_violation, relative_difference, too_wrong, unlike
from .kv_layout import KVLayout

CHECK_ROWS = 32  # query rows an exact variant's refilled answer is checked on against float64


@dataclass(frozen=True)
class Workload:
    """``timed()`` is the call timed (forward, or forward and backward); ``forward()`` returns the forward
    output (B, H, N_q, D_v); ``inputs`` are the tensors the variant is handed (q, k, v; for a paged cache, q and
    the pools of k and v), ``logical(handed)`` turns such tensors back into contiguous q, k, v, and
    ``store(q, k, v)`` writes contiguous values into them in place; ``last[0]`` is the latest timed call's
    forward output; ``on(q, k, v)`` is the variant's forward output on other (contiguous) tensors; ``draw(seed)``
    the case's contiguous inputs drawn from another seed; ``broken(out)`` what is wrong with an output's type,
    shape, dtype or device (`harness.measure.contract`). A layer's workload (`harness.measure.layer_scope`) has
    other inputs (x, and the memory of cross-attention): its ``logical`` gives the q, k, v its attention sees, and
    ``accuracy(out, inputs, rows)`` its own error against float64 (None here: the attention's, from
    `harness.measure.accuracy`). ``kv_lens``: int64 (B,), each sequence's cache length where they differ
    (`variants.kv_lens`), handed to the variant and the reference alike."""

    timed: Callable[[], None]
    forward: Callable[[], torch.Tensor]
    inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    last: list
    on: Callable[..., torch.Tensor]
    logical: Callable[[tuple], tuple]
    store: Callable[..., None]
    draw: Callable[[int], tuple]
    broken: Callable[[Any], str | None]
    accuracy: Callable[..., Any] | None = None
    kv_lens: torch.Tensor | None = None


def workload(case: Case, inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> Workload:
    """The calls of ``case`` on ``inputs`` (the case's contiguous q, k, v; paged into pools for a paged case)."""
    spec = get_variant(case.variant)
    q, k, v = inputs
    lengths = case.cache_lengths
    kv_lens = None if lengths is None else torch.tensor(lengths, device=case.device)
    kwargs = {"mask": case.mask, "score_mod": case.score_mod, "seed": case.seed}
    kwargs |= {} if kv_lens is None else {"kv_lens": kv_lens}
    last: list = [None]
    layout = KVLayout(case.kv_layout, case.seed, lengths)
    k, v, pages = layout.store(k, v)
    inputs, kwargs = (q, k, v), {**kwargs, **({} if pages is None else {"pages": pages})}

    def on(*tensors: torch.Tensor) -> torch.Tensor:
        qq, kk, vv, paged = tensors[0], *layout.store(*tensors[1:])
        with torch.inference_mode():
            return spec(qq, kk, vv, **{**kwargs, **({} if paged is None else {"pages": paged})})

    def logical(handed: tuple) -> tuple:
        return handed if pages is None else (handed[0], pages.gather(handed[1]), pages.gather(handed[2]))

    def store(*values: torch.Tensor) -> None:
        with torch.no_grad():
            inputs[0].copy_(values[0])
            for tensor, value in zip(inputs[1:], values[1:]):
                layout.write(tensor, value, pages)

    common = {
        "inputs": inputs,
        "last": last,
        "on": on,
        "logical": logical,
        "store": store,
        "draw": lambda seed: make_inputs(case, seed=seed),
        "broken": lambda out: contract_violation(out, *inputs),
        "kv_lens": kv_lens,
    }

    if case.mode != "fwd_bwd":  # fwd, decode

        def forward() -> torch.Tensor:
            with torch.inference_mode():
                return spec(q, k, v, **kwargs)

        def timed() -> None:
            with torch.inference_mode():
                last[0] = spec(q, k, v, **kwargs)

        return Workload(timed, forward, **common)

    leaves = tuple(t.detach().requires_grad_() for t in inputs)  # views of the inputs: a refill reaches them
    grad_out = make_grad_output(case)

    def forward_backward() -> None:
        out = spec(*leaves, **kwargs)
        torch.autograd.grad(out, leaves, grad_out)
        last[0] = out.detach()

    def forward_only() -> torch.Tensor:
        with torch.no_grad():
            return spec(*leaves, **kwargs)

    return Workload(forward_backward, forward_only, **common)


def plainly(call: Callable[[], Any]) -> None:
    """Make ``call``, measuring nothing."""
    call()


def follows_inputs(
    w: Workload, case: Case, before: torch.Tensor, during: Callable[[Callable], Any] = plainly
) -> tuple[str | None, Any]:
    """Refill the inputs in place with other values and make the timed call once more; (None when the variant's
    answer follows them, else why not; what ``during`` returned).

    The same tensors (same data pointers) now hold new numbers: a variant that answers from a cache keyed by
    identity answers the old question, and one that repeats a stale answer gives ``before`` (its answer to
    the old values) again. An exact variant's new answer is held to float64 on CHECK_ROWS rows; an
    approximation's to its own answer on new tensors with the same values (not to exact attention). The
    refilled call is made through ``during(call)``: the peak-memory pass makes it under its profiler
    (`harness.measure.memory`; the same shapes, so the same peak), so one call serves both. The inputs are
    changed for good: call this last.
    """
    fresh = w.draw(case.seed + 2)
    w.store(*fresh)
    measured = during(w.timed)
    refilled = w.last[0]
    if relative_difference(refilled, before) <= REPEAT_TOLERANCE.get(before.dtype, 2e-2):
        return (
            "after its inputs were refilled in place with other values, the output stayed the same: "
            "it did not follow its inputs (a stale or cached answer?)"
        ), measured
    if get_variant(case.variant).exact:  # held to float64 on a few rows: cheaper than another call
        if w.accuracy is not None:
            error = w.accuracy(refilled, fresh, CHECK_ROWS).rel_err
        else:
            error = measure_accuracy(refilled, *fresh, mask=case.mask, score_mod=case.score_mod, max_rows=CHECK_ROWS,
                                     seed=case.seed, kv_lens=w.kv_lens).rel_err  # fmt: skip
        wrong = too_wrong(error, case.torch_dtype, True, None)
        why = f"after its inputs were refilled in place, its {wrong}: it did not follow its inputs" if wrong else None
        return why, measured
    expected = w.on(*(t.clone() for t in fresh))
    wrong = unlike(refilled, expected, "after its inputs were refilled in place, the output", "a fresh call's on equal values")
    return (f"{wrong}: it did not follow its inputs (an answer cached by identity?)" if wrong else None), measured
