"""The contract checks every variant must pass, runnable on one variant in seconds.

    attnbench check NAME [--plugin P]      or      harness.check_variant(NAME)

The registry-parametrized test suite asserts the same functions, so a plugin
author sees exactly what the project's own variants are held to:

- contract: the call accepts (q, k, v, mask=, scale=) and returns (B, H, N_q, D_v)
  in q's dtype and device, finite;
- input-preserving: q, k, v unchanged, in value and in version counter;
- deterministic: the same inputs (and seed) give the same output;
- exact variants: within dtype tolerance of float64 attention (fp32 1e-5,
  bf16 2e-2), causal and not, N_q != N_kv where supported; under every mask
  they declare, with grouped-query heads, including queries that see no key,
  and every score modification they declare under each of those masks
  (`harness.verify.dimensions`);
- backward: exact variants' gradients within 1e-4 of float64 gradients;
  approximations' gradients finite;
- accuracy (approximations): finite, and its error against float64 attention
  -- under the variant's declared ``reference`` mask, if any -- reported at
  N = 1024 and at N_q != N_kv, lengths past the usual 128/256 blocks and
  windows, where a windowed or blocked approximation's logic shows.
"""

from __future__ import annotations

import itertools

import torch

from variants import Unsupported, VariantSpec, get_variant
from variants.masks import CAUSAL, NONE, Mask
from variants.score_mods import NO_MOD, ScoreMod

from ..measure.accuracy import relative_error
from ..measure.case import seeded_qkv
from ..measure.contract import contract_violation
from ..measure.reference import reference_attention
from .dimensions import check_kv_lens, check_mask, check_masks, check_paged, check_score_mods
from .yardstick import GRAD_TOLERANCE, TOLERANCE, CheckResult, exact_error


def basic_masks(spec: VariantSpec, n_kv: int) -> list[Mask]:
    """The masks the checks below run under: none and causal, or for a variant serving neither (packed
    documents) each mask it declares, as `check_mask` spells it for ``n_kv`` keys."""
    if {"none", "causal"} & set(spec.masks):
        return [NONE, CAUSAL]
    return [check_mask(kind, n_kv) for kind in spec.masks]


def check_contract(spec: VariantSpec, *, n_q: int = 33, n_kv: int = 47, d: int = 16, d_v: int = 8,
                   mask: Mask | None = None, device: str = "cpu") -> CheckResult:  # fmt: skip
    """Shape, dtype, device, finiteness; inputs untouched. At N_q != N_kv, or N_q = N_kv for a variant that
    serves self-attention only (packed documents)."""
    refusals = []
    for each, rows in itertools.product(basic_masks(spec, n_kv) if mask is None else [mask], (n_q, n_kv)):
        q, k, v = seeded_qkv(rows, n_kv, d=d, d_v=d_v, device=device)
        before = [(t.clone(), t._version) for t in (q, k, v)]
        try:
            out = spec(q, k, v, mask=each)
            break
        except Unsupported as exc:
            refusals.append(str(exc))
        except TypeError as exc:
            return CheckResult("contract", False, f"the call (q, k, v, mask=..., scale=...) failed: {exc}")
    else:
        return CheckResult("contract", None, refusals[0])
    problem = contract_violation(out, q, k, v)
    if problem:
        return CheckResult("contract", False, problem)
    if not torch.isfinite(out).all():
        return CheckResult("contract", False, "output has NaN or Inf")
    for (copy, version), t, name in zip(before, (q, k, v), "qkv"):
        if not torch.equal(copy, t) or t._version != version:
            return CheckResult("contract", False, f"modified its input {name}")
    return CheckResult("contract", True, f"shape {tuple(out.shape)}, dtype and device kept, finite, inputs untouched")


def check_deterministic(spec: VariantSpec, *, n: int = 64, device: str = "cpu") -> CheckResult:
    q, k, v = seeded_qkv(n, device=device)
    refusals = []
    for mask in basic_masks(spec, n):
        try:
            first, second = spec(q, k, v, seed=3, mask=mask), spec(q, k, v, seed=3, mask=mask)
            break
        except Unsupported as exc:
            refusals.append(str(exc))
    else:
        return CheckResult("deterministic", None, refusals[0])
    if torch.equal(first, second):
        return CheckResult("deterministic", True, "identical output for identical inputs and seed")
    return CheckResult("deterministic", False, f"two calls differ by {relative_error(first, second):.2e} (relative)")


# (N_q, N_kv, D_v): tiny, past the usual 128/256 block sizes and 512 windows, N_q != N_kv both ways, D_v != D.
EXACT_SHAPES = [(7, 7, None), (257, 257, None), (100, 160, None), (300, 517, None), (517, 300, None), (64, 64, 24),
                (1030, 1030, None)]  # fmt: skip


