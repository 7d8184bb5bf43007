"""The checks of a variant's workload dimensions: every mask and every score modification it declares.

An exact variant must serve what it declares, within fp32 tolerance of float64, with 4 query heads over 2 key
heads, at square shapes, at N_q != N_kv both ways and at a single decoding query.
"""

from __future__ import annotations

import itertools

import torch

from variants import Unsupported, VariantSpec
from variants.masks import CAUSAL, NONE, PACKED, Mask
from variants.score_mods import ScoreMod

from .yardstick import TOLERANCE, CheckResult, exact_error

MASK_SPECS = {"none": NONE, "causal": CAUSAL, "causal-br": Mask("causal-br"), "sliding": Mask("sliding", 16),
              "document": Mask("document", 3), "prefix": Mask("prefix", 20), "docs": Mask("docs", 3),
              "docs-bi": Mask("docs-bi", 3)}  # fmt: skip
# Square; N_q != N_kv both ways (N_q > N_kv leaves the first queries no key under bottom-right masks); decode.
MASK_SHAPES = [(64, 64), (300, 517), (517, 300), (1, 300)]


def paging(spec: VariantSpec) -> dict:
    """How a check hands a variant its K and V: as they are, or, to one that reads only a paged cache, in pages."""
    return {} if "contiguous" in spec.layouts else {"page_size": 16}


def check_mask(kind: str, n_kv: int) -> Mask:
    """The mask a check runs for ``kind`` over ``n_kv`` keys: `MASK_SPECS`, except that packed documents are
    lengths 1, 7 and the rest (a one-token document, a short one and a long one), or drawn below 9 keys."""
    if kind not in PACKED:
        return MASK_SPECS[kind]
    return Mask(kind, (1, 7, n_kv - 8)) if n_kv > 8 else Mask(kind, min(3, n_kv))


def check_masks(spec: VariantSpec, *, device: str = "cpu") -> CheckResult:
    """Every declared mask, with 4 query heads over 2 key heads, within fp32 tolerance of float64.

    A shape the variant refuses under every mask it declares is a limit of its shapes, not of its masks, and is
    passed over; refusing a declared mask at a shape where another declared mask runs fails the check (a
    variant must serve what it declares). Refusing everything fails too, on a device and dtype it declares;
    elsewhere (xformers on a CPU) it is "cannot run here" (None)."""
    worst, failures, refused, ran = 0.0, [], [], False
    # A variant that hands the case to a library's kernel choice (backend=, the SDPA family) passes on the
    # library's refusals, which depend on the device (CUDA's flash kernel takes no float32, no dense mask).
    own_refusals = spec.backend is None and not spec.delegate_checks
    for n_q, n_kv in MASK_SHAPES:
        here = {}
        for kind in spec.masks:
            try:
                here[kind] = exact_error(spec, n_q=n_q, n_kv=n_kv, mask=check_mask(kind, n_kv), heads=4, heads_kv=2,
                                         device=device, **paging(spec))  # fmt: skip
            except Unsupported as exc:
                here[kind] = exc
        errors = {kind: e for kind, e in here.items() if not isinstance(e, Unsupported)}
        ran = ran or bool(errors)
        if errors and own_refusals:
            refused += [
                f"{check_mask(kind, n_kv)} at N_q={n_q} N_kv={n_kv} ({e})" for kind, e in here.items() if kind not in errors
            ]
        for kind, err in errors.items():
            worst = max(worst, err)
            if not err <= TOLERANCE[torch.float32]:  # NaN fails too
                failures.append(f"{check_mask(kind, n_kv)} N_q={n_q} N_kv={n_kv}: {err:.1e}")
    if not ran:
        reasons = "; ".join(sorted({str(e) for e in here.values()}))[:300]
        if own_refusals and device.split(":")[0] in spec.devices and "float32" in spec.dtypes:  # declared: must run
            return CheckResult("masks and GQA", False, f"refuses every mask it declares ({', '.join(spec.masks)}): {reasons}")
        return CheckResult("masks and GQA", None, reasons)
    if refused:
        return CheckResult("masks and GQA", False, f"refuses masks it declares: {'; '.join(refused[:2])}"[:400])
    if failures:
        more = f" (and {len(failures) - 3} more)" if len(failures) > 3 else ""
        return CheckResult("masks and GQA", False, "over tolerance (H=4, H_kv=2): " + "; ".join(failures[:3]) + more)
    return CheckResult("masks and GQA", True, f"{', '.join(spec.masks)}: largest relative error {worst:.1e}")


# Sizes at which each modification shows: a cap that bites the scores of inputs at scale 2 (std about 4), and a
# relative-position radius far below the shapes' lengths (the table's clipping at work).
SCORE_MOD_SPECS = {"alibi": ScoreMod("alibi"), "softcap": ScoreMod("softcap", 5.0), "rel-bias": ScoreMod("rel-bias", 8.0)}


