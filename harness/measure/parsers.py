"""Sweep settings' parsers: one value as typed (a flag's text, a TOML value, a Python object) -> its canonical
form (an int, a `Mask`), or a `SweepError` whose message is one line naming the flag and the value, e.g.
``--seq-lens '128:64:x2': stop 64 is below start 128``. `harness.measure.fields` says which field takes which.

``here`` checks are the machine-dependent ones (the device exists here, the variant is registered, the
threads fit the CPUs): a sweep is checked against this machine, a recorded case never is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from variants import get_variant
from variants.decoder import LayerShape
from variants.kv_lens import KVLensError, parse_kv_lens
from variants.masks import CAUSAL, NONE, MaskError, parse_mask
from variants.score_mods import ScoreModError, parse_score_mod

from .device import DeviceError, check_device, cpu_count
from .inputs import InputsError, parse_inputs
from .kv_layout import KVLayoutError, parse_kv_layout
from .models import ModelError, ModelShape, load_model

MODES = ("fwd", "fwd_bwd", "decode")
# Past this scale softmax is a one-hot argmax in every dtype and float16 inputs
# overflow (65504 / ~4 sigma): larger scales measure overflow, not attention.
MAX_INPUT_SCALE = 1e4
MAX_SEED = 2**63 - 2  # seeds feed torch.Generator.manual_seed and int64 columns; +1 is the gradient's seed
MAX_ROUNDS = 20
MAX_SIZE = 2**31 - 1  # lengths, batch, heads, head dims and threads: beyond, a size is a typo


class SweepError(ValueError):
    """An invalid sweep setting; the message is one line naming the flag (or key) and the value."""


# ---- parsers: one value as typed -> canonical, or a SweepError naming ``what`` -----------------------------


def positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise SweepError(f"{what}: expected a positive integer, got {value!r}")
    try:
        number = int(value.strip()) if isinstance(value, str) else value
    except ValueError:
        raise SweepError(f"{what}: expected a positive integer, got {value!r}") from None
    if not 1 <= number <= MAX_SIZE:
        raise SweepError(f"{what}: expected a positive integer up to {MAX_SIZE}, got {value!r}")
    return number


def boolean(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise SweepError(f"{what}: expected true or false, got {value!r}")


def seed(value: Any, what: str) -> int:
    if isinstance(value, bool) or not re.fullmatch(r"[0-9]+", str(value).strip()):
        raise SweepError(f"{what}: expected a non-negative integer, got {value!r}")
    number = int(str(value).strip())
    if number > MAX_SEED:
        raise SweepError(f"{what}: {value} is too large (at most {MAX_SEED}, a 64-bit seed)")
    return number


def number_in(low: float, high: float) -> Callable[[Any, str], float]:
    """A parser of a number in (low, high]; nan and inf are outside every such range."""

    def parse(value: Any, what: str) -> float:
        try:
            number = math.nan if isinstance(value, bool) else float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not low < number <= high:
            raise SweepError(f"{what}: expected a number in ({low:g}, {high:g}], got {value!r}")
        return number

    return parse


def one_of(allowed, noun: str) -> Callable[[Any, str], str]:
    """A parser of one name from ``allowed``."""

    def parse(value: Any, what: str) -> str:
        if value not in allowed:
            raise SweepError(f"unknown {noun} {value!r}; known: {', '.join(allowed)}")
        return value

    return parse


def rounds(value: Any, what: str) -> int:
    count = positive_int(value, what)
    if count > MAX_ROUNDS:
        raise SweepError(f"{what} {count}: at most {MAX_ROUNDS} (each round is a whole timing of every case)")
    return count


def mask(value: Any, what: str):
    try:
        return parse_mask(value)
    except MaskError as exc:
        raise SweepError(f"{what}: {exc}") from None


def score_mod(value: Any, what: str):
    try:
        return parse_score_mod(value)
    except ScoreModError as exc:
        raise SweepError(f"{what}: {exc}") from None


def causal_mask(value: Any, what: str):
    """The older ``causal`` spelling: true is the mask "causal", false "none"."""
    return CAUSAL if boolean(value, what) else NONE


def model(value: Any, what: str):
    """A `harness.measure.models.ModelShape`: a built-in model's name or a Transformers config.json path."""
    if isinstance(value, ModelShape):
        return value
    if not isinstance(value, str) or not value.strip():
        raise SweepError(f"{what}: expected a model name or a config.json path, got {value!r}")
    try:
        return load_model(value.strip(), what)
    except ModelError as exc:
        raise SweepError(str(exc)) from None


