"""One benchmark case: a frozen description, its stable id, and its seeded inputs."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields

import torch

from variants import DTYPES
from variants.kv_lens import KVLensError, cache_lengths
from variants.kv_lens import refusal as kv_lens_refusal
from variants.masks import CAUSAL, NONE, Mask
from variants.score_mods import NO_MOD, ScoreMod

from .fields import CASE_FIELDS, plain
from .inputs import GAUSSIAN, InputFamily
from .labels import case_label

# The fields of the first release: hashed always. A field added since is hashed only when it differs from its
# default, so every case an older run recorded keeps its id, and that run still resumes.
FIRST_RELEASE = ("variant", "seq_len", "device", "dtype", "mode", "batch", "heads", "head_dim", "threads",
                 "input_scale", "seed")  # fmt: skip
OPTIONAL = ("heads_kv", "q_len", "layer")  # None: as many as the heads, as the keys; the layer of the shape


@dataclass(frozen=True)
class Case:
    """Everything that determines a measurement, and nothing else.

    Inputs are q (batch, heads, n_q, head_dim) and k, v (batch, heads_kv,
    seq_len, head_dim), Gaussian times ``input_scale`` (unit-scale inputs give
    nearly uniform attention; larger scales give the peaked attention real
    models have). ``seq_len`` is N, the keys; ``q_len`` the queries (default N;
    ``decode`` defaults to 1: queries at the end of an N-key cache; otherwise
    any number: cross-attention). ``model`` names the model the shapes are of.
    ``heads_kv`` (default ``heads``) divides ``heads``: grouped-query heads.
    ``mask`` is a `variants.masks.Mask` and ``score_mod`` a
    `variants.score_mods.ScoreMod` (their spec strings are parsed here).
    ``mode`` is ``fwd``, ``fwd_bwd`` (forward plus backward of a fixed upstream
    gradient) or ``decode`` (forward). ``threads`` defaults to torch's current
    count, recorded so the id pins it. ``allocator``: "pinned" (malloc kept on
    the heap, `harness.measure.allocator`) or "system" (glibc's defaults, as a
    plain Python process has); a worker starts with it. ``cuda_graphs`` (CUDA
    only): time replays of the call's CUDA graph, without launch gaps.
    ``compile_mode``: how a compiled variant compiles (`variants.compiled`).

    Every field is checked by the parser of the sweep field that fills it
    (`harness.measure.fields`); `to_dict` is its one serialization.
    """

    variant: str
    seq_len: int
    device: str = "cpu"
    dtype: str = "float32"
    mode: str = "fwd"
    batch: int = 1
    heads: int = 8
    head_dim: int = 64
    threads: int = field(default_factory=torch.get_num_threads)
    input_scale: float = 1.0
    seed: int = 0
    mask: Mask = NONE
    score_mod: ScoreMod = NO_MOD
    heads_kv: int | None = None
    q_len: int | None = None
    allocator: str = "pinned"
    cuda_graphs: bool = False
    energy: bool = False  # CUDA only: measure energy per call (harness.measure.energy)
    compile_mode: str = "default"  # how a compiled variant compiles (variants.compiled.COMPILE_MODES)
    model: str | None = None  # the model whose shapes these are (`harness.measure.models`), as --model named it
    inputs: InputFamily = GAUSSIAN
    kv_layout: str = "contiguous"
    kv_lens: str = "equal"
    scope: str = "attention"
    layer: str | None = None

    def __post_init__(self) -> None:
        for sweep_field in CASE_FIELDS:
            name = sweep_field.case
            value = getattr(self, name)
            if value is None and name in OPTIONAL:
                continue
            what = f"Case.{name}"
            try:
                object.__setattr__(self, name, sweep_field.parse(value, what))
            except ValueError as exc:
                raise ValueError(str(exc) if str(exc).startswith(what) else f"{what}: {exc}") from None
        if self.heads_kv == self.heads:
            object.__setattr__(self, "heads_kv", None)  # one spelling of "as many as q", one id
        if self.mode == "decode" and self.q_len is None:
            object.__setattr__(self, "q_len", 1)
        if self.mode == "decode" and self.q_len > self.seq_len:  # the last queries of the sequence
            raise ValueError(f"Case.q_len of a decode case must be a positive integer up to {self.seq_len}, got {self.q_len!r}")
        if self.kv_layout != "contiguous" and self.mode != "decode":
            raise ValueError(f"Case.kv_layout {self.kv_layout} is a decode cache; this case's mode is {self.mode}")
        self._check_kv_lens()
        if self.model is not None and not (isinstance(self.model, str) and self.model):
            raise ValueError(f"Case.model must be a model's name, got {self.model!r}")
        self._check_scope()
        if self.heads_kv is not None and self.heads % self.heads_kv:
            raise ValueError(f"Case.heads_kv must divide heads={self.heads}, got {self.heads_kv}")
        for flag in ("cuda_graphs", "energy"):
            if getattr(self, flag) and not self.device.startswith("cuda"):
                raise ValueError(f"Case.{flag} is true only on a CUDA device, got true on {self.device}")

    def _check_kv_lens(self) -> None:
        """Unequal cache lengths: a decode case's, that fit its batch and N (`variants.kv_lens`)."""
        if self.kv_lens == "equal":
            return
        if self.mode != "decode":
            raise ValueError(f"Case.kv_lens {self.kv_lens} are a decode batch's cache lengths; this case's mode is {self.mode}")
        why = kv_lens_refusal(self.mask, self.score_mod.kind)
        if why:
            raise ValueError(f"Case.kv_lens {self.kv_lens}: {why}")
        try:
            _ = self.cache_lengths  # given lengths that do not fit this batch and N raise here
        except KVLensError as exc:
            raise ValueError(f"Case.kv_lens {self.kv_lens}: {str(exc).split(': ', 1)[-1]}") from None

    @property
    def cache_lengths(self) -> tuple[int, ...] | None:
        """Each sequence's cache length (``kv_lens``; drawn from the seed), or None when all hold N."""
        return cache_lengths(self.kv_lens, self.batch, self.seq_len, self.n_q, self.seed)

    def _check_scope(self) -> None:
        """A layer or model case has a layer (default: GPT-2's, gelu:H·D:4·H·D; a model's swiglu:H·D:4·H·D) and is a
        forward or training step on Gaussian inputs (a model's: causal, unmodified, gated); an attention case has
        none (one spelling, one id)."""
        if self.scope == "attention":
            object.__setattr__(self, "layer", None)
            return
        if self.layer is None:  # GPT-2's layer; a model's, a Llama's gated one
            width = self.heads * self.head_dim
            object.__setattr__(self, "layer", f"{'swiglu' if self.scope == 'model' else 'gelu'}:{width}:{4 * width}")
        if self.mode == "decode":
            raise ValueError(f"Case.scope {self.scope} times fwd or fwd_bwd (a prefill or training step), not decode")
        if self.inputs != GAUSSIAN:
            raise ValueError(f"Case.scope {self.scope} draws its own Gaussian inputs x; --inputs {self.inputs} shapes q, k, v")
        if self.scope == "model" and (self.mask != CAUSAL or self.score_mod != NO_MOD or self.q_len is not None):
            raise ValueError("Case.scope model runs a Llama model: causal self-attention, no score modification")
        if self.scope == "model" and self.layer.startswith("gelu:"):
            raise ValueError(f"Case.layer {self.layer}: a Llama's MLP is gated (swiglu or geglu)")

    def to_dict(self) -> dict:
        """The case as JSON data (the mask as its spec): what a worker gets, and ``Case(**to_dict())`` undoes."""
        return {f.name: plain(getattr(self, f.name)) for f in fields(self)}

    @property
    def case_id(self) -> str:
        """A content hash of every field: equal cases, equal ids, in any process or run.

        The first release's fields always; a later one only when not at its default. The mask is hashed as the
        first release's ``causal`` flag, and as itself when it is neither "none" nor "causal".
        """
        data = self.to_dict()
        data["causal"] = self.mask == CAUSAL
        for f in fields(self):
            if f.name not in FIRST_RELEASE and (getattr(self, f.name) == f.default or (f.name == "mask" and data["causal"])):
                del data[f.name]
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def n_q(self) -> int:
        """Queries per head: ``q_len``, or N."""
        return self.q_len or self.seq_len

    @property
    def n_heads_kv(self) -> int:
        """Key and value heads: ``heads_kv``, or ``heads``."""
        return self.heads_kv or self.heads

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def label(self) -> str:
        """Short human name: 'sdpa N=1024 cpu float32 fwd causal', 'naive N=4096 cpu float32 decode causal-br · q_len=1
        · heads_kv=2' (`case_label`)."""
        return case_label(self.to_dict(), [name for name in ("q_len", "heads_kv") if getattr(self, name)])


