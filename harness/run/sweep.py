"""Sweep definitions: presets, TOML files and flags, expanded to a list of `Case`s.

A `Sweep` is the grid variants x devices x seq_lens x batch x heads x
heads_kv x head_dim x dtype x mask x mode; its fields, their defaults,
flags, TOML keys and checks are the rows of `harness.measure.fields`. A
preset or a TOML file gives one, flags override its fields. A decode case's
"causal" is bottom-right ("causal-br"), its queries being the last of the
sequence. ``max_seq_len`` trims the grid for slow variants at large N (per
variant, optionally per mode), so a preset's time budget holds.

TOML keys are the `Sweep` field names::

    variants = ["naive", "sdpa"]      # or "all"
    seq_lens = "128:8192:x2"          # or [128, 256]
    dtypes = ["float32"]
    masks = ["none", "sliding:256"]   # causal = [false, true] is the older spelling of ["none", "causal"]
    [max_seq_len]
    naive = 4096
"""

from __future__ import annotations

import importlib.util
import itertools
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from variants import get_variant, list_variants
from variants.compiled import FOLLOW_MODE
from variants.kv_lens import KVLensError, cache_lengths
from variants.kv_lens import refusal as kv_lens_refusal
from variants.masks import CAUSAL, PACKED, Mask, MaskError
from variants.score_mods import NO_MOD

from ..measure.case import Case
from ..measure.fields import BY_NAME, CASE_FIELDS, normalize_settings
from ..measure.inputs import GAUSSIAN
from ..measure.parsers import SweepError
from .grid import Sweep
from .presets import PRESETS

MIN_TIMEOUT_S = 2.0  # below it, even a trivial case (fork, first call, reference, a timing) times out


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
    return normalize_settings(data, str(path))


def build_sweep(preset: str | None = None, config: str | Path | None = None, **overrides: Any) -> Sweep:
    """The preset (default ``quick``), then the TOML file's settings, then the overrides (flags, by field name)."""
    name = preset or "quick"
    if name not in PRESETS:
        raise SweepError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    sweep = PRESETS[name]
    if config is not None:
        sweep = replace(sweep, **load_toml(config))
    given = normalize_settings({key: value for key, value in overrides.items() if value is not None}, "the flags")
    models = given.get("models", sweep.models)
    if models:  # each model's configurations replace the grids: its shapes are what is measured
        sweep = replace(sweep, grids=tuple(normalize_settings(grid, "a model") for m in models for grid in m.grids()))
    # A flag overrides its field in every sub-grid too: what the user typed wins.
    grids = tuple({k: v for k, v in grid.items() if k not in given or k == "models"} for grid in sweep.grids)
    sweep = replace(sweep, **given, grids=grids)
    if "layer" in given and all(scope == "attention" for grid in sweep.subgrids() for scope in grid.scopes):
        raise SweepError("--layer shapes the layer of --scope layer or model; this sweep times attention alone")
    for grid in sweep.subgrids():
        check_combinations(grid)
    # What was asked of the whole sweep, not a preset's grid: `--preset gpu --device cpu` (a rehearsal) runs its
    # grids that ask for energy or graphs without them (`_expand_grid` gives those to CUDA cases only).
    for flag, does in (("cuda_graphs", "times CUDA graph replays"), ("energy", "reads a GPU's energy counter")):
        if getattr(sweep, flag) and not any(device.startswith("cuda") for device in sweep.devices):
            raise SweepError(f"{BY_NAME[flag].option} {does}; this sweep's devices are {', '.join(sweep.devices)}")
    return sweep


def check_combinations(sweep: Sweep) -> Sweep:
    """``sweep``, or a `SweepError` for settings that are valid alone but not together."""
    for h_kv in sweep.heads_kv:
        for h in sweep.heads:
            if h % h_kv:
                raise SweepError(f"--kv-heads {h_kv} does not divide --heads {h}: each query head reads one key head")
    if sweep.timeout_s < MIN_TIMEOUT_S:
        raise SweepError(f"--timeout {sweep.timeout_s:g}: at least {MIN_TIMEOUT_S:g} s (a case's worker starts, "
                         "checks its first call against float64 and times it within it)")  # fmt: skip
    for mask in (m for m in sweep.masks if m.kind in PACKED):
        for n in sweep.seq_lens:
            try:
                mask.doc_lengths(n)
            except MaskError as exc:
                raise SweepError(str(exc)) from None
    for family in (f for f in sweep.inputs if f.kind == "lowrank" and f.size > min(sweep.head_dim)):
        raise SweepError(f"--inputs {family}: the rank {family.size} is above --head-dim {min(sweep.head_dim)}")
    paged = [layout for layout in sweep.kv_layouts if layout != "contiguous"]
    if paged and set(sweep.modes) - {"decode"}:
        raise SweepError(f"--kv-layout {paged[0]} is a decode cache; this sweep's modes are {', '.join(sweep.modes)}")
    _check_kv_lens(sweep)
    for scope in (s for s in sweep.scopes if s != "attention"):
        if "decode" in sweep.modes:
            raise SweepError(f"--scope {scope} times fwd or fwd_bwd (a prefill or training step), not decode")
        if any(f != GAUSSIAN for f in sweep.inputs):
            raise SweepError(f"--scope {scope} draws its own Gaussian inputs x; --inputs shapes the q, k, v of attention alone")
    if "model" in sweep.scopes:
        _check_model_scope(sweep)
    if "decode" in sweep.modes and (sweep.q_len or 1) > min(sweep.seq_lens):
        raise SweepError(f"--q-len {sweep.q_len} is larger than N={min(sweep.seq_lens)}: decode queries follow the N keys")
    return sweep


