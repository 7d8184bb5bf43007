"""The sweep's fields, one row each: flags, TOML keys, validation, the grid and `Case` checks derive from here.

A `Field` says everything about one `harness.run.grid.Sweep` field: its
default and help, its flag (or TOML only), whether it is a grid axis (a
list of values, one case per value) or one value for the whole sweep, the
`Case` field it fills, and its parser (`harness.measure.parsers`). The
argument parser, TOML loading, `Sweep` itself, its expansion into cases and
`Case`'s validation are all derived from `FIELDS`: adding a dimension is one
row here plus the code that uses its value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from variants import DTYPES
from variants.compiled import COMPILE_MODES
from variants.masks import NONE
from variants.score_mods import NO_MOD

from . import parsers as p
from .allocator import ALLOCATORS
from .inputs import GAUSSIAN
from .parsers import MODES, SweepError


@dataclass(frozen=True)
class Field:
    """One sweep field. ``parse(value, what)`` gives one value's canonical form (each item's, for a grid axis)."""

    name: str  # the Sweep field and its TOML key
    parse: Callable[[Any, str], Any]
    default: Any  # a callable is called for each new Sweep (threads: torch's count at that time)
    help: str
    grid: bool = False  # a list of values, one case per value; else one value for the sweep
    case: str | None = None  # the Case field each value fills
    flag: str | None = ""  # "": "--" + the name with dashes; None: a TOML key only
    here: Callable[[Any, str], None] | None = None  # a check against this machine and registry (sweeps, not cases)
    split: Callable[[Any], list] = p.items  # a grid value as typed -> its items
    sort: bool = False  # a grid axis kept sorted (lengths), else in the order given
    workload: bool = True  # says what is measured (else how; `attnbench run` takes only the how)
    in_grids: bool | None = None  # a [[grids]] table may set it (None: when a grid axis)
    alias_of: str | None = None  # an older spelling of another field, accepted as flag and key
    switch: bool = False  # a flag that takes no value

    @property
    def option(self) -> str | None:
        """The flag ("--seq-lens"), or None for a TOML-only field."""
        return None if self.flag is None else self.flag or "--" + self.name.replace("_", "-")

    @property
    def what(self) -> str:
        """How an error names the field: its flag, or its TOML key."""
        return self.option or self.name

    def normalize(self, value: Any) -> Any:
        """``value`` as typed -> the Sweep field's value (a tuple for a grid axis); `SweepError` with one line."""
        if not self.grid:
            value = self.parse(value, self.what)
            if self.here:
                self.here(value, self.what)
            return value
        values = list(dict.fromkeys(self.parse(item, self.what) for item in self.split(value)))
        if not values and self.default != ():
            raise SweepError(f"{self.what} is empty")
        if "all" in values and len(values) > 1:
            raise SweepError(f"{self.what}: 'all' stands alone, got {value!r}")
        for item in values:
            if self.here:
                self.here(item, self.what)
        return tuple(sorted(values) if self.sort else values)