def _case_label(dtype: torch.dtype, n_q: int, n_kv: int, d_v: int | None, mask: Mask) -> str:
    dv = f" D_v={d_v}" if d_v else ""
    return f"{str(dtype).removeprefix('torch.')} N_q={n_q} N_kv={n_kv}{dv}{'' if mask == NONE else ' ' + mask.spec}"


def check_exact(spec: VariantSpec, *, device: str = "cpu") -> CheckResult:
    """Exact variants within dtype tolerance at several shapes, causal and not; a failure names its case."""
    worst: dict[str, float] = {}
    skipped, failures, misaligned_only = [], [], True
    for dtype in (torch.float32, torch.bfloat16):
        for n_q, n_kv, d_v in EXACT_SHAPES:
            for mask in basic_masks(spec, n_kv):
                try:
                    err = exact_error(spec, n_q=n_q, n_kv=n_kv, d_v=d_v, mask=mask, dtype=dtype, device=device)
                except Unsupported as exc:
                    skipped.append(str(exc))
                    continue
                key = str(dtype).removeprefix("torch.")
                worst[key] = max(worst.get(key, 0.0), err)
                if not err <= TOLERANCE[dtype]:  # NaN fails too
                    failures.append(f"{_case_label(dtype, n_q, n_kv, d_v, mask)}: {err:.1e} > {TOLERANCE[dtype]:.0e}")
                    misaligned_only &= mask == CAUSAL and n_q != n_kv
    if not worst:
        return CheckResult("exact", None, skipped[0] if skipped else "no case ran")
    if failures:
        more = f" (and {len(failures) - 3} more)" if len(failures) > 3 else ""
        # Non-causal and square causal cases pass: the mask is aligned to the other corner.
        hint = "; only causal cases with N_q != N_kv fail: is the mask aligned top-left (j <= i)?" if misaligned_only else ""
        return CheckResult("exact", False, "over tolerance: " + "; ".join(failures[:3]) + more + hint)
    return CheckResult("exact", True, "largest relative error " + ", ".join(f"{k} {e:.1e}" for k, e in worst.items()))


def gradient_error(spec: VariantSpec, *, n_q: int, n_kv: int, mask: Mask, device: str = "cpu",
                   score_mod: ScoreMod = NO_MOD, heads: int = 2, heads_kv: int | None = None) -> dict[str, float]:  # fmt: skip
    """Relative error of dq, dk, dv against float64 autograd through exact attention."""
    q, k, v = seeded_qkv(n_q, n_kv, heads=heads, heads_kv=heads_kv, d=32, device=device, seed=5, scale=1.5)
    grad_out = seeded_qkv(n_q, heads=heads, d=32, device=device, seed=6)[0]
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    grads = torch.autograd.grad(spec(*leaves, mask=mask, score_mod=score_mod), leaves, grad_out)
    exact = [t.detach().double().requires_grad_() for t in (q, k, v)]
    ref_grads = torch.autograd.grad(reference_attention(*exact, mask=mask, score_mod=score_mod), exact, grad_out.double())
    return {f"d{name}": relative_error(g, r) for name, g, r in zip("qkv", grads, ref_grads)}


def check_backward(spec: VariantSpec, *, device: str = "cpu") -> CheckResult:
    """Gradients against float64 (exact variants) or finite (approximations), each after a forward-only call of
    the same shape under ``torch.inference_mode``, as a sweep's worker makes one before a ``fwd_bwd`` case:
    whatever the variant caches then (a projection, a block mask) must serve the backward."""
    if not spec.backward:
        return CheckResult("backward", None, f"{spec.name} declares no backward pass")
    try:
        if spec.exact:
            worst, refusals = None, []
            for n_q, n_kv in ((65, 65), (65, 130), (130, 65)):
                for mask in basic_masks(spec, n_kv):
                    try:
                        _inference_call(spec, n_q, n_kv, device, mask=mask)
                        errors = gradient_error(spec, n_q=n_q, n_kv=n_kv, mask=mask, device=device).values()
                    except Unsupported as exc:  # a shape or mask it does not serve (another may)
                        refusals.append(exc)
                        continue
                    worst = max(worst or 0.0, *errors)
            if worst is None:
                raise refusals[0]
            ok = worst <= GRAD_TOLERANCE
            return CheckResult("backward", ok, f"largest gradient error {worst:.1e} (tolerance {GRAD_TOLERANCE:.0e})")
        _inference_call(spec, 97, 97, device)
        leaves = [t.requires_grad_() for t in seeded_qkv(97, device=device)]
        spec(*leaves).square().sum().backward()
        finite = all(t.grad is not None and torch.isfinite(t.grad).all() for t in leaves)
        return CheckResult("backward", finite, "gradients finite" if finite else "a gradient is missing or not finite")
    except Unsupported as exc:
        return CheckResult("backward", None, str(exc))


def _inference_call(spec: VariantSpec, n_q: int, n_kv: int, device: str, **kwargs) -> None:
    with torch.inference_mode():
        spec(*seeded_qkv(n_q, n_kv, device=device), **kwargs)


