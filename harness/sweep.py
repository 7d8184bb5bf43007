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
import math
import os
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

import torch

from variants import DTYPES, get_variant, list_variants

from .case import MAX_INPUT_SCALE, MAX_SEED, MODES, Case


class SweepError(ValueError):
    """An invalid sweep definition; the message is one line naming the bad value."""


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


MAX_SIZE = 2**31 - 1  # lengths, batch, heads, head dims and threads: beyond, a size is a typo
# Fields whose flag is not "--" + the field name.
FLAG_NAMES = {"timeout_s": "--timeout", "max_time_s": "--max-time", "dtypes": "--dtype", "modes": "--mode", "devices": "--device"}
# Numeric fields: (exclusive low, inclusive high).
NUMBER_LIMITS = {"input_scale": (0.0, MAX_INPUT_SCALE), "timeout_s": (0.0, 86400.0), "max_time_s": (0.0, 3600.0)}

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


def parse_seq_lens(text: str) -> tuple[int, ...]:
    """'128,256,512' or 'start:stop:xF' (geometric, stop included) -> sorted distinct lengths."""
    text = text.strip()
    m = re.fullmatch(r"(\S+?):(\S+?):x(\S+)", text)
    if m:
        start, stop, factor = (_positive_int(g, "--seq-lens") for g in m.groups())
        if stop < start:
            raise SweepError(f"--seq-lens {text!r}: stop {stop} is below start {start}")
        if factor < 2:
            raise SweepError(f"--seq-lens {text!r}: the factor after 'x' must be at least 2")
        lengths, n = [], start
        while n <= stop:
            lengths.append(n)
            n *= factor
        return tuple(lengths)
    if not text:
        raise SweepError("--seq-lens is empty")
    return tuple(sorted({_positive_int(part, "--seq-lens") for part in text.split(",")}))


def _positive_int(text: Any, what: str) -> int:
    if isinstance(text, bool):
        raise SweepError(f"{what}: expected a positive integer, got {text!r}")
    if isinstance(text, int):
        value = text
    else:
        try:
            value = int(str(text).strip())
        except ValueError:
            raise SweepError(f"{what}: expected a positive integer, got {text!r}") from None
    if not 1 <= value <= MAX_SIZE:
        raise SweepError(f"{what}: expected a positive integer up to {MAX_SIZE}, got {text!r}")
    return value


def _bool(text: Any, what: str) -> bool:
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise SweepError(f"{what}: expected true or false, got {text!r}")


def _names(value: Any, what: str) -> tuple[str, ...]:
    """Items of ``value`` (a comma-separated string or a list of strings), or a `SweepError`."""
    names = tuple(_items(value))
    for name in names:
        if not isinstance(name, str):
            raise SweepError(f"{what}: expected names (strings), got {name!r}")
    return names


def _choices(value: Any, allowed, what: str) -> tuple[str, ...]:
    """Items of ``value``, each one of ``allowed``, or a `SweepError` naming the first that is not."""
    names = _names(value, what)
    for name in names:
        if name not in allowed:
            raise SweepError(f"unknown {what} {name!r}; known: {', '.join(allowed)}")
    return names


def _items(value: Any) -> list[Any]:
    """A comma-separated string or a list -> list of items."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def normalize(field_name: str, value: Any) -> Any:
    """Validate one field's value (from a flag or a TOML file) into its `Sweep` form."""
    flag = FLAG_NAMES.get(field_name, "--" + field_name.replace("_", "-"))
    if field_name == "seq_lens":
        if isinstance(value, str):
            return parse_seq_lens(value)
        return tuple(sorted({_positive_int(v, flag) for v in _items(value)}))
    if field_name in ("batch", "heads", "head_dim"):
        return tuple(_positive_int(v, flag) for v in _items(value))
    if field_name == "threads":
        threads = _positive_int(value, flag)
        if threads > cpu_count():
            raise SweepError(
                f"{flag} {threads}: this machine has {cpu_count()} CPUs, and threads beyond them wait on each other's run queues"
            )
        return threads
    if field_name == "seed":
        if isinstance(value, bool) or not re.fullmatch(r"[0-9]+", str(value).strip()):
            raise SweepError(f"{flag}: expected a non-negative integer, got {value!r}")
        seed = int(str(value).strip())
        if seed > MAX_SEED:
            raise SweepError(f"{flag}: {value} is too large (at most {MAX_SEED}, a 64-bit seed)")
        return seed
    if field_name in NUMBER_LIMITS:
        low, high = NUMBER_LIMITS[field_name]
        try:
            number = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            number = math.nan
        if not low < number <= high:  # also rejects nan and inf
            raise SweepError(f"{flag}: expected a number in ({low:g}, {high:g}], got {value!r}")
        return number
    if field_name == "dtypes":
        return _choices(value, DTYPES, "dtype")
    if field_name == "modes":
        return _choices(value, MODES, "mode")
    if field_name == "causal":
        return tuple(dict.fromkeys(_bool(v, "--causal") for v in _items(value)))
    if field_name == "devices":
        names = _names(value, flag)
        for name in names:
            check_device(name)
        return names
    if field_name == "variants":
        names = _names(value, flag)
        if names != ("all",):
            for name in names:
                try:
                    get_variant(name)
                except KeyError as exc:
                    raise SweepError(exc.args[0]) from None
        return names
    if field_name == "max_seq_len":
        if not isinstance(value, dict):
            raise SweepError("max_seq_len must be a table of variant[:mode] = N")
        return {str(k): _positive_int(v, f"max_seq_len.{k}") for k, v in value.items()}
    raise SweepError(f"unknown sweep setting {field_name!r}")


def cpu_count() -> int:
    """Logical CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def check_device(name: str) -> str:
    """A device this machine has, or a `SweepError` saying why not."""
    if name not in ("cpu", "cuda"):
        raise SweepError(f"unknown device {name!r}; use cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise SweepError("device cuda is not available on this machine (torch sees no CUDA device)")
    return name


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
