"""What a variant's output and inputs must look like after a call: the contract, as predicates.

Each function returns a one-line description of the breach, or None. The
measurement refuses to time a call that breaks them (its row is an
``error`` saying which), and `harness.verify.checks` asserts the same ones.
"""

from __future__ import annotations

import torch


def contract_violation(out, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> str | None:
    """What is wrong with the type, shape (B, H, N_q, D_v), dtype or device of ``out``, or None."""
    expected = (*q.shape[:3], v.shape[-1])
    if not isinstance(out, torch.Tensor):
        return f"returned {type(out).__name__}, not a tensor"
    if tuple(out.shape) != expected:
        return f"returned shape {tuple(out.shape)}, expected {expected}"
    if out.dtype != q.dtype or out.device != q.device:
        return f"returned {out.dtype} on {out.device}, expected {q.dtype} on {q.device}"
    return None


def non_finite(out: torch.Tensor) -> str | None:
    """'non-finite output (k of n elements)', or None when every element is finite.

    The inputs are finite Gaussians of a bounded scale, so their exact
    attention is finite: a NaN or Inf is the variant's, never the reference's.
    """
    bad = int((~torch.isfinite(out)).sum())
    return f"non-finite output ({bad} of {out.numel()} elements)" if bad else None


def input_damage(inputs: tuple[torch.Tensor, ...], pristine: tuple[torch.Tensor, ...]) -> str | None:
    """'modified its input k' for the first of q, k, v that no longer equals its pristine copy, or None."""
    for name, tensor, copy in zip("qkv", inputs, pristine):
        if not torch.equal(tensor, copy):
            return f"modified its input {name}"
    return None


# How far two calls of one variant on equal inputs may differ (relative Frobenius): a reduction's order may
# change with threads, never more. bf16/fp16 round each output element to 8 or 11 bits.
REPEAT_TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-4, torch.bfloat16: 2e-2, torch.float16: 2e-2}


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b||_F / ||b||_F in float64 (the absolute norm when b is zero); inf when either is not finite."""
    a, b = a.detach().double(), b.detach().double()
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        return float("inf")
    norm = b.norm().item()
    return (a - b).norm().item() / (norm if norm > 0 else 1.0)


def unlike(later, first: torch.Tensor, what: str, against: str = "the first call's") -> str | None:
    """'<what> differs from <against> (relative difference X)' when two calls on equal values disagree
    beyond REPEAT_TOLERANCE, or None. Non-finite output, or another shape, always disagrees."""
    if not isinstance(later, torch.Tensor) or later.shape != first.shape:
        return f"{what} is not even shaped like {against}"
    diff = relative_difference(later, first)
    if diff <= REPEAT_TOLERANCE.get(first.dtype, 2e-2):
        return None
    return f"{what} differs from {against} (relative difference {diff:.2g})"


def aliases_input(out: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> str | None:
    """'returned (a view of) its input q' when ``out`` shares memory with one of q, k, v, or None: an
    answer is computed, not handed back."""
    storage = out.untyped_storage().data_ptr()
    for name, tensor in zip("qkv", inputs):
        if tensor.untyped_storage().data_ptr() == storage:
            return f"returned (a view of) its input {name}"
    return None


# An exact variant's largest relative error against float64 before its row is an error: fp32 errors here are
# 1e-6 and below, bf16's 1.1e-2 (probabilities rounded to bf16); each bound leaves a margin of 4x or more.
EXACT_TOLERANCE = {torch.float64: 1e-8, torch.float32: 1e-4, torch.bfloat16: 5e-2, torch.float16: 1e-2}


def too_wrong(rel_err: float, dtype: torch.dtype, exact: bool, declared: float | None) -> str | None:
    """Why an error against float64 is too large for an ``ok`` row (an exact variant beyond its dtype's
    EXACT_TOLERANCE, an approximation beyond the ``tolerance=`` it declares), or None."""
    bound = EXACT_TOLERANCE.get(dtype, 5e-2) if exact else declared
    if bound is None or rel_err <= bound:  # NaN is caught earlier, as non-finite output
        return None
    kind = f"an exact variant in {str(dtype).removeprefix('torch.')}" if exact else "its declared tolerance"
    return f"relative error {rel_err:.2g} against float64 is beyond {bound:.0e} ({kind})"
