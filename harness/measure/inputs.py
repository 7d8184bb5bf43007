"""Input families: what the attention of a case's q, k and v looks like, from uniform to sharp and structured.

Unit Gaussian inputs at scale 1/√d give nearly uniform attention, the regime where low-rank and kernel
approximations look their best and trained models rarely are. Each family stands for attention seen in real
models; all are seeded (one generator, drawn in float32 on the CPU, then moved and cast, so every device gets
the same numbers) and multiplied by the case's ``input_scale``. v is unit Gaussian in every family.

    gaussian       today's inputs, the default: q, k, v ~ N(0, 1)
    peaked:T       the Gaussian queries times T (T = 1 is gaussian): scores T times larger, lower entropy as T grows
                   (a confident head)
    local:L        q and k share a positional code p(t) whose inner products fall as exp(-|i + o - j| / L)
                   (random Fourier features with Cauchy frequencies), added at a strength that lifts a score by
                   about 12 at distance 0 over the Gaussian's noise: attention concentrates within ~L keys (the
                   local heads of most trained language models); at L of a few keys a head attends mostly to
                   itself, and the code's rank (d) leaves far keys a little correlation
    lowrank:R      q and k in one R-dimensional subspace of the head dim (what low-rank methods assume), scaled
                   to the Gaussian's norm
    clustered:C    q and k drawn around C shared centroids, whose scores within a cluster are about 6 over the
                   noise (what routing and LSH attention assume)
    trained        q, k and v from a small attention model trained on associative recall until it solves it
                   (`harness.measure.trained`): sharp, long-range attention, as a retrieval head's
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import trained

KINDS = ("gaussian", "peaked", "local", "lowrank", "clustered", "trained")
LOCAL_LIFT = 12.0  # a local code's score at distance 0, in units of the scaled scores' standard deviation
CLUSTER_LIFT = 6.0  # a centroid's score with itself, scaled


class InputsError(ValueError):
    """An input family spec that names none; the message is one line."""


@dataclass(frozen=True)
class InputFamily:
    """One family: a kind from `KINDS` and its size (T, L, R or C; none for gaussian)."""

    kind: str = "gaussian"
    size: float | int | None = None

    @property
    def spec(self) -> str:
        """The string form, e.g. "peaked:4" (the results table's ``inputs`` column)."""
        return self.kind if self.size is None else f"{self.kind}:{self.size:g}"

    def __str__(self) -> str:
        return self.spec

    def task_accuracy(self, d: int) -> float | None:
        """The trained family's model's accuracy on its task at head dim ``d`` (None for the other families)."""
        return trained.recall_model(d).accuracy if self.kind == "trained" else None

    def draw(self, n_q: int, n_kv: int, *, batch: int, heads: int, heads_kv: int, d: int, d_v: int | None = None,
             seed: int = 0, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
        """q (B, H, N_q, d), k (B, H_kv, N_kv, d), v (B, H_kv, N_kv, d_v) in float32 on the CPU. O((N_q + N_kv)·H·d)."""
        gen = torch.Generator().manual_seed(seed)
        if self.kind == "trained" and d_v in (None, d):
            return _scaled(trained.draw(n_q, n_kv, batch=batch, heads=heads, heads_kv=heads_kv, d=d, gen=gen), scale)
        q = torch.randn((batch, heads, n_q, d), generator=gen)
        k = torch.randn((batch, heads_kv, n_kv, d), generator=gen)
        v = torch.randn((batch, heads_kv, n_kv, d if d_v is None else d_v), generator=gen)
        if self.kind == "peaked":
            q = q * self.size
        elif self.kind == "local":
            offset = n_kv - n_q  # query i sits at key position i + o, as the masks align them
            code = _positional_code(torch.arange(min(offset, 0), n_kv), d, self.size, gen)
            lift = math.sqrt(LOCAL_LIFT * math.sqrt(d))  # (lift·p_i)·(lift·p_j)/√d = LOCAL_LIFT·exp(-|i-j|/L)
            first = -min(offset, 0)
            q = q + lift * code[first + offset : first + offset + n_q]
            k = k + lift * code[first : first + n_kv]
        elif self.kind == "lowrank":
            basis = torch.linalg.qr(torch.randn((d, self.size), generator=gen)).Q.T  # (R, d), orthonormal rows
            norm = math.sqrt(d / self.size)
            q = q[..., : self.size] @ basis * norm
            k = k[..., : self.size] @ basis * norm
        elif self.kind == "clustered":
            centroids = torch.randn((self.size, d), generator=gen) * math.sqrt(CLUSTER_LIFT / math.sqrt(d))
            q = q + centroids[torch.randint(self.size, q.shape[:-1], generator=gen)]
            k = k + centroids[torch.randint(self.size, k.shape[:-1], generator=gen)]
        return _scaled((q, k, v), scale)


def _scaled(tensors: tuple[torch.Tensor, ...], scale: float) -> tuple[torch.Tensor, ...]:
    """``tensors`` times ``scale``, in place: no second copy of a cache that may fill the memory budget."""
    if scale != 1.0:
        for tensor in tensors:
            tensor.mul_(scale)
    return tensors


def _positional_code(positions: torch.Tensor, d: int, length: int, gen: torch.Generator) -> torch.Tensor:
    """(len(positions), d) unit-norm-on-average codes p(t) with p(t)·p(s) ≈ exp(-|t - s| / length): random
    Fourier features of the Laplace kernel, whose frequencies are Cauchy with scale 1 / length."""
    half = d // 2
    # Stratified (one quantile per feature, in a seeded order of jitter): the kernel's estimate at a distance
    # far beyond the length averages out, where independent draws leave correlations of ~1/sqrt(d).
    quantile = (torch.arange(half, dtype=torch.float64) + torch.rand(half, generator=gen, dtype=torch.float64)) / half
    frequency = torch.tan(math.pi * (quantile - 0.5)) / length
    angle = positions[:, None].double() * frequency  # (len, d/2)
    code = torch.cat([torch.cos(angle), torch.sin(angle)], dim=-1) / math.sqrt(half)  # p(t)·p(s) = mean cos(ω(t-s))
    return torch.nn.functional.pad(code, (0, d - 2 * half)).float()  # an odd d's last coordinate stays 0


GAUSSIAN = InputFamily()
KNOWN = "gaussian, peaked:T, local:L, lowrank:R, clustered:C, trained"


def parse_inputs(spec: str | InputFamily | None = None) -> InputFamily:
    """The one parser: an `InputFamily` from a spec (one of `KNOWN`), a family as it is, or None (gaussian)."""
    if isinstance(spec, InputFamily):
        return spec
    if spec is None or spec == "gaussian":
        return GAUSSIAN
    if spec == "trained":
        return InputFamily("trained")
    if not isinstance(spec, str):
        raise InputsError(f"an input family is a spec string, got {spec!r}")
    kind, _, size = spec.strip().partition(":")
    if kind not in KINDS or kind in ("gaussian", "trained"):
        raise InputsError(f"unknown input family {spec!r}; known: {KNOWN}")
    if kind == "peaked":
        try:
            value = float(size)
        except ValueError:
            value = float("nan")
        if not (math.isfinite(value) and value > 0):
            raise InputsError(f"input family {spec!r}: peaked:T takes a finite number T above 0")
        return InputFamily(kind, value)
    if not size.isdigit() or not 1 <= int(size) <= 2**31 - 1:
        letter = {"local": "L", "lowrank": "R", "clustered": "C"}[kind]
        raise InputsError(f"input family {spec!r}: {kind}:{letter} takes a positive integer {letter}")
    return InputFamily(kind, int(size))