def _grids(value: Any, what: str) -> tuple[dict[str, Any], ...]:
    """``[[grids]]`` tables: each key a field a grid may set, each value validated."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(grid, dict) for grid in value):
        raise SweepError("grids must be a list of tables ([[grids]] in TOML), each of grid fields")
    allowed = [f.name for f in FIELDS if f.in_grids or (f.in_grids is None and f.grid)]
    for grid in value:
        unknown = sorted(set(grid) - set(allowed))
        if unknown:
            raise SweepError(f"unknown grid key {unknown[0]!r}; a grid sets: {', '.join(allowed)}")
    return tuple(normalize_settings(grid, "a grid") for grid in value)


# The order is the flags' order in --help and the keys' in sweep.json.
FIELDS: tuple[Field, ...] = (
    Field("variants", p.variant_name, ("all",), "comma-separated names, or 'all' (default: all available)",
          grid=True, case="variant", here=p.registered),
    Field("devices", p.device_name, ("cpu",), "comma-separated: cpu,cuda,cuda:N", grid=True, case="device",
          flag="--device", here=p.on_this_machine),
    Field("seq_lens", p.positive_int, (128, 256, 512, 1024, 2048, 4096), "128,256,512 or 128:8192:x2 (the keys, N)",
          grid=True, case="seq_len", split=p.seq_len_items, sort=True),
    Field("batch", p.positive_int, (1,), "comma-separated batch sizes", grid=True, case="batch"),
    Field("heads", p.positive_int, (8,), "comma-separated query head counts", grid=True, case="heads"),
    Field("head_dim", p.positive_int, (64,), "comma-separated head dims", grid=True, case="head_dim"),
    Field("dtypes", p.one_of(DTYPES, "dtype"), ("float32",), "comma-separated: " + ",".join(DTYPES), grid=True,
          case="dtype", flag="--dtype"),
    Field("masks", p.mask, (NONE,), "comma-separated: none,causal,causal-br,sliding:W,document:K,prefix:P,docs:K,"
          "docs:a+b+...,docs-bi:K", grid=True, case="mask", flag="--mask"),
    Field("score_mods", p.score_mod, (NO_MOD,), "comma-separated: none,alibi,softcap:C,rel-bias:R (before the mask)",
          grid=True, case="score_mod", flag="--score-mod"),
    Field("causal", p.causal_mask, None, "comma-separated: false,true (the older spelling of --mask none,causal)",
          grid=True, alias_of="masks"),
    Field("heads_kv", p.positive_int, (), "comma-separated key/value head counts, each dividing --heads (grouped-query)",
          grid=True, case="heads_kv", flag="--kv-heads"),
    Field("modes", p.one_of(MODES, "mode"), ("fwd",), "comma-separated: " + ",".join(MODES), grid=True, case="mode",
          flag="--mode"),
    Field("q_len", p.positive_int, None, "queries against the N keys: cross-attention in fwd and fwd_bwd (default: N), "
          "the last queries of the sequence in decode (default 1)", case="q_len", in_grids=True),
    Field("kv_layouts", p.kv_layout, ("contiguous",), "comma-separated KV cache layouts of decode cases: "
          "contiguous,paged:P (pages of P tokens in a pool, read through a block table)", grid=True, case="kv_layout",
          flag="--kv-layout"),
    Field("kv_lens", p.kv_lens, ("equal",), "comma-separated cache lengths of a decode batch: equal (each sequence "
          "holds N keys), drawn (seeded log-normal, sigma 1, the longest N) or a+b+... (one per sequence, the longest "
          "N): a server's batch of unequal histories", grid=True, case="kv_lens", flag="--kv-lens"),
    Field("scopes", p.one_of(p.SCOPES, "scope"), ("attention",), "comma-separated: attention (the call alone), layer "
          "(a decoder layer around it: norm, Q/K/V/O projections, MLP; it brings attention along, so each layer's "
          "attention share is measured in the same run), model (a 2-layer Transformers Llama of the shape with the "
          "variant installed as its attention; .[hf], causal)", grid=True, case="scope", flag="--scope", split=p.scope_items),
    Field("layer", p.layer_shape, None, "the decoder layer of --scope layer: MLP:hidden:ffn with MLP gelu, swiglu or "
          "geglu (default gelu:H·D:4·H·D; --model sets its own)", case="layer", in_grids=True),
    Field("inputs", p.inputs, (GAUSSIAN,), "comma-separated input families: gaussian,peaked:T,local:L,lowrank:R,"
          "clustered:C (what the attention looks like; harness.measure.inputs)", grid=True, case="inputs"),
    Field("models", p.model, (), "comma-separated built-in models (llama-3-8b, mistral-7b, gemma-2-9b, vit-b-16, ...) "
          "or Transformers config.json paths: each sets heads, KV heads, head dim, mask and score modification as a "
          "grid of its own (flags override)", grid=True, flag="--model", in_grids=True),
    Field("input_scale", p.number_in(0.0, p.MAX_INPUT_SCALE), 1.0, "standard deviation of the Gaussian inputs",
          case="input_scale"),
    Field("seed", p.seed, 0, "seed of inputs and random projections", case="seed"),
    Field("threads", p.positive_int, torch.get_num_threads, "torch threads per worker (default: torch's own)",
          case="threads", here=p.fits_the_cpus, workload=False),
    Field("allocator", p.one_of(ALLOCATORS, "allocator"), "pinned", "pinned (default: malloc kept on the heap, a "
          "caching allocator's steady state) or system (glibc's defaults, as in a plain Python process)",
          case="allocator", workload=False),
    Field("cuda_graphs", p.boolean, False, "time CUDA cases as replays of a CUDA graph: the kernels without the "
          "host's launch gaps", case="cuda_graphs", workload=False, switch=True),
    Field("energy", p.boolean, False, "measure CUDA cases' energy per call and power (NVML, nvidia-ml-py): a window "
          "of at least 0.5 s of back-to-back calls each, between two ticks of the energy counter", case="energy",
          workload=False, switch=True, in_grids=True),
    Field("compile_mode", p.one_of(COMPILE_MODES, "compile mode"), "default", "how the compiled variants (flex, "
          "naive-compiled) compile: default (dynamic shapes, one compile for every N), static (one compile per shape) "
          "or max-autotune-no-cudagraphs (per shape, Triton tiles autotuned: 4-15 s a shape on an H200)",
          case="compile_mode", workload=False, in_grids=True),
    Field("timeout_s", p.number_in(0.0, 86400.0), 120.0, "seconds per case before its worker is killed",
          flag="--timeout", workload=False),
    Field("max_time_s", p.number_in(0.0, 3600.0), 1.0, "seconds per case for the timing loops' cap, shared by its "
          "first --rounds rounds", flag="--max-time", workload=False),
    Field("rounds", p.rounds, 3, "independent rounds per case, each in a fresh worker process at another time of "
          "the sweep (default 3; cases whose rounds disagree get up to two more)", workload=False),
    Field("max_seq_len", p.trims, {}, "trims: variant or variant:mode = the largest N run", flag=None, in_grids=True),
    Field("grids", _grids, (), "sub-grids, each a table of grid fields over the sweep's: the cases are their union",
          flag=None),
)  # fmt: skip
BY_NAME = {f.name: f for f in FIELDS}
SWEEP_FIELDS = tuple(f for f in FIELDS if f.alias_of is None)  # the Sweep's own fields
CASE_FIELDS = tuple(f for f in FIELDS if f.case)


def normalize_settings(raw: dict[str, Any], where: str = "the settings") -> dict[str, Any]:
    """Settings as typed (TOML keys or field names) -> Sweep fields, validated; an older spelling becomes its field."""
    settings: dict[str, Any] = {}
    for key, value in raw.items():
        field = BY_NAME.get(key)
        if field is None:
            raise SweepError(f"unknown key {key!r} in {where}; known keys: {', '.join(BY_NAME)}")
        target = field.alias_of or key
        if target in settings:  # a field and its older spelling
            older = next(f for f in FIELDS if f.alias_of == target and f.name in raw)
            raise SweepError(f"{older.what} and {BY_NAME[target].what} together: write it once, as {BY_NAME[target].what}")
        settings[target] = field.normalize(value)
    return settings


def plain(value: Any) -> Any:
    """A setting as JSON data: a `Mask` (anything with a ``spec``) as its spec, tuples as lists."""
    if hasattr(value, "spec"):
        return value.spec
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value
