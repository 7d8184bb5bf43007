"""The variant registry: one dict of frozen `VariantSpec`s, filled by `@register`.

A variant is a plain function over ``(B, H, N, D)`` tensors::

    @register("sdpa", family="sdpa", exact=True, time="O(N^2 d)", memory="O(N)", masks=ALL_MASKS, gqa=True)
    def sdpa(q, k, v, *, mask, scale=None) -> Tensor: ...

The contract is ``mask=`` (a `variants.masks.Mask`, one of the kinds the
variant declares). Callers pass ``mask=`` (a Mask, or its spec string). A
function written to the original contract, ``causal=`` (a bool: the masks
"none" and "causal" only), still works: the spec hands each function the
keyword its signature takes (`VariantSpec.keywords`), and nothing else does.

`register` returns the function unchanged, so registrations stack (``performer-64``, ``performer-256``, each
binding its ``params``). Callers go through the spec, never the bare function: ``get_variant(name)(q, k, v,
mask=..., scale=..., seed=..., score_mod=...)`` first enforces what the spec declares (device, dtype, mask,
score modification, backward) by raising `Unsupported`, then calls the function with its parameters bound:
declared once, checked for every caller.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import inspect
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import torch

from .masks import KINDS, parse_mask
from .score_mods import KINDS as SCORE_MOD_KINDS
from .spec import DTYPES, Unsupported, VariantSpec
from .work import exact_flops

ALL_MASKS = KINDS  # declare every mask kind
ALL_SCORE_MODS = SCORE_MOD_KINDS  # declare every score modification
__all__ = ["ALL_MASKS", "ALL_SCORE_MODS", "DTYPES", "Unsupported", "UnknownVariant", "VariantSpec", "register", "get_variant",
           "list_variants", "exact_flops"]  # fmt: skip


class UnknownVariant(KeyError):
    """No variant is registered under a name; ``exc.args[0]`` names the closest ones."""


_REGISTRY: dict[str, VariantSpec] = {}


def register(
    name: str,
    *,
    exact: bool,
    family: str | None = None,
    time: str | None = None,
    memory: str | None = None,
    params: Mapping[str, Any] | None = None,
    **options: Any,
) -> Callable[[Callable[..., torch.Tensor]], Callable[..., torch.Tensor]]:
    """Register ``fn`` under ``name``; returns ``fn`` unchanged (so decorators stack).

    Only the name and ``exact`` are required. ``family`` defaults to the defining module's name ("plugin"
    for a ``--plugin`` file); ``time`` and ``memory`` are the declared classes the report's fits are held
    to, and without them a variant is fitted and reported with no declared class.

    ``params`` are bound as keyword arguments on every call. Other ``options``
    are `VariantSpec` fields (devices, dtypes, backward, requires, randomized,
    flops, backend, masks, score_mods, gqa, reference); ``causal=False``, the original
    contract's, is ``masks=("none",)``. A name registered twice raises ``ValueError``.
    """
    if not name or any(c.isspace() for c in name) or "," in name:
        raise ValueError(f"variant name must be non-empty with no spaces or commas: {name!r}")
    unknown = set(options) - {f for f in VariantSpec.__dataclass_fields__} - {"fn", "name"} - {"causal"}
    if unknown:
        raise TypeError(f"register({name!r}): unknown option(s) {', '.join(sorted(unknown))}")
    if options.get("flops") is None and exact:
        options["flops"] = exact_flops
    if "causal" in options and "masks" in options:
        raise ValueError(f"register({name!r}): causal= and masks= together; declare masks= alone")
    causal = options.pop("causal", True)  # the original contract's declaration: masks none and causal, or none
    options["masks"] = tuple(options.get("masks", ("none", "causal") if causal else ("none",)))
    unknown_kinds = set(options["masks"]) - set(KINDS)
    if unknown_kinds:
        raise ValueError(f"register({name!r}): unknown mask kind(s) {', '.join(sorted(unknown_kinds))}; known: {KINDS}")
    options["layouts"] = tuple(options.get("layouts", ("contiguous",)))
    if not options["layouts"] or set(options["layouts"]) - {"contiguous", "paged"}:
        raise ValueError(f"register({name!r}): layouts= lists KV cache layouts of ('contiguous', 'paged')")
    options["score_mods"] = tuple(options.get("score_mods", ("none",)))
    if set(options["score_mods"]) - set(SCORE_MOD_KINDS) or "none" not in options["score_mods"]:
        raise ValueError(f'register({name!r}): score_mods= lists kinds of {SCORE_MOD_KINDS}, "none" among them')
    if options.get("reference") is not None:
        if exact:
            raise ValueError(f"register({name!r}): reference= is for approximations; an exact variant declares masks=")
        options["reference"] = parse_mask(options["reference"])  # a MaskError names a bad spec
    params = MappingProxyType(dict(params or {}))

    def decorator(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        if name in _REGISTRY:
            raise ValueError(f"variant {name!r} is already registered (by {_REGISTRY[name].fn!r})")
        if not _takes_mask(fn) and set(options["masks"]) - {"none", "causal"}:
            raise ValueError(f"register({name!r}): a function taking causal= serves masks none and causal only; take mask=")
        bound = functools.partial(fn, **params) if params else fn
        doc = (fn.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = VariantSpec(
            name=name,
            fn=bound,
            family=family or _family_of(fn),
            exact=exact,
            time=time,
            memory=memory,
            params=params,
            doc=doc[0] if doc else "",
            takes_mask=_takes_mask(fn),
            **options,
        )
        return fn

    return decorator


def _family_of(fn: Callable[..., torch.Tensor]) -> str:
    """A family named after the module defining ``fn``: "sdpa" for variants.sdpa, "plugin" for a --plugin file."""
    module = getattr(fn, "__module__", None) or "plugin"
    return "plugin" if module.startswith("attnbench_plugin_") or module == "__main__" else module.rsplit(".", 1)[-1]


def _takes_mask(fn: Callable[..., torch.Tensor]) -> bool:
    try:
        return "mask" in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # no signature to inspect (a builtin)
        return False


def get_variant(name: str) -> VariantSpec:
    """The spec registered under ``name``; `UnknownVariant` (a ``KeyError``) naming the closest names if none."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(sorted(_REGISTRY))}"
        raise UnknownVariant(f"unknown variant {name!r}; {hint}") from None


def list_variants(pattern: str = "*") -> list[str]:
    """Registered names matching the shell-style ``pattern`` ("linear*"), sorted."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def unregister(name: str) -> None:
    """Remove a variant (tests and plugin reloading use this)."""
    _REGISTRY.pop(name, None)
