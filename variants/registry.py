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
mask=..., scale=..., seed=...)`` first enforces what the spec declares (device, dtype, mask, backward) by
raising `Unsupported`, then calls the function with its parameters bound: declared once, checked for every caller.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import importlib.util
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch

from .masks import CAUSAL, KINDS, NONE, Mask, parse_mask
from .work import exact_flops

ALL_MASKS = KINDS  # declare every mask kind
__all__ = ["ALL_MASKS", "DTYPES", "Unsupported", "UnknownVariant", "VariantSpec", "register", "get_variant",
           "list_variants", "exact_flops"]  # fmt: skip

# The dtype names the registry understands, mapped to torch dtypes.
DTYPES: Mapping[str, torch.dtype] = MappingProxyType(
    {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
)


class Unsupported(NotImplementedError):
    """A variant cannot serve this case; ``str(exc)`` is the human reason.

    Raised instead of printing or returning garbage, so the harness records the
    case as ``unsupported`` with the reason and the sweep goes on.
    """


class UnknownVariant(KeyError):
    """No variant is registered under a name; ``exc.args[0]`` names the closest ones."""


@dataclass(frozen=True, eq=False)
class VariantSpec:
    """Everything the harness knows about one registered variant.

    ``time``/``memory`` are the declared complexity classes ("O(N^2 d)",
    "O(N)") that the report compares with the fitted exponents. ``params`` are
    bound into every call, so a row's variant name alone reproduces it.
    ``randomized`` variants take a ``seed`` keyword. ``backend(q, k, v,
    mask=..., scale=...)``, where given, names the kernel a dispatching
    variant actually runs for those inputs (e.g. SDPA's choice).
    ``delegate_checks`` leaves device and dtype checks to the function, for a
    wrapper whose library gives better reasons than the spec can (xformers);
    the declared devices and dtypes then only drive listing and planning.
    ``masks`` are the mask kinds served (`variants.masks`; default "none" and
    "causal"); ``gqa`` says k and v with fewer heads than q
    are served as they are -- otherwise the spec repeats them to q's heads,
    a copy, and says so (``gqa_method``). ``skips_masked``: hidden key blocks
    cost nothing, so a banded mask makes the variant O(N·W·d).
    ``reference`` (approximations only): the `Mask` of the exact attention the
    variant approximates when a case asks for none -- e.g. "sliding:256" for a
    windowed approximation -- so its error against float64 (in sweeps and in
    ``attnbench check``) measures the approximation, not the window.
    ``tolerance``: the relative error ``check`` allows an approximation (fp32,
    at long shapes); without one its error is reported, not judged.
    """

    name: str
    fn: Callable[..., torch.Tensor]
    family: str
    exact: bool
    time: str | None  # declared classes, e.g. "O(N^2 d)"; None: fits say "no declared class"
    memory: str | None
    devices: tuple[str, ...] = ("cpu", "cuda")
    dtypes: tuple[str, ...] = tuple(DTYPES)
    backward: bool = True
    params: Mapping[str, Any] = field(default_factory=dict)
    requires: str | None = None
    randomized: bool = False
    flops: Callable[[Any], float] | None = None
    backend: Callable[..., str] | None = None
    delegate_checks: bool = False
    masks: tuple[str, ...] = ("none", "causal")
    gqa: bool = False
    skips_masked: bool = False
    reference: Mask | None = None  # an approximation's exact counterpart (see above)
    tolerance: float | None = None  # the relative error against it that `attnbench check` allows
    takes_mask: bool = False  # the function takes mask= (set by register from its signature)
    doc: str = ""

    @property
    def gqa_method(self) -> str:
        """How grouped-query heads are served: "grouped" (K, V as they are) or "expanded" (repeated to H heads)."""
        return "grouped" if self.gqa else "expanded"

    def unavailable_reason(self, device: str | None = None) -> str | None:
        """Why this variant cannot run on ``device`` of this machine (on any of its
        declared devices when None), or None when it may. Imports nothing.

        With ``delegate_checks`` an explicit device outside the declared ones is
        let through: the call itself then raises `Unsupported` with the wrapped
        library's own reasons.
        """
        if self.requires and importlib.util.find_spec(self.requires) is None:
            return f"needs the '{self.requires}' package, which is not installed"
        device = device.split(":")[0] if device else device  # "cuda:1" is a cuda device
        if device and device not in self.devices and not self.delegate_checks:
            return f"has no kernel for device={device} (supported: {', '.join(self.devices)})"
        wanted = [device] if device else list(self.devices)
        if not any(d == "cpu" or (d == "cuda" and torch.cuda.is_available()) for d in wanted):
            return f"runs on {' or '.join(wanted)} only, and this machine has no CUDA device"
        return None

    def describe(self) -> dict[str, Any]:
        """The spec as plain data (``attnbench list --json``), with whether it can run on this machine."""
        reason = self.unavailable_reason()
        return {
            "name": self.name, "family": self.family, "exact": self.exact, "time": self.time, "memory": self.memory,
            "devices": list(self.devices), "dtypes": list(self.dtypes),
            "masks": list(self.masks), "gqa": self.gqa_method,
            "backward": self.backward, "params": dict(self.params), "requires": self.requires,
            "randomized": self.randomized, "reference": self.reference and self.reference.spec, "tolerance": self.tolerance,
            "available": reason is None, "unavailable_reason": reason, "doc": self.doc,
        }  # fmt: skip

    def check(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, mask: Mask) -> None:
        """Raise `Unsupported` when the inputs fall outside what the spec declares; `ValueError` for bad shapes."""
        if not (q.dim() == k.dim() == v.dim() == 4) or k.shape[1] != v.shape[1] or q.shape[1] % k.shape[1]:
            raise ValueError(
                f"{self.name}: q, k, v must be (B, H, N, D), (B, H_kv, N_kv, D), (B, H_kv, N_kv, D_v) with H_kv "
                f"dividing H; got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
            )
        device, dtype = q.device.type, str(q.dtype).removeprefix("torch.")
        if not self.delegate_checks and device not in self.devices:
            raise Unsupported(f"{self.name} has no kernel for device={device} (supported: {', '.join(self.devices)})")
        if not self.delegate_checks and dtype not in self.dtypes:
            raise Unsupported(f"{self.name} does not support dtype={dtype} (supported: {', '.join(self.dtypes)})")
        if mask.kind not in self.masks:
            if mask == CAUSAL:
                raise Unsupported(f"{self.name} has no causal mode")
            raise Unsupported(f"{self.name} does not serve mask {mask.spec} (serves: {', '.join(self.masks)})")
        needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
        if needs_grad and not self.backward:
            raise Unsupported(f"{self.name} has no backward pass")

    def __call__(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        *,
        mask: Mask | str | None = None,
        scale: float | None = None,
        seed: int = 0,
    ) -> torch.Tensor:
        """Run the variant: q (B, H, N_q, D), k (B, H_kv, N_kv, D), v (B, H_kv, N_kv, D_v) -> (B, H, N_q, D_v).

        ``mask`` is a `Mask` (or its spec string, "sliding:256"); none: "none".
        """
        mask = parse_mask(mask)
        self.check(q, k, v, mask=mask)
        if k.shape[1] != q.shape[1] and not self.gqa:
            groups = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)  # (B, H, N_kv, ·) copies
        return self.fn(q, k, v, **self.keywords(mask, scale, seed))

    def keywords(self, mask: Mask, scale: float | None = None, seed: int = 0) -> dict[str, Any]:
        """The keywords the function is called with: ``mask=``, or for a function written to the original
        contract ``causal=`` (True for "causal"; the spec serves it no other mask), and ``seed`` if randomized."""
        masking = {"mask": mask} if self.takes_mask else {"causal": mask == CAUSAL}
        return {**masking, "scale": scale, **({"seed": seed} if self.randomized else {})}

    def signature_problem(self) -> str | None:
        """Why the function's signature cannot take the harness's call, or None. Inspects, never calls."""
        keywords = self.keywords(NONE)
        try:
            inspect.signature(self.fn).bind(None, None, None, **keywords)
        except TypeError as exc:
            wanted = ", ".join(f"{k}=..." for k in keywords)
            return f"its signature cannot take (q, k, v, {wanted}): {exc}"
        except ValueError:  # no signature to inspect (a builtin): the call will tell
            pass
        return None


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
    flops, backend, masks, gqa, reference); ``causal=False``, the original
    contract's, is ``masks=("none",)``. A name registered twice raises ``ValueError``.
    """
    if not name or any(c.isspace() for c in name) or "," in name:
        raise ValueError(f"variant name must be non-empty with no spaces or commas: {name!r}")
    unknown = set(options) - {f for f in VariantSpec.__dataclass_fields__} - {"fn", "name"} - {"causal"}
    if unknown:
        raise TypeError(f"register({name!r}): unknown option(s) {', '.join(sorted(unknown))}")
    if options.get("flops") is None and exact:
        options["flops"] = exact_flops
    causal = options.pop("causal", True)  # the original contract's declaration: masks none and causal, or none
    options["masks"] = tuple(options.get("masks", ("none", "causal") if causal else ("none",)))
    unknown_kinds = set(options["masks"]) - set(KINDS)
    if unknown_kinds:
        raise ValueError(f"register({name!r}): unknown mask kind(s) {', '.join(sorted(unknown_kinds))}; known: {KINDS}")
    if options.get("reference") is not None:
        if exact:
            raise ValueError(f"register({name!r}): reference= is for approximations; an exact variant declares masks=")
        options["reference"] = parse_mask(options["reference"])  # a MaskError names a bad spec
    params = MappingProxyType(dict(params or {}))

    def decorator(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        if name in _REGISTRY:
            raise ValueError(f"variant {name!r} is already registered (by {_REGISTRY[name].fn!r})")
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
