"""`VariantSpec`: everything the harness knows about one variant, and the call that enforces it.

The spec is what `variants.registry.register` builds from a decorated function. Callers go through the
spec, never the bare function: ``spec(q, k, v, mask=..., scale=..., seed=...)`` first enforces what the
spec declares (device, dtype, mask, backward) by raising `Unsupported`, then calls the function with its
parameters bound and the keywords its signature takes (`VariantSpec.keywords`): declared once, checked for
every caller.
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch

from .kv_lens import refusal as kv_lens_refusal
from .masks import CAUSAL, NONE, Mask, parse_mask
from .score_mods import NO_MOD, ScoreMod, parse_score_mod

# The dtype names the registry understands, mapped to torch dtypes.
DTYPES: Mapping[str, torch.dtype] = MappingProxyType(
    {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
)


class Unsupported(NotImplementedError):
    """A variant cannot serve this case; ``str(exc)`` is the human reason.

    Raised instead of printing or returning garbage, so the harness records the
    case as ``unsupported`` with the reason and the sweep goes on.
    """


EXTRAS = {"transformers": "hf", "xformers": "xformers"}  # the project's optional extra that installs a package


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
    wrapper whose library gives better reasons than the spec can (xformers,
    nested SDPA); the declared devices and dtypes then only drive listing and
    planning, and ``attnbench check`` takes the library's refusals of a
    declared mask as the library's, not as a broken declaration.
    ``masks`` are the mask kinds served (`variants.masks`; default "none" and
    "causal"); ``gqa`` says k and v with fewer heads than q
    are served as they are -- otherwise the spec repeats them to q's heads,
    a copy, and says so (``gqa_method``). ``skips_masked``: hidden key blocks
    cost nothing, so a banded mask makes the variant O(N·W·d).
    ``dense_masks``: a mask other than none and causal, and a bias score
    modification, reach the kernel as an (N_q, N_kv) tensor, so its memory is
    O(N²) under them whatever ``memory`` declares (SDPA's ``attn_mask``).
    ``layouts``: the KV cache layouts read; a "paged" one is called with k
    and v pools and ``pages=`` (a `variants.paged.PageTable`). ``ragged``:
    reads a decode batch whose caches differ in length, called with
    ``kv_lens=`` (`variants.kv_lens`).
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
    padding: Callable[[Any], float | None] | None = None  # a padding variant's padded share of a case's tokens
    backend: Callable[..., str] | None = None
    delegate_checks: bool = False
    masks: tuple[str, ...] = ("none", "causal")
    score_mods: tuple[str, ...] = ("none",)  # score modification kinds served (variants.score_mods)
    gqa: bool = False
    skips_masked: bool = False
    dense_masks: bool = False
    layouts: tuple[str, ...] = ("contiguous",)  # KV cache layouts read: "contiguous", "paged" (variants.paged)
    ragged: bool = False  # reads caches of unequal lengths in one batch (kv_lens=, variants.kv_lens)
    reference: Mask | None = None  # an approximation's exact counterpart (see above)
    tolerance: float | None = None  # the relative error against it that `attnbench check` allows
    in_all: bool = True  # runs in "--variants all"; False: only where named (a second copy of a kernel already there)
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
            extra = f" (pip install -e '.[{EXTRAS[self.requires]}]')" if self.requires in EXTRAS else ""
            return f"needs the '{self.requires}' package, which is not installed{extra}"
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
            "masks": list(self.masks), "score_mods": list(self.score_mods), "gqa": self.gqa_method,
            "layouts": list(self.layouts), "ragged": self.ragged,
            "backward": self.backward, "params": dict(self.params), "requires": self.requires,
            "randomized": self.randomized, "reference": self.reference and self.reference.spec, "tolerance": self.tolerance,
            "available": reason is None, "unavailable_reason": reason, "doc": self.doc,
        }  # fmt: skip

    def check(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, mask: Mask, score_mod: ScoreMod = NO_MOD) -> None:
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
        if score_mod.kind not in self.score_mods:
            raise Unsupported(f"{self.name} does not serve score modification {score_mod.spec} "
                              f"(serves: {', '.join(self.score_mods)})")  # fmt: skip
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
        score_mod: ScoreMod | str | None = None,
        pages: Any = None,
        kv_lens: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run the variant: q (B, H, N_q, D), k (B, H_kv, N_kv, D), v (B, H_kv, N_kv, D_v) -> (B, H, N_q, D_v).

        ``mask`` is a `Mask` (or its spec string, "sliding:256"), ``score_mod`` a `ScoreMod` (or its spec,
        "softcap:50"); None: "none". ``pages``: a `variants.paged.PageTable`, k and v then pools of pages.
        ``kv_lens``: int64 (B,), sequence b's cache is its first kv_lens[b] keys (`variants.kv_lens`).
        """
        mask, score_mod = parse_mask(mask), parse_score_mod(score_mod)
        self.check(q, k, v, mask=mask, score_mod=score_mod)
        layout = "contiguous" if pages is None else "paged"
        if layout not in self.layouts:
            raise Unsupported(f"{self.name} does not read a {layout} KV cache (reads: {', '.join(self.layouts)})")
        if k.shape[1] != q.shape[1] and not self.gqa:
            groups = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)  # (B, H, N_kv, ·) copies
        paging = {} if pages is None else {"pages": pages}
        if kv_lens is not None:
            if not self.ragged:
                raise Unsupported(f"{self.name} does not read KV caches of unequal lengths")
            why = kv_lens_refusal(mask, score_mod.kind)
            if why:
                raise Unsupported(why)
            paging["kv_lens"] = kv_lens
        return self.fn(q, k, v, **self.keywords(mask, scale, seed, score_mod), **paging)

    def keywords(self, mask: Mask, scale: float | None = None, seed: int = 0, score_mod: ScoreMod = NO_MOD) -> dict[str, Any]:
        """The keywords the function is called with: ``mask=``, or for a function written to the original
        contract ``causal=`` (True for "causal"; the spec serves it no other mask); ``seed`` if randomized;
        ``score_mod`` if it declares modifications."""
        masking = {"mask": mask} if self.takes_mask else {"causal": mask == CAUSAL}
        modifying = {"score_mod": score_mod} if self.score_mods != ("none",) else {}
        return {**masking, "scale": scale, **({"seed": seed} if self.randomized else {}), **modifying}

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
