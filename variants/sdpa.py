"""PyTorch ``scaled_dot_product_attention``: default dispatch and forced backends.

``sdpa`` lets PyTorch pick the kernel; ``sdpa-<backend>`` pins one with
``torch.nn.attention.sdpa_kernel``. When a pinned backend cannot serve the
inputs, PyTorch's own reasons (emitted as warnings) become the `Unsupported`
reason. Each spec's ``backend`` hook names the kernel that runs a case, so the
results table records what was actually measured, not what was asked for.
"""

from __future__ import annotations

import functools
import warnings

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from .registry import Unsupported, register

_BACKENDS = {
    "math": SDPBackend.MATH,
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
}


def chosen_backend(q, k, v, *, causal: bool = False, scale: float | None = None) -> str:
    """The backend default dispatch picks for these inputs ("flash_attention", "math", ...)."""
    choice = torch._fused_sdp_choice(q, k, v, None, 0.0, causal, scale=scale)
    return SDPBackend(choice).name.lower()


@register("sdpa", family="sdpa", exact=True, time="O(N^2 d)", memory="O(N)", backend=chosen_backend)
def sdpa(q, k, v, *, causal: bool = False, scale: float | None = None) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` with PyTorch's default kernel choice.

    q, k: (B, H, N_q|N_kv, D); v: (B, H, N_kv, D_v) -> (B, H, N_q, D_v).
    Time O(N^2 d). Memory O(N) when a fused kernel runs; the math fallback is O(N^2).
    """
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)


def _pinned(backend: str, q, k, v, *, causal: bool = False, scale: float | None = None) -> torch.Tensor:
    """SDPA restricted to one backend; `Unsupported` with PyTorch's reasons if it cannot run."""
    # PyTorch explains a refused backend only through warnings: record them
    # (about 1 us a call, against the 8 us sdpa_kernel itself costs).
    with warnings.catch_warnings(record=True) as caught, sdpa_kernel(_BACKENDS[backend]):
        warnings.simplefilter("always")
        try:
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)
        except RuntimeError as exc:
            if "No available kernel" not in str(exc):
                raise
    reasons = [str(w.message).split(" (Triggered internally")[0] for w in caught]
    reasons = [r for r in reasons if not r.endswith("not used because:")]
    raise Unsupported(f"SDPA {backend} backend cannot run this case: " + "; ".join(reasons or ["no reason given"]))


def _register_pinned(backend: str, devices: tuple[str, ...], memory: str) -> None:
    fn = functools.partial(_pinned, backend)
    fn.__doc__ = f"SDPA pinned to the {backend} backend. Time O(N^2 d), memory {memory}."
    register(
        f"sdpa-{backend}",
        family="sdpa",
        exact=True,
        time="O(N^2 d)",
        memory=memory,
        devices=devices,
        backend=lambda *a, **kw: _BACKENDS[backend].name.lower(),
    )(fn)


_register_pinned("math", ("cpu", "cuda"), "O(N^2)")
_register_pinned("flash", ("cpu", "cuda"), "O(N)")
_register_pinned("efficient", ("cuda",), "O(N)")
_register_pinned("cudnn", ("cuda",), "O(N)")
