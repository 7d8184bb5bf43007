"""Sweep definitions: presets, TOML files and flags, expanded to a list of `Case`s.

A `Sweep` is the grid variants x devices x seq_lens x batch x heads x head_dim
x dtype x causal x mode; a preset or a TOML file gives one, flags override
its fields. ``max_seq_len`` trims the grid for slow variants at large N (per
variant, optionally per mode), so a preset's time budget holds.

TOML keys are the `Sweep` field names::

    variants = ["naive", "sdpa"]      # or "all"
    seq_lens = "128:8192:x2"          # or [128, 256]
    dtypes = ["float32"]
    [max_seq_len]
    naive = 4096
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

import torch

from variants import get_variant, list_variants

from ..measure.case import Case
from .settings import SweepError, normalize


@dataclass(frozen=True)
class Sweep:
    """A grid of cases. ``variants == ("all",)`` means every variant available on the device."""

    variants: tuple[str, ...] = ("all",)
    devices: tuple[str, ...] = ("cpu",)
    seq_lens: tuple[int, ...] = (128, 256, 512, 1024, 2048, 4096)
    batch: tuple[int, ...] = (1,)
    heads: tuple[int, ...] = (8,)
    head_dim: tuple[int, ...] = (64,)
    dtypes: tuple[str, ...] = ("float32",)
    causal: tuple[bool, ...] = (False,)
    modes: tuple[str, ...] = ("fwd",)
    threads: int = field(default_factory=torch.get_num_threads)
    input_scale: float = 1.0
    seed: int = 0
    timeout_s: float = 120.0
    max_time_s: float = 1.0  # per-case cap on the timing loop (harness.timing)
    # Trims: "variant" or "variant:mode" -> largest N run; larger N are left out of the grid.
    max_seq_len: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, Sweep] = {
    # Every variant available on the device, N = 128..4096, forward fp32: ~2 minutes on 2 CPU cores.
    "quick": Sweep(),
    # Quick plus causal, bf16 and forward+backward, N up to 8192. Trimmed to stay
    # under 15 minutes on a 2-core CPU: forward+backward of the quadratic-time
    # variants stops at N=4096 (at 8192 one call takes 1-5 s, and each case makes
    # about seven calls), and so do naive and sdpa-math forward (2-3 s a call at
    # 8192, and their O(N^2) memory is already plain by 4096); the linear-time
    # variants, and sdpa, sdpa-flash and the chunked ones forward, go to 8192.
    "default": Sweep(
        seq_lens=(128, 256, 512, 1024, 2048, 4096, 8192),
        dtypes=("float32", "bfloat16"),
        causal=(False, True),
        modes=("fwd", "fwd_bwd"),
        max_time_s=0.5,
        max_seq_len={
            "naive": 4096,
            "sdpa-math": 4096,
            **{f"{name}:fwd_bwd": 4096 for name in ("sdpa", "sdpa-flash", "chunked-query", "chunked-online", "xformers")},
        },
    ),
    # N up to 65536; cases predicted not to fit in memory are recorded as skipped.
    "full": Sweep(
        seq_lens=tuple(2**i for i in range(7, 17)),
        dtypes=("float32", "bfloat16"),
        causal=(False, True),
        modes=("fwd", "fwd_bwd"),
        timeout_s=600.0,
    ),
}


SWEEP_FIELDS = [f.name for f in fields(Sweep)]


def load_toml(path: str | Path) -> dict[str, Any]:
    """The settings of a sweep TOML file, validated; `SweepError` names the problem."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SweepError(f"cannot read config {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise SweepError(f"config {path} is not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SweepError(f"malformed TOML in {path}: {exc}") from None
    unknown = sorted(set(data) - set(SWEEP_FIELDS))
    if unknown:
        raise SweepError(f"unknown key {unknown[0]!r} in {path}; known keys: {', '.join(SWEEP_FIELDS)}")
    return {key: normalize(key, value) for key, value in data.items()}


def build_sweep(preset: str | None = None, config: str | Path | None = None, **overrides: Any) -> Sweep:
    """The preset (default ``quick``), then the TOML file's settings, then the overrides (flags)."""
    name = preset or "quick"
    if name not in PRESETS:
        raise SweepError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    sweep = PRESETS[name]
    if config is not None:
        sweep = replace(sweep, **load_toml(config))
    given = {key: normalize(key, value) for key, value in overrides.items() if value is not None}
    return replace(sweep, **given)


def variants_for(sweep: Sweep, device: str) -> list[str]:
    """The sweep's variants on ``device``; "all" means those whose spec can run there."""
    if sweep.variants == ("all",):
        return [n for n in list_variants() if get_variant(n).unavailable_reason(device) is None]
    return list(sweep.variants)


def expand(sweep: Sweep) -> list[Case]:
    """Every case of the grid, grouped by device and variant, N ascending within a group."""
    cases, seen = [], set()
    for device in sweep.devices:
        for variant in variants_for(sweep, device):
            grid = itertools.product(
                sweep.dtypes, sweep.modes, sweep.causal, sweep.batch, sweep.heads, sweep.head_dim, sweep.seq_lens
            )
            for dtype, mode, causal, batch, heads, head_dim, n in grid:
                limit = sweep.max_seq_len.get(f"{variant}:{mode}", sweep.max_seq_len.get(variant))
                if limit is not None and n > limit:
                    continue
                case = Case(
                    variant=variant,
                    seq_len=n,
                    device=device,
                    dtype=dtype,
                    mode=mode,
                    causal=causal,
                    batch=batch,
                    heads=heads,
                    head_dim=head_dim,
                    threads=sweep.threads,
                    input_scale=sweep.input_scale,
                    seed=sweep.seed,
                )
                if case.case_id not in seen:  # "--variants sdpa,sdpa" or "--batch 1,1" name a case twice
                    seen.add(case.case_id)
                    cases.append(case)
    return cases