def check_score_mods(spec: VariantSpec, *, device: str = "cpu") -> CheckResult:
    """Every declared score modification under every declared mask, at `MASK_SHAPES` with 4 query heads over 2
    key heads, within fp32 tolerance of float64. Refusing a modification it declares where the same mask and
    shape run without it fails (a library wrapper's, ``backend=``, passes: its refusals depend on the device)."""
    mods = [kind for kind in spec.score_mods if kind != "none"]
    if not mods:
        return CheckResult("score modifications", None, f"{spec.name} declares no score modification")
    worst, failures, refused, ran = 0.0, [], [], False
    for kind in mods:
        for kind_of_mask in spec.masks:
            for n_q, n_kv in MASK_SHAPES:
                mask = check_mask(kind_of_mask, n_kv)
                case = dict(n_q=n_q, n_kv=n_kv, mask=mask, heads=4, heads_kv=2, device=device)
                where = f"{SCORE_MOD_SPECS[kind]} {mask} N_q={n_q} N_kv={n_kv}"
                try:
                    err = exact_error(spec, score_mod=SCORE_MOD_SPECS[kind], **case, **paging(spec))
                except Unsupported as exc:
                    if spec.backend is None and _runs(spec, case):
                        refused.append(f"{where} ({exc})")
                    continue
                ran, worst = True, max(worst, err)
                if not err <= TOLERANCE[torch.float32]:  # NaN fails too
                    failures.append(f"{where}: {err:.1e}")
    if refused:
        return CheckResult("score modifications", False, f"refuses what it declares: {'; '.join(refused[:2])}"[:400])
    if failures:
        more = f" (and {len(failures) - 3} more)" if len(failures) > 3 else ""
        return CheckResult("score modifications", False, "over tolerance: " + "; ".join(failures[:3]) + more)
    if not ran:
        return CheckResult("score modifications", None, "no case ran here")
    return CheckResult("score modifications", True, f"{', '.join(mods)}: largest relative error {worst:.1e}")


def _runs(spec: VariantSpec, case: dict) -> bool:
    """Whether the variant runs the case without a modification (its refusal with one is then the modification's)."""
    try:
        exact_error(spec, **case)
    except Unsupported:
        return False
    return True


# A page of one token, pages that leave the last one partly filled (300 = 42·7 + 6), and one page longer than the
# whole sequence; one decoding query and three.
PAGE_SIZES, PAGED_SHAPES = (1, 7, 512), [(1, 300), (3, 300)]
# The decode masks a paged cache is checked under. (FlexAttention's paged kernel under sliding:W fails to build
# on torch 2.13's CPU backend, a C++ compile error in Inductor: a sweep records that case as an error.)
PAGED_MASKS = ("causal-br", "none")


def check_paged(spec: VariantSpec, *, device: str = "cpu") -> CheckResult:
    """A variant that reads a paged KV cache, against float64 on the contiguous cache, with 4 query heads over 2
    key heads, under each of the decode masks it declares of PAGED_MASKS."""
    if "paged" not in spec.layouts:
        return CheckResult("paged KV cache", None, f"{spec.name} reads no paged KV cache")
    worst, failures = 0.0, []
    for size, (n_q, n_kv), kind in itertools.product(PAGE_SIZES, PAGED_SHAPES, PAGED_MASKS):
        if kind not in spec.masks:
            continue
        err = exact_error(spec, n_q=n_q, n_kv=n_kv, mask=MASK_SPECS[kind], heads=4, heads_kv=2, device=device,
                          page_size=size)  # fmt: skip
        worst = max(worst, err)
        if not err <= TOLERANCE[torch.float32]:  # NaN fails too
            failures.append(f"paged:{size} {kind} N_q={n_q} N_kv={n_kv}: {err:.1e}")
    if failures:
        return CheckResult("paged KV cache", False, "over tolerance: " + "; ".join(failures[:3]))
    return CheckResult("paged KV cache", True, f"pages of {', '.join(map(str, PAGE_SIZES))}: largest relative error {worst:.1e}")


RAGGED_LENGTHS = (1, 7, 300)  # a one-key cache, a short one and a long one, in one batch of 300 slots


def check_kv_lens(spec: VariantSpec, *, device: str = "cpu") -> CheckResult:
    """A variant that reads caches of unequal length (`variants.kv_lens`), lengths 1, 7 and 300 in one batch,
    against float64 with 4 query heads over 2 key heads, under each decode mask it declares, in each layout it
    reads (paged: pages of 1 and 16, under PAGED_MASKS)."""
    if not spec.ragged:
        return CheckResult("unequal KV lengths", None, f"{spec.name} reads no caches of unequal length")
    layouts = ([None] if "contiguous" in spec.layouts else []) + ([1, 16] if "paged" in spec.layouts else [])
    kinds = [kind for kind in ("causal-br", "none", "sliding", "prefix") if kind in spec.masks]
    worst, failures = 0.0, []
    # a paged cache under the masks its own check reads (`check_paged`): a server's decode masks
    for size, kind in ((size, kind) for size in layouts for kind in kinds if size is None or kind in PAGED_MASKS):
        err = exact_error(spec, n_q=1, n_kv=max(RAGGED_LENGTHS), mask=MASK_SPECS[kind], heads=4, heads_kv=2,
                          device=device, page_size=size, lengths=RAGGED_LENGTHS)  # fmt: skip
        worst = max(worst, err)
        if not err <= TOLERANCE[torch.float32]:  # NaN fails too
            failures.append(f"{'contiguous' if size is None else f'paged:{size}'} {kind}: {err:.1e}")
    if failures:
        return CheckResult("unequal KV lengths", False, "over tolerance: " + "; ".join(failures[:3]))
    return CheckResult("unequal KV lengths", True, f"lengths {'+'.join(map(str, RAGGED_LENGTHS))}, masks "
                       f"{', '.join(kinds)}: largest relative error {worst:.1e}")  # fmt: skip
