"""A transformer decoder layer around any registered attention variant: what ``--scope layer`` times.

    x (B, N_q, hidden) -> h = norm(x) -> q = h W_Q, k = s W_K, v = s W_V   (s = h, or ``memory`` for cross-attention)
      -> a = attention(q, k, v) (B, H, N_q, D) -> x + a W_O -> x + MLP(norm(x))       -> (B, N_q, hidden)

The tutorial's `variants.layer.SelfAttention` grown up: grouped-query projections (H·D queries, H_kv·D keys and
values), the output projection, pre-norm residuals and the MLP its model names. A `LayerShape` says which MLP:
``gelu`` (two matrices, GELU between, LayerNorm: ViT, CLIP, Whisper, GPT-2), ``swiglu`` (gate, up and down,
SiLU-gated, RMSNorm: Llama, Mistral, Qwen2) or ``geglu`` (the same with tanh-GELU: Gemma). Left out, because they
cost O(N·hidden) beside the projections' O(N·hidden²): biases and rotary position embeddings.

Time: O(N·hidden·(2·H·D + 2·H_kv·D + m·ffn)) for the matrices (m = 2 plain, 3 gated) plus the variant's own;
memory: the weights plus O(N·ffn) activations plus the variant's.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from .masks import NONE, Mask, parse_mask
from .registry import get_variant
from .score_mods import NO_MOD, ScoreMod, parse_score_mod

MLPS = {"gelu": F.gelu, "swiglu": F.silu, "geglu": partial(F.gelu, approximate="tanh")}
NORM_EPS = 1e-5  # Llama's rms_norm_eps and LayerNorm's default: fixed, so the float64 twin computes the same function


@dataclass(frozen=True)
class LayerShape:
    """``mlp`` (a key of MLPS), the model's ``hidden`` size and the MLP's inner ``ffn`` size; spec "swiglu:4096:14336"."""

    mlp: str
    hidden: int
    ffn: int

    @classmethod
    def parse(cls, spec: str) -> LayerShape:
        """ "mlp:hidden:ffn" -> a LayerShape; ValueError with one line otherwise."""
        parts = str(spec).split(":")
        if len(parts) != 3 or parts[0] not in MLPS or not all(p.isdigit() and int(p) > 0 for p in parts[1:]):
            raise ValueError(f"layer {spec!r} is not MLP:hidden:ffn with MLP one of {', '.join(MLPS)} "
                             "and two positive sizes (e.g. swiglu:4096:14336)")  # fmt: skip
        return cls(parts[0], int(parts[1]), int(parts[2]))

    @property
    def spec(self) -> str:
        return f"{self.mlp}:{self.hidden}:{self.ffn}"

    @property
    def gated(self) -> bool:
        return self.mlp != "gelu"

    def linear_flops(self, n_q: int, n_kv: int, heads: int, heads_kv: int, head_dim: int, cross: bool) -> float:
        """FLOPs of the layer's matrix products for one sequence (2 per multiply-add): Q, O and the MLP on N_q
        positions, K and V on N_kv of the memory under cross-attention (else on the N_q positions)."""
        per_query = self.hidden * (2 * heads * head_dim + (3 if self.gated else 2) * self.ffn)
        keys = (n_kv if cross else n_q) * self.hidden * 2 * heads_kv * head_dim
        return 2.0 * (n_q * per_query + keys)

    def weights(self, heads: int, heads_kv: int, head_dim: int) -> int:
        """How many weights the layer holds (norms' included)."""
        attention = self.hidden * (2 * heads + 2 * heads_kv) * head_dim
        return attention + (3 if self.gated else 2) * self.hidden * self.ffn + 2 * self.hidden


class MLP(nn.Module):
    """x (…, hidden) -> (…, hidden): down(act(up x)), or gated, down(act(gate x) · up x)."""

    def __init__(self, shape: LayerShape, **factory) -> None:
        super().__init__()
        self.act = MLPS[shape.mlp]
        self.up = nn.Linear(shape.hidden, shape.ffn, bias=False, **factory)
        self.gate = nn.Linear(shape.hidden, shape.ffn, bias=False, **factory) if shape.gated else None
        self.down = nn.Linear(shape.ffn, shape.hidden, bias=False, **factory)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inner = self.act(self.gate(x)) * self.up(x) if self.gate is not None else self.act(self.up(x))
        return self.down(inner)


class DecoderLayer(nn.Module):
    """A pre-norm decoder layer (module docstring) with ``variant`` as its attention; weights drawn from ``seed``
    (PyTorch's default initialization, the global generator left as it was)."""

    def __init__(self, shape: LayerShape, *, heads: int, heads_kv: int | None = None, head_dim: int,
                 variant: str = "naive", mask: Mask | str = NONE, score_mod: ScoreMod | str = NO_MOD, seed: int = 0,
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> None:  # fmt: skip
        super().__init__()
        heads_kv = heads_kv or heads
        if heads % heads_kv:
            raise ValueError(f"heads_kv={heads_kv} must divide heads={heads}")
        self.shape, self.heads, self.heads_kv, self.head_dim = shape, heads, heads_kv, head_dim
        self.core, self.mask, self.score_mod, self.seed = get_variant(variant), parse_mask(mask), parse_score_mod(score_mod), seed
        # Drawn on the CPU from the CPU generator alone (the same weights on every device, no CUDA generator
        # touched), then moved; a "meta" layer draws nothing (`twin` fills it).
        factory = {"device": "meta" if str(device) == "meta" else "cpu", "dtype": dtype}
        norm = partial(nn.RMSNorm if shape.gated else nn.LayerNorm, shape.hidden, eps=NORM_EPS, **factory)
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            self.norm1, self.norm2 = norm(), norm()
            self.q_proj = nn.Linear(shape.hidden, heads * head_dim, bias=False, **factory)
            self.k_proj = nn.Linear(shape.hidden, heads_kv * head_dim, bias=False, **factory)
            self.v_proj = nn.Linear(shape.hidden, heads_kv * head_dim, bias=False, **factory)
            self.o_proj = nn.Linear(heads * head_dim, shape.hidden, bias=False, **factory)
            self.mlp = MLP(shape, **factory)
        if str(device) != "meta":
            self.to(device)

    def twin(self, dtype: torch.dtype) -> DecoderLayer:
        """This layer with its weights cast to ``dtype`` (the float64 reference's)."""
        device = self.q_proj.weight.device
        twin = DecoderLayer(self.shape, heads=self.heads, heads_kv=self.heads_kv, head_dim=self.head_dim,
                            variant=self.core.name, mask=self.mask, score_mod=self.score_mod, seed=self.seed,
                            device="meta", dtype=dtype)  # fmt: skip
        twin.to_empty(device=device)  # no weights drawn only to be overwritten
        twin.load_state_dict(self.state_dict())  # copied, and cast
        return twin

    def _heads(self, x: torch.Tensor, heads: int) -> torch.Tensor:
        B, N, _ = x.shape
        return x.view(B, N, heads, self.head_dim).transpose(1, 2)  # (B, heads, N, D)

    def attention_inputs(self, x: torch.Tensor, memory: torch.Tensor | None = None, rows: torch.Tensor | None = None):
        """The q (B, H, N_q, D), k, v (B, H_kv, N_kv, D) the attention gets for ``x`` (and ``memory``); with
        ``rows``, q of those query positions only (B, H, R, D): the float64 reference's, which needs no more."""
        h = self.norm1(x)
        source = h if memory is None else memory
        q = self.q_proj(h if rows is None else h[:, rows])
        return self._heads(q, self.heads), self._heads(self.k_proj(source), self.heads_kv), \
            self._heads(self.v_proj(source), self.heads_kv)  # fmt: skip

    def after_attention(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        """x (B, R, hidden) and its rows' attention output (B, H, R, D) -> the layer's output rows (B, R, hidden)."""
        B, R, _ = x.shape
        x = x + self.o_proj(attended.transpose(1, 2).reshape(B, R, -1))
        return x + self.mlp(self.norm2(x))

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, N_q, hidden), ``memory`` (B, N_kv, hidden) for cross-attention -> (B, N_q, hidden)."""
        q, k, v = self.attention_inputs(x, memory)
        return self.after_attention(x, self.core(q, k, v, mask=self.mask, score_mod=self.score_mod, seed=self.seed))

    def extra_repr(self) -> str:
        return f"{self.shape.spec}, variant={self.core.name!r}, mask={self.mask.spec!r}, score_mod={self.score_mod.spec!r}"
