"""One sweep setting, from a flag or a TOML file, validated into its `Sweep` form.

Every bad value is a `SweepError` whose message is one line naming the flag
and the value, e.g. ``--seq-lens '128:64:x2': stop 64 is below start 128``.
"""

from __future__ import annotations

import math
import re
from typing import Any

from variants import DTYPES, get_variant
from variants.masks import MaskError, parse_mask

from ..measure.allocator import ALLOCATORS
from ..measure.case import MAX_INPUT_SCALE, MAX_SEED, MODES
from ..measure.device import DeviceError, check_device, cpu_count


class SweepError(ValueError):
    """An invalid sweep definition; the message is one line naming the bad value."""


MAX_ROUNDS = 20
MAX_SIZE = 2**31 - 1  # lengths, batch, heads, head dims and threads: beyond, a size is a typo
# Fields whose flag is not "--" + the field name.
FLAG_NAMES = {"timeout_s": "--timeout", "max_time_s": "--max-time", "dtypes": "--dtype", "modes": "--mode",
              "devices": "--device", "masks": "--mask", "heads_kv": "--kv-heads"}  # fmt: skip
# Numeric fields: (exclusive low, inclusive high).
NUMBER_LIMITS = {"input_scale": (0.0, MAX_INPUT_SCALE), "timeout_s": (0.0, 86400.0), "max_time_s": (0.0, 3600.0)}


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
    if field_name in ("batch", "heads", "head_dim", "heads_kv"):
        return tuple(_positive_int(v, flag) for v in _items(value))
    if field_name in ("q_len", "rounds"):
        count = _positive_int(value, flag)
        if field_name == "rounds" and count > MAX_ROUNDS:
            raise SweepError(f"{flag} {count}: at most {MAX_ROUNDS} (each round is a whole timing of every case)")
        return count
    if field_name == "masks":
        specs = []
        for spec in _names(value, flag):
            try:
                specs.append(parse_mask(spec).spec)
            except MaskError as exc:
                raise SweepError(f"{flag}: {exc}") from None
        return tuple(dict.fromkeys(specs))
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
    if field_name == "allocator":
        chosen = _choices(value, ALLOCATORS, "allocator")
        if len(chosen) != 1:
            raise SweepError(f"{flag}: one of {', '.join(ALLOCATORS)}, got {value!r}")
        return chosen[0]
    if field_name == "cuda_graphs":
        return _bool(value, flag)
    if field_name == "dtypes":
        return _choices(value, DTYPES, "dtype")
    if field_name == "modes":
        return _choices(value, MODES, "mode")
    if field_name == "causal":
        return tuple(dict.fromkeys(_bool(v, "--causal") for v in _items(value)))
    if field_name == "devices":
        names = _names(value, flag)
        for name in names:
            try:
                check_device(name)
            except DeviceError as exc:
                raise SweepError(str(exc)) from None
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
