"""One benchmark case: a frozen description, its stable id, and its seeded inputs."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import torch

from variants import DTYPES
from variants.masks import CAUSAL, MaskError, parse_mask

from .allocator import ALLOCATORS

MODES = ("fwd", "fwd_bwd", "decode")
# Past this scale softmax is a one-hot argmax in every dtype and float16 inputs
# overflow (65504 / ~4 sigma): larger scales measure overflow, not attention.
MAX_INPUT_SCALE = 1e4
# Seeds feed torch.Generator.manual_seed and int64 columns; +1 is the gradient's seed.
MAX_SEED = 2**63 - 2


@dataclass(frozen=True)
class Case:
    """Everything that determines a measurement, and nothing else.

    Inputs are q (batch, heads, n_q, head_dim) and k, v (batch, heads_kv,
    seq_len, head_dim), Gaussian times ``input_scale`` (unit-scale inputs give
    nearly uniform attention; larger scales give the peaked attention real
    models have). ``seq_len`` is N, the keys; ``q_len`` the queries (default N;
    ``decode`` defaults to 1: queries at the end of an N-key cache).
    ``heads_kv`` (default ``heads``) divides ``heads``: grouped-query heads.
    ``mask`` is a `variants.masks` spec; ``causal=True`` is its "causal"
    shorthand, and ``causal`` always says whether the mask is "causal".
    ``mode`` is ``fwd``, ``fwd_bwd`` (forward plus backward of a fixed upstream
    gradient) or ``decode`` (forward). ``threads`` defaults to torch's current
    count, recorded so the id pins it. ``allocator``: "pinned" (malloc kept on
    the heap, `harness.measure.allocator`) or "system" (glibc's defaults, as a
    plain Python process has); a worker starts with it. ``cuda_graphs`` (CUDA
    only): time replays of the call's CUDA graph, without launch gaps.
    """

    variant: str
    seq_len: int
    device: str = "cpu"
    dtype: str = "float32"
    mode: str = "fwd"
    causal: bool = False
    batch: int = 1
    heads: int = 8
    head_dim: int = 64
    threads: int = field(default_factory=torch.get_num_threads)
    input_scale: float = 1.0
    seed: int = 0
    mask: str = "none"
    heads_kv: int | None = None
    q_len: int | None = None
    allocator: str = "pinned"
    cuda_graphs: bool = False

    def __post_init__(self) -> None:
        try:
            mask = parse_mask(self.mask, causal=self.causal)
        except MaskError as exc:
            raise ValueError(f"Case.mask: {exc}") from None
        object.__setattr__(self, "mask", mask.spec)  # the canonical spelling; causal says whether it is "causal"
        object.__setattr__(self, "causal", mask == CAUSAL)
        if self.heads_kv == self.heads:
            object.__setattr__(self, "heads_kv", None)  # one spelling of "as many as q", one id
        if self.mode == "decode" and self.q_len is None:
            object.__setattr__(self, "q_len", 1)
        self._validate()

    def _validate(self) -> None:
        for name in ("seq_len", "batch", "heads", "head_dim", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Case.{name} must be a positive integer, got {value!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"Case.dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.mode not in MODES:
            raise ValueError(f"Case.mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not isinstance(self.device, str) or self.device.split(":")[0] not in ("cpu", "cuda"):
            raise ValueError(f"Case.device must be cpu or cuda, got {self.device!r}")
        if not (isinstance(self.input_scale, (int, float)) and 0 < self.input_scale <= MAX_INPUT_SCALE):
            raise ValueError(f"Case.input_scale must be a number in (0, {MAX_INPUT_SCALE:g}], got {self.input_scale!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"Case.seed must be an integer in [0, {MAX_SEED}], got {self.seed!r}")
        for name, limit in (("heads_kv", self.heads), ("q_len", self.seq_len)):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit):
                raise ValueError(f"Case.{name} must be a positive integer up to {limit}, got {value!r}")
        if self.allocator not in ALLOCATORS:
            raise ValueError(f"Case.allocator must be one of {', '.join(ALLOCATORS)}, got {self.allocator!r}")
        if not isinstance(self.cuda_graphs, bool) or (self.cuda_graphs and not self.device.startswith("cuda")):
            raise ValueError(
                f"Case.cuda_graphs is true or false, and true only on a CUDA device, got {self.cuda_graphs!r} on {self.device}"
            )
        if self.heads_kv is not None and self.heads % self.heads_kv:
            raise ValueError(f"Case.heads_kv must divide heads={self.heads}, got {self.heads_kv}")

    @property
    def case_id(self) -> str:
        """A content hash of every field: equal cases, equal ids, in any process or run.

        Fields added after the first release are hashed only when they say
        something the older fields could not (a mask other than none/causal,
        grouped heads, fewer queries than keys, the system allocator, CUDA graphs), so every case an older run
        recorded keeps its id, and that run still resumes.
        """
        fields = asdict(self)
        if self.mask in ("none", "causal"):
            del fields["mask"]
        for name in ("heads_kv", "q_len"):
            if fields[name] is None:
                del fields[name]
        if self.allocator == "pinned":
            del fields["allocator"]
        if not self.cuda_graphs:
            del fields["cuda_graphs"]
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
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
        """Short human name: 'sdpa N=1024 float32 fwd causal cpu', 'naive N=4096 q=1 H_kv=2 ... decode ...'."""
        extra = (f" q={self.q_len}" if self.q_len else "") + (f" H_kv={self.heads_kv}" if self.heads_kv else "")
        mask = "" if self.mask == "none" else f" {self.mask}"
        return f"{self.variant} N={self.seq_len}{extra} {self.dtype} {self.mode}{mask} {self.device}"


def configuration(case: Case) -> tuple:
    """Everything about a case but its length: cases sharing it differ only in N (one curve of a figure)."""
    return tuple(sorted((k, v) for k, v in asdict(case).items() if k != "seq_len"))


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


def make_inputs(case: Case) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The case's q (B, H, N_q, D) and k, v (B, H_kv, N, D) on its device and dtype (`seeded_qkv`)."""
    return seeded_qkv(
        case.n_q, case.seq_len, batch=case.batch, heads=case.heads, heads_kv=case.n_heads_kv, d=case.head_dim,
        dtype=case.torch_dtype, device=case.device, seed=case.seed, scale=case.input_scale,
    )  # fmt: skip


def make_grad_output(case: Case) -> torch.Tensor:
    """The fixed upstream gradient (B, H, N_q, D) a ``fwd_bwd`` case back-propagates."""
    gen = torch.Generator().manual_seed(case.seed + 1)
    shape = (case.batch, case.heads, case.n_q, case.head_dim)
    return torch.randn(shape, generator=gen).to(device=case.device, dtype=case.torch_dtype)