# (N_q, N_kv): past the usual block (128, 256) and window sizes, square and not.
ACCURACY_SHAPES = [(1024, 1024), (300, 517)]


def check_accuracy(spec: VariantSpec, *, device: str = "cpu") -> CheckResult:
    """An approximation's error against float64 at long shapes (under its declared reference mask): finite,
    reported, and within its declared ``tolerance`` if it has one."""
    against = f"exact attention under {spec.reference.spec}" if spec.reference else "exact attention"
    errors: dict[str, float] = {}
    for n_q, n_kv in ACCURACY_SHAPES:
        try:
            q, k, v = seeded_qkv(n_q, n_kv, heads=2, d=64, device=device, seed=7, scale=2.0)
            out = spec(q, k, v)
        except Unsupported as exc:
            return CheckResult("accuracy", None, str(exc))
        if not torch.isfinite(out).all():
            return CheckResult("accuracy", False, f"N_q={n_q} N_kv={n_kv}: output has NaN or Inf")
        errors[f"N_q={n_q} N_kv={n_kv}"] = relative_error(out, reference_attention(q, k, v, mask=spec.reference))
    listed = ", ".join(f"{err:.1e} at {shape}" for shape, err in errors.items())
    if spec.tolerance is not None and not max(errors.values()) <= spec.tolerance:  # NaN fails too
        return CheckResult("accuracy", False, f"over its tolerance {spec.tolerance:.0e} against {against}: {listed}")
    judged = f" (tolerance {spec.tolerance:.0e})" if spec.tolerance is not None else ""
    return CheckResult("accuracy", True, f"relative error against {against}: {listed}{judged}")


CHECKS = {
    "contract": lambda spec, device: check_contract(spec, device=device),
    "contract (causal)": lambda spec, device: check_contract(spec, mask=CAUSAL, device=device),
    "deterministic": lambda spec, device: check_deterministic(spec, device=device),
    "exact": lambda spec, device: check_exact(spec, device=device),
    "masks and GQA": lambda spec, device: check_masks(spec, device=device),
    "score modifications": lambda spec, device: check_score_mods(spec, device=device),
    "backward": lambda spec, device: check_backward(spec, device=device),
    "paged KV cache": lambda spec, device: check_paged(spec, device=device),
    "unequal KV lengths": lambda spec, device: check_kv_lens(spec, device=device),
    "accuracy": lambda spec, device: check_accuracy(spec, device=device),
}


def checks_for(spec: VariantSpec) -> list[str]:
    """The names of the checks that apply to ``spec`` (exact tolerances only for exact variants; the score
    modifications only where it declares one; the paged cache and unequal lengths only where it reads them)."""
    exact_only = ("exact", "masks and GQA", "score modifications", "paged KV cache", "unequal KV lengths")
    approximate_only = ("accuracy",)
    left_out = (
        (approximate_only if spec.exact else exact_only)
        + (("score modifications",) if spec.score_mods == ("none",) else ())
        + (("paged KV cache",) if "paged" not in spec.layouts else ())
        + (("unequal KV lengths",) if not spec.ragged else ())
    )
    return [name for name in CHECKS if name not in left_out]


def run_check(variant: str, check: str, *, device: str = "cpu") -> CheckResult:
    """One check on one variant; whatever the variant raises is that check's failure, not a traceback."""
    spec = get_variant(variant)
    try:
        result = CHECKS[check](spec, device)
    except Exception as exc:  # a misbehaving variant fails its check; the others still run
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        return CheckResult(check, False, f"raised {type(exc).__name__}: {first}")
    return CheckResult(check, result.passed, result.detail)


def check_variant(name: str, *, device: str = "cpu") -> list[CheckResult]:
    """Run every check on one registered variant in this process; `KeyError` for an unknown name.

    ``attnbench check`` runs the same checks each in a worker process
    (`harness.run.isolated.run_checks`), so a variant that kills its process cannot hide a result.
    """
    spec = get_variant(name)
    return [run_check(name, check, device=device) for check in checks_for(spec)]


def verdict(name: str, device: str, results: list[dict]) -> tuple[bool, list[str]]:
    """``attnbench check``'s verdict and output: whether it passed (at least one check ran and none failed or
    could not run), and a line per check (as `CheckResult` dicts) followed by the verdict in words."""
    marks = {True: "pass", False: "FAIL", None: "n/a "}
    lines = [f"{marks[r['passed']]}  {r['name']:20} {r['detail']}" for r in results]
    failed = [r["name"] for r in results if r["passed"] is False]
    passed = [r["name"] for r in results if r["passed"]]
    if failed:
        lines.append(f"{name}: {len(failed)} check(s) failed or could not run: {', '.join(failed)}")
    elif not passed:
        lines.append(f"{name}: no check applies on {device}; nothing was verified")
    else:
        lines.append(f"{name}: every applicable check passed ({len(passed)} of {len(results)} ran)")
    return bool(passed) and not failed, lines