def configuration(case: Case) -> tuple:
    """Everything about a case but its length: cases sharing it differ only in N (one curve of a figure)."""
    return tuple(sorted((k, v) for k, v in case.to_dict().items() if k != "seq_len"))


def seeded_qkv(n_q: int, n_kv: int | None = None, *, batch: int = 1, heads: int = 2, heads_kv: int | None = None,
               d: int = 32, d_v: int | None = None, dtype: torch.dtype = torch.float32, device: str = "cpu",
               seed: int = 0, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """Seeded Gaussian q (B, H, n_q, d), k (B, H_kv, n_kv, d), v (B, H_kv, n_kv, d_v), times ``scale``.

    Drawn in float32 on the CPU from one generator seeded by ``seed``, in the
    order q, k, v, so the same arguments give the same numbers on every device;
    then moved and cast. (The small default shape is the contract checks'.)
    """
    n_kv = n_q if n_kv is None else n_kv
    gen = torch.Generator().manual_seed(seed)
    h_kv = heads if heads_kv is None else heads_kv
    shapes = [(batch, heads, n_q, d), (batch, h_kv, n_kv, d), (batch, h_kv, n_kv, d if d_v is None else d_v)]
    return tuple(  # type: ignore[return-value]
        (torch.randn(shape, generator=gen) * scale).to(device=device, dtype=dtype) for shape in shapes
    )


def make_inputs(case: Case, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The case's q (B, H, N_q, D) and k, v (B, H_kv, N, D) on its device and dtype, drawn from its input family
    (`harness.measure.inputs`; gaussian: the numbers of `seeded_qkv`) with its seed, or ``seed``."""
    drawn = case.inputs.draw(case.n_q, case.seq_len, batch=case.batch, heads=case.heads, heads_kv=case.n_heads_kv,
                             d=case.head_dim, seed=case.seed if seed is None else seed, scale=case.input_scale)  # fmt: skip
    return tuple(t.to(device=case.device, dtype=case.torch_dtype) for t in drawn)  # type: ignore[return-value]


def make_grad_output(case: Case) -> torch.Tensor:
    """The fixed upstream gradient (B, H, N_q, D) a ``fwd_bwd`` case back-propagates."""
    gen = torch.Generator().manual_seed(case.seed + 1)
    shape = (case.batch, case.heads, case.n_q, case.head_dim)
    return torch.randn(shape, generator=gen).to(device=case.device, dtype=case.torch_dtype)
