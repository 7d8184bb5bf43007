"""PyTorch ``scaled_dot_product_attention``: default dispatch and forced backends.

``sdpa`` lets PyTorch pick the kernel; ``sdpa-<backend>`` pins one with
``torch.nn.attention.sdpa_kernel``. When a pinned backend cannot serve the
inputs, PyTorch's own reasons (emitted as warnings) become the `Unsupported`
reason. Each spec's ``backend`` hook names the kernel that runs a case, so the
results table records what was actually measured, not what was asked for.

Masks: "causal" is ``is_causal=True``; every other mask but "none" is a dense
boolean ``attn_mask`` (N_q, N_kv), which PyTorch's fused CPU kernels take and
its CUDA flash kernel does not (it then falls back, or a pinned flash backend
says why not). Grouped-query heads go through ``enable_gqa``: K and V are
not copied. Score modifications: ALiBi and a relative-position bias are a float
``attn_mask`` (H, N_q, N_kv); a soft cap is not a bias and SDPA cannot express it.
"""

from __future__ import annotations

import functools
import warnings

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from .common import zero_empty_rows
from .kv_lens import dense as ragged_dense
from .masks import NONE, Mask
from .registry import ALL_MASKS, Unsupported, register
from .score_mods import NO_MOD, ScoreMod

BIASES = ("none", "alibi", "rel-bias")  # softcap is not a bias: SDPA has no way to express it

_BACKENDS = {
    "math": SDPBackend.MATH,
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
}


def _arguments(q, k, mask: Mask, score_mod: ScoreMod = NO_MOD, kv_lens: torch.Tensor | None = None) -> dict:
    """SDPA's masking and grouping keywords for ``mask``, ``score_mod`` and the heads of q and k.

    A bias modification (ALiBi, a relative-position bias) is a float ``attn_mask`` (H, N_q, N_kv) with the
    hidden keys at -inf, as Transformers passes ALiBi: real memory, which the case's peak records. Caches of
    unequal lengths (``kv_lens``, B) are a boolean (B, 1, N_q, N_kv) mask, as a server pads a batch.
    """
    n_q, n_kv, grouped = q.shape[2], k.shape[2], q.shape[1] != k.shape[1]
    if kv_lens is not None:  # position-free score modifications only (variants.kv_lens): none, here
        return {"attn_mask": ragged_dense(mask, n_q, n_kv, kv_lens), "is_causal": False, "enable_gqa": grouped}
    if score_mod.is_bias:
        bias = score_mod.bias(q.shape[1], torch.arange(n_q, device=q.device), n_q, n_kv, dtype=q.dtype)  # (H, N_q, N_kv)
        if mask.kind != "none":
            bias = bias.masked_fill(~mask.dense(n_q, n_kv, device=q.device), float("-inf"))
        return {"attn_mask": bias[None], "is_causal": False, "enable_gqa": grouped}  # (1, H, N_q, N_kv): 4-D, as flash wants
    dense = None if mask.kind in ("none", "causal") or _hides_nothing(mask, n_q, n_kv) else mask.dense(n_q, n_kv, device=q.device)
    return {"attn_mask": dense, "is_causal": mask.kind == "causal", "enable_gqa": grouped}


@functools.lru_cache(maxsize=64)
def _hides_nothing(mask: Mask, n_q: int, n_kv: int) -> bool:
    """Whether ``mask`` leaves every query every key at these lengths (decode's one query under causal-br): then
    no mask is passed, as a server's decode step passes none, and the flash and cuDNN backends, which take no
    explicit mask, can serve it (on the H200 sdpa-flash refused every decode case for the mask alone)."""
    return mask.visible_pairs(n_q, n_kv) == n_q * n_kv


def chosen_backend(q, k, v, *, mask: Mask = NONE, scale: float | None = None, score_mod: ScoreMod = NO_MOD,
                   kv_lens: torch.Tensor | None = None) -> str:  # fmt: skip
    """The backend default dispatch picks for these inputs ("flash_attention", "math", ...)."""
    a = _arguments(q, k, mask, score_mod, kv_lens)
    choice = torch._fused_sdp_choice(q, k, v, a["attn_mask"], 0.0, a["is_causal"], scale=scale, enable_gqa=a["enable_gqa"])
    return SDPBackend(choice).name.lower()


def _sdpa(q, k, v, mask: Mask, scale: float | None, score_mod: ScoreMod, kv_lens=None) -> torch.Tensor:
    out = F.scaled_dot_product_attention(q, k, v, scale=scale, **_arguments(q, k, mask, score_mod, kv_lens))  # (B, H, N_q, D_v)
    return zero_empty_rows(out, mask, q.shape[2], k.shape[2])  # unequal caches leave no query empty (variants.kv_lens)


@register("sdpa", family="sdpa", exact=True, time="O(N^2 d)", memory="O(N)", backend=chosen_backend, masks=ALL_MASKS,
          gqa=True, score_mods=BIASES, dense_masks=True, ragged=True)  # fmt: skip
def sdpa(q, k, v, *, mask: Mask, scale: float | None = None, score_mod: ScoreMod = NO_MOD,
         kv_lens: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """``F.scaled_dot_product_attention`` with PyTorch's default kernel choice.

    q: (B, H, N_q, D); k, v: (B, H_kv, N_kv, D|D_v) -> (B, H, N_q, D_v).
    Time O(N^2 d). Memory O(N) when a fused kernel runs and no dense mask is
    needed; the math fallback, and a dense mask, are O(N^2). ``kv_lens`` (B,): sequence b reads its first
    kv_lens[b] keys (`variants.kv_lens`), through a dense (B, 1, N_q, N_kv) mask.
    """
    return _sdpa(q, k, v, mask, scale, score_mod, kv_lens)


def _pinned(backend: str, q, k, v, *, mask: Mask, scale: float | None = None, score_mod: ScoreMod = NO_MOD,
            kv_lens: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """SDPA restricted to one backend; `Unsupported` with PyTorch's reasons if it cannot run."""
    # PyTorch explains a refused backend only through warnings: record them
    # (about 1 us a call, against the 8 us sdpa_kernel itself costs).
    with warnings.catch_warnings(record=True) as caught, sdpa_kernel(_BACKENDS[backend]):
        warnings.simplefilter("always")
        try:
            return _sdpa(q, k, v, mask, scale, score_mod, kv_lens)
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
        masks=ALL_MASKS,
        gqa=True,
        score_mods=BIASES,
        dense_masks=True,
        ragged=True,
    )(fn)


_register_pinned("math", ("cpu", "cuda"), "O(N^2)")
_register_pinned("flash", ("cpu", "cuda"), "O(N)")
_register_pinned("efficient", ("cuda",), "O(N)")
_register_pinned("cudnn", ("cuda",), "O(N)")