def _check_kv_lens(sweep: Sweep) -> None:
    """Unequal cache lengths: decode only, masks and score modifications they can take, lengths that fit."""
    unequal = [spec for spec in sweep.kv_lens if spec != "equal"]
    if not unequal:
        return
    if set(sweep.modes) - {"decode"}:
        raise SweepError(f"--kv-lens {unequal[0]} are a decode batch's cache lengths; this sweep's modes are "
                         f"{', '.join(sweep.modes)}")  # fmt: skip
    for mask in sweep.masks:
        for mod in sweep.score_mods:
            why = kv_lens_refusal(mask, mod.kind)
            if why:
                raise SweepError(f"--kv-lens {unequal[0]}: {why}")
    for spec in unequal:
        for n in sweep.seq_lens:
            for batch in sweep.batch:
                try:
                    cache_lengths(spec, batch, n, sweep.q_len or 1, sweep.seed)
                except KVLensError as exc:
                    raise SweepError(f"--kv-lens {spec}: at N={n}, batch {batch}: {str(exc).split(': ', 1)[-1]}") from None


def _check_model_scope(sweep: Sweep) -> None:
    """--scope model runs Transformers' Llama: the extra installed, causal self-attention, unmodified scores."""
    if importlib.util.find_spec("transformers") is None:
        raise SweepError("--scope model runs a Transformers model: pip install -e '.[hf]'")
    if set(sweep.masks) != {CAUSAL} or set(sweep.score_mods) != {NO_MOD} or sweep.q_len is not None:
        raise SweepError("--scope model runs a Llama model: --mask causal, no --score-mod and no --q-len")
    if sweep.layer is not None and sweep.layer.startswith("gelu:"):
        raise SweepError(f"--scope model runs a Llama model, whose MLP is gated: --layer {sweep.layer} is not (swiglu or geglu)")


def _decoding(mask: Mask, mode: str) -> Mask:
    """A decode case's causal mask is bottom-right: its queries are the last of the sequence."""
    return Mask("causal-br") if mode == "decode" and mask == CAUSAL else mask


def variants_for(sweep: Sweep, device: str) -> list[str]:
    """The sweep's variants on ``device``; "all" means those whose spec can run there and serves one of the
    grid's masks, one of its score modifications and one of its KV layouts (else it would give only
    ``unsupported`` rows), less those registered ``in_all=False`` (run where named)."""
    if sweep.variants == ("all",):
        kinds = {_decoding(mask, mode).kind for mask in sweep.masks for mode in sweep.modes} | {m.kind for m in sweep.masks}
        mods = {m.kind for m in sweep.score_mods}
        layouts = {layout.partition(":")[0] for layout in sweep.kv_layouts}
        equal = "equal" in sweep.kv_lens
        return [n for n in list_variants() if get_variant(n).in_all and get_variant(n).unavailable_reason(device) is None
                and kinds & set(get_variant(n).masks) and mods & set(get_variant(n).score_mods)
                and layouts & set(get_variant(n).layouts) and (equal or get_variant(n).ragged)]  # fmt: skip
    return list(sweep.variants)


def expand(sweep: Sweep) -> list[Case]:
    """Every case of the sweep's grids (once each), grouped by device, variant and compile mode, N ascending
    within a group."""
    cases, seen = [], set()
    for case in (case for grid in sweep.subgrids() for case in _expand_grid(grid)):
        if case.case_id not in seen:  # "--variants sdpa,sdpa", "--batch 1,1" or two grids name a case twice
            seen.add(case.case_id)
            cases.append(case)

    def group(case: Case) -> tuple:
        return case.device, case.variant, case.compile_mode

    first = {key: i for i, key in reversed(list(enumerate(group(c) for c in cases)))}
    return sorted(cases, key=lambda c: first[group(c)])  # stable: each grid's order kept within a group


# The grid axes a case varies over within one variant and device, N innermost (each curve's points in a row).
AXES = [f for f in CASE_FIELDS if f.grid and f.name not in ("variants", "devices", "seq_lens")] + [BY_NAME["seq_lens"]]
# The sweep-wide values every case takes as they are.
SCALARS = [f for f in CASE_FIELDS if not f.grid and f.name not in ("q_len", "cuda_graphs", "energy")]


def _expand_grid(sweep: Sweep) -> Iterator[Case]:
    for device in sweep.devices:
        for variant in variants_for(sweep, device):
            scalars = {f.case: getattr(sweep, f.name) for f in SCALARS}
            if variant not in FOLLOW_MODE:  # nothing compiles here as the mode says: one case, whatever the mode
                scalars["compile_mode"] = "default"
            model = sweep.models[0].spec if len(sweep.models) == 1 else None  # a model's grid names it alone
            for values in itertools.product(*(getattr(sweep, f.name) or (None,) for f in AXES)):
                case = dict(zip((f.case for f in AXES), values))
                limit = sweep.max_seq_len.get(f"{variant}:{case['mode']}", sweep.max_seq_len.get(variant))
                if limit is not None and case["seq_len"] > limit:
                    continue
                case["mask"] = _decoding(case["mask"], case["mode"])
                yield Case(variant=variant, device=device, **case, **scalars, q_len=sweep.q_len, model=model,
                           cuda_graphs=sweep.cuda_graphs and device.startswith("cuda"),
                           energy=sweep.energy and device.startswith("cuda"))  # fmt: skip