def inputs(value: Any, what: str):
    try:
        return parse_inputs(value)
    except InputsError as exc:
        raise SweepError(f"{what}: {exc}") from None


def kv_layout(value: Any, what: str) -> str:
    try:
        return parse_kv_layout(value)
    except KVLayoutError as exc:
        raise SweepError(f"{what}: {exc}") from None


def kv_lens(value: Any, what: str) -> str:
    try:
        return parse_kv_lens(str(value) if isinstance(value, int) else value)
    except KVLensError as exc:
        raise SweepError(f"{what}: {exc}") from None


SCOPES = ("attention", "layer", "model")


def layer_shape(value: Any, what: str) -> str:
    """A decoder layer's spec "mlp:hidden:ffn" (`variants.decoder.LayerShape`), canonical."""
    try:
        return LayerShape.parse(value).spec
    except ValueError as exc:
        raise SweepError(f"{what}: {exc}") from None


def scope_items(value: Any) -> list[Any]:
    """Scopes as typed -> their items; a layer brings the attention along, so its share is measured in the same run."""
    given = items(value)
    return ["attention", *given] if "layer" in given and "attention" not in given else given


def variant_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or any(c.isspace() or c == "," for c in value):
        raise SweepError(f"{what}: expected variant names, got {value!r}")
    return value


def device_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"cpu|cuda(:[0-9]+)?", value):
        raise SweepError(f"unknown device {value!r}; use cpu, cuda or cuda:N")
    return value


def trims(value: Any, what: str) -> dict[str, int]:
    if not isinstance(value, dict):
        raise SweepError(f"{what} must be a table of variant[:mode] = N")
    return {str(k): positive_int(v, f"{what}.{k}") for k, v in value.items()}


# ---- what this machine and registry allow (sweeps only) ----------------------------------------------------


def registered(name: str, what: str) -> None:
    if name != "all":
        try:
            get_variant(name)
        except KeyError as exc:
            raise SweepError(exc.args[0]) from None


def on_this_machine(name: str, what: str) -> None:
    try:
        check_device(name)
    except DeviceError as exc:
        raise SweepError(str(exc)) from None


def fits_the_cpus(threads: int, what: str) -> None:
    if threads > cpu_count():
        raise SweepError(
            f"{what} {threads}: this machine has {cpu_count()} CPUs, and threads beyond them wait on each other's run queues"
        )


def items(value: Any) -> list[Any]:
    """A comma-separated string or a list -> its items."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def seq_len_items(value: Any) -> list[Any]:
    """'128,256,512', 'start:stop:xF' (geometric, stop included) or a list -> lengths."""
    m = re.fullmatch(r"(\S+?):(\S+?):x(\S+)", value.strip()) if isinstance(value, str) else None
    if not m:
        return items(value)
    start, stop, factor = (positive_int(g, "--seq-lens") for g in m.groups())
    if stop < start:
        raise SweepError(f"--seq-lens {value.strip()!r}: stop {stop} is below start {start}")
    if factor < 2:
        raise SweepError(f"--seq-lens {value.strip()!r}: the factor after 'x' must be at least 2")
    lengths = [start]
    while lengths[-1] * factor <= stop:
        lengths.append(lengths[-1] * factor)
    return lengths
