"""Each variant's implied attention matrix, extracted black-box: pass V = identity.

With v = I (N x N), attention returns A itself: row i is the weight query i
gives every key. That works for any variant that accepts a value head dim
unlike q's, plugins included, and shows where an approximation's error comes
from. The inputs are structured, not Gaussian: sinusoidal position codes
(as in Transformer position encodings) give exact attention a band around the
diagonal, and a few "sink" keys with a large norm draw attention from every
query -- two patterns real attention has and approximations blur differently.
A sweep over input families (``--inputs``) also gets one map per family, drawn
from that family's own inputs, for exact attention and each approximation.

A map shows the function a variant computes, not its kernel, so variants that
compile run eagerly here (``torch.compiler.set_stance("force_eager")``):
compilation does not change the function (their cases hold the compiled
outputs to float64), and compiling for the map's shapes cost 2-8 s a variant
and mask on 2 cores, most of a quick sweep's finish.
"""

from __future__ import annotations

import contextlib
import math
import sys
import warnings

import torch

from variants import Unsupported, get_variant
from variants.masks import NONE, Mask

from .contract import aliases_input, contract_violation
from .inputs import parse_inputs
from .reference import reference_attention

MAP_N = 64
MAP_D = 16
FAMILY_D = 64  # the head dim of a family's map: a sweep's usual one, and room for lowrank:R up to 64


def structured_qk(n: int = MAP_N, d: int = MAP_D, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """q, k of shape (1, 1, n, d): sinusoidal position codes, key 0 and n/2 made sinks, a little noise."""
    position = torch.arange(n, dtype=torch.float64).unsqueeze(1)  # (n, 1)
    freq = torch.exp(-math.log(n) * torch.arange(0, d, 2, dtype=torch.float64) / d)  # (d/2,)
    codes = torch.cat([torch.sin(position * freq), torch.cos(position * freq)], dim=1)  # (n, d)
    gen = torch.Generator().manual_seed(seed)
    q = 2.0 * codes + 0.1 * torch.randn(n, d, generator=gen, dtype=torch.float64)
    k = 2.0 * codes + 0.1 * torch.randn(n, d, generator=gen, dtype=torch.float64)
    k[0] += 2.5 * q.mean(0) / q.mean(0).norm() * math.sqrt(d)  # sinks: aligned with the average query
    k[n // 2] += 2.0 * q.mean(0) / q.mean(0).norm() * math.sqrt(d)
    return q.float().view(1, 1, n, d), k.float().view(1, 1, n, d)


def _eagerly(spec):
    """``torch.compile`` off for a variant that compiles (the built-in compiled family, or anything once torch's
    compiler is loaded); nothing for the rest: setting the stance imports the compiler, a second's work."""
    if spec.family == "compiled" or "torch._dynamo" in sys.modules:
        return torch.compiler.set_stance("force_eager")
    return contextlib.nullcontext()


def family_qk(inputs: str, n: int = MAP_N, d: int = FAMILY_D, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """q, k of shape (1, 1, n, d) drawn from an input family (`harness.measure.inputs`, e.g. "local:16")."""
    q, k, _ = parse_inputs(inputs).draw(n, n, batch=1, heads=1, heads_kv=1, d=d, seed=seed)
    return q, k


def attention_map(variant: str, *, mask: Mask = NONE, n: int = MAP_N, seed: int = 0, inputs: str | None = None) -> dict:
    """{"status": "ok", "matrix": n x n list} or {"status": "unsupported"|"error", "reason": ...}; on the
    structured inputs, or (``inputs``) on an input family's at head dim `FAMILY_D`."""
    q, k = structured_qk(n, seed=seed) if inputs is None else family_qk(inputs, n, seed=seed)
    identity = torch.eye(n).view(1, 1, n, n)  # V = I, so the output is the attention matrix
    try:
        if variant == "exact":
            matrix = reference_attention(q, k, identity, mask=mask)
        else:
            spec = get_variant(variant)
            with torch.inference_mode(), _eagerly(spec), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*without torch.compile")  # FlexAttention's eager path
                matrix = spec(q, k, identity, mask=mask, seed=seed)
    except Unsupported as exc:
        return {"status": "unsupported", "reason": str(exc)}
    except Exception as exc:  # a broken variant is a fact for the report, not a reason to stop
        return {"status": "error", "reason": f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"}
    if variant != "exact":  # a variant's map is held to the contract, as its timed calls are
        broken = contract_violation(matrix, q, k, identity) or aliases_input(matrix, (q, k, identity))
        if broken or not torch.isfinite(matrix).all():
            return {"status": "error", "reason": f"{variant} {broken or 'returned a non-finite matrix'}"}
    return {"status": "ok", "matrix": matrix[0, 0].double().tolist()}
