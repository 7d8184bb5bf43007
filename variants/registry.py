"""The variant registry: one dict of frozen `VariantSpec`s, filled by `@register`.

A variant is a plain function over ``(B, H, N, D)`` tensors::

    @register("sdpa", family="sdpa", exact=True, time="O(N^2 d)", memory="O(N)")
    def sdpa(q, k, v, *, causal=False, scale=None) -> Tensor: ...

`register` returns the function unchanged, so registrations stack: one
implementation with a parameter becomes several named configurations
(``performer-64``, ``performer-256``), each binding its ``params``.

Callers go through the spec, never the bare function: ``get_variant(name)(q, k,
v, causal=..., scale=..., seed=...)`` first enforces what the spec declares
(device, dtype, causal, backward) by raising `Unsupported`, then calls the
function with the spec's parameters bound. So a variant author declares support
once and every caller -- tests, the runner, the report -- gets the same checks.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch

__all__ = [
    "Unsupported",
    "UnknownVariant",
    "VariantSpec",
    "register",
    "get_variant",
    "list_variants",
    "exact_flops",
    "DTYPES",
]

# The dtype names the registry understands, mapped to torch dtypes.
DTYPES: Mapping[str, torch.dtype] = MappingProxyType(
    {
        "float64": torch.float64,
        "float32": torch.float32,
        "bfloat16": torch.bfloat16,
        "float16": torch.float16,
    }
)


class Unsupported(NotImplementedError):
    """A variant cannot serve this case; ``str(exc)`` is the human reason.

    Raised instead of printing or returning garbage, so the harness records the
    case as ``unsupported`` with the reason and the sweep goes on.
    """


class UnknownVariant(KeyError):
    """No variant is registered under a name; ``exc.args[0]`` names the closest ones."""


def exact_flops(case: Any) -> float:
    """Forward FLOPs of exact attention: QK^T and PV, 2·N·N_kv·D each, per head.

    ``case`` is anything with ``batch, heads, seq_len, head_dim, causal``
    attributes (a harness ``Case``). Causal masking halves the useful work.
    """
    flops = 4.0 * case.batch * case.heads * case.seq_len * case.seq_len * case.head_dim
    return flops / 2 if case.causal else flops


@dataclass(frozen=True, eq=False)
class VariantSpec:
    """Everything the harness knows about one registered variant.

    ``time``/``memory`` are the declared complexity classes ("O(N^2 d)",
    "O(N)") that the report compares with the fitted exponents. ``params`` are
    bound into every call, so a row's variant name alone reproduces it.
    ``randomized`` variants take a ``seed`` keyword. ``backend(q, k, v,
    causal=..., scale=...)``, where given, names the kernel a dispatching
    variant actually runs for those inputs (e.g. SDPA's choice).
    ``delegate_checks`` leaves device and dtype checks to the function, for a
    wrapper whose library gives better reasons than the spec can (xformers);
    the declared devices and dtypes then only drive listing and planning.
    """

    name: str
    fn: Callable[..., torch.Tensor]
    family: str
    exact: bool
    time: str
    memory: str
    devices: tuple[str, ...] = ("cpu", "cuda")
    dtypes: tuple[str, ...] = tuple(DTYPES)
    causal: bool = True
    backward: bool = True
    params: Mapping[str, Any] = field(default_factory=dict)
    requires: str | None = None
    randomized: bool = False
    flops: Callable[[Any], float] | None = None
    backend: Callable[..., str] | None = None
    delegate_checks: bool = False
    doc: str = ""

    def unavailable_reason(self, device: str | None = None) -> str | None:
        """Why this variant cannot run on ``device`` of this machine (on any of its
        declared devices when None), or None when it may. Imports nothing.

        With ``delegate_checks`` an explicit device outside the declared ones is
        let through: the call itself then raises `Unsupported` with the wrapped
        library's own reasons.
        """
        if self.requires and importlib.util.find_spec(self.requires) is None:
            return f"needs the '{self.requires}' package, which is not installed"
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
            "devices": list(self.devices), "dtypes": list(self.dtypes), "causal": self.causal,
            "backward": self.backward, "params": dict(self.params), "requires": self.requires,
            "randomized": self.randomized, "available": reason is None, "unavailable_reason": reason, "doc": self.doc,
        }  # fmt: skip

    def check(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool) -> None:
        """Raise `Unsupported` when the inputs fall outside what the spec declares."""
        device, dtype = q.device.type, str(q.dtype).removeprefix("torch.")
        if not self.delegate_checks and device not in self.devices:
            raise Unsupported(f"{self.name} has no kernel for device={device} (supported: {', '.join(self.devices)})")
        if not self.delegate_checks and dtype not in self.dtypes:
            raise Unsupported(f"{self.name} does not support dtype={dtype} (supported: {', '.join(self.dtypes)})")
        if causal and not self.causal:
            raise Unsupported(f"{self.name} has no causal mode")
        needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
        if needs_grad and not self.backward:
            raise Unsupported(f"{self.name} has no backward pass")
        if not (q.dim() == k.dim() == v.dim() == 4):
            raise ValueError(
                f"{self.name}: q, k, v must be (B, H, N, D); got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
            )

    def __call__(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        *,
        causal: bool = False,
        scale: float | None = None,
        seed: int = 0,
    ) -> torch.Tensor:
        """Run the variant: q, k (B, H, N_q|N_kv, D), v (B, H, N_kv, D_v) -> (B, H, N_q, D_v)."""
        self.check(q, k, v, causal=causal)
        extra = {"seed": seed} if self.randomized else {}
        return self.fn(q, k, v, causal=causal, scale=scale, **extra)


_REGISTRY: dict[str, VariantSpec] = {}


def register(
    name: str,
    *,
    family: str,
    exact: bool,
    time: str,
    memory: str,
    params: Mapping[str, Any] | None = None,
    **options: Any,
) -> Callable[[Callable[..., torch.Tensor]], Callable[..., torch.Tensor]]:
    """Register ``fn`` under ``name``; returns ``fn`` unchanged (so decorators stack).

    ``params`` are bound as keyword arguments on every call. Other ``options``
    are `VariantSpec` fields (devices, dtypes, causal, backward, requires,
    randomized, flops, backend). A name registered twice raises ``ValueError``.
    """
    if not name or any(c.isspace() for c in name) or "," in name:
        raise ValueError(f"variant name must be non-empty with no spaces or commas: {name!r}")
    unknown = set(options) - {f for f in VariantSpec.__dataclass_fields__} - {"fn", "name"}
    if unknown:
        raise TypeError(f"register({name!r}): unknown option(s) {', '.join(sorted(unknown))}")
    if options.get("flops") is None and exact:
        options["flops"] = exact_flops
    params = MappingProxyType(dict(params or {}))

    def decorator(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        if name in _REGISTRY:
            raise ValueError(f"variant {name!r} is already registered (by {_REGISTRY[name].fn!r})")
        bound = functools.partial(fn, **params) if params else fn
        doc = (fn.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = VariantSpec(
            name=name,
            fn=bound,
            family=family,
            exact=exact,
            time=time,
            memory=memory,
            params=params,
            doc=doc[0] if doc else "",
            **options,
        )
        return fn

    return decorator


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
