"""One benchmark case: a frozen description, its stable id, and its seeded inputs."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import torch

from variants import DTYPES

MODES = ("fwd", "fwd_bwd")
# Past this scale softmax is a one-hot argmax in every dtype and float16 inputs
# overflow (65504 / ~4 sigma): larger scales measure overflow, not attention.
MAX_INPUT_SCALE = 1e4
# Seeds feed torch.Generator.manual_seed and int64 columns; +1 is the gradient's seed.
MAX_SEED = 2**63 - 2


@dataclass(frozen=True)
class Case:
    """Everything that determines a measurement, and nothing else.

    Inputs are q, k, v of shape (batch, heads, seq_len, head_dim), Gaussian
    times ``input_scale`` (unit-scale inputs give nearly uniform attention;
    larger scales give the peaked attention real models have). ``mode`` is
    ``fwd`` or ``fwd_bwd`` (forward plus backward of a fixed upstream gradient).
    ``threads`` defaults to torch's current count, recorded so the id pins it.
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

    def __post_init__(self) -> None:
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

    @property
    def case_id(self) -> str:
        """A content hash of every field: equal cases, equal ids, in any process or run."""
        canonical = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def label(self) -> str:
        """Short human name: 'sdpa N=1024 float32 fwd causal cpu'."""
        causal = " causal" if self.causal else ""
        return f"{self.variant} N={self.seq_len} {self.dtype} {self.mode}{causal} {self.device}"


def seeded_qkv(n_q: int, n_kv: int | None = None, *, batch: int = 1, heads: int = 2, d: int = 32,
               d_v: int | None = None, dtype: torch.dtype = torch.float32, device: str = "cpu", seed: int = 0,
               scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """Seeded Gaussian q (B, H, n_q, d), k (B, H, n_kv, d), v (B, H, n_kv, d_v), times ``scale``.

    Drawn in float32 on the CPU from one generator seeded by ``seed``, in the
    order q, k, v, so the same arguments give the same numbers on every device;
    then moved and cast. (The small default shape is the contract checks'.)
    """
    n_kv = n_q if n_kv is None else n_kv
    gen = torch.Generator().manual_seed(seed)
    shapes = [(batch, heads, n_q, d), (batch, heads, n_kv, d), (batch, heads, n_kv, d if d_v is None else d_v)]
    return tuple(  # type: ignore[return-value]
        (torch.randn(shape, generator=gen) * scale).to(device=device, dtype=dtype) for shape in shapes
    )


def make_inputs(case: Case) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The case's q, k, v (B, H, N, D) on its device and dtype (`seeded_qkv` with the case's seed and scale)."""
    return seeded_qkv(
        case.seq_len, batch=case.batch, heads=case.heads, d=case.head_dim, dtype=case.torch_dtype,
        device=case.device, seed=case.seed, scale=case.input_scale,
    )  # fmt: skip


def make_grad_output(case: Case) -> torch.Tensor:
    """The fixed upstream gradient (B, H, N, D) a ``fwd_bwd`` case back-propagates."""
    gen = torch.Generator().manual_seed(case.seed + 1)
    shape = (case.batch, case.heads, case.seq_len, case.head_dim)
    return torch.randn(shape, generator=gen).to(device=case.device, dtype=case.torch_dtype)
