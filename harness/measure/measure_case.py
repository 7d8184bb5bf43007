"""`measure_case`: one case in, one `Record` out -- the single entry point the runner calls.

The passes, in order, each separate so none disturbs another:
1. one untimed call, whose output is checked against float64 (accuracy);
2. timing (`harness.measure.timing`); a variant that compiled in its first
   calls has their wall time as ``compile_s``, never part of the samples;
3. energy (CUDA, ``--energy``: `harness.measure.energy`) and peak memory (`harness.measure.memory`), never during timing.
A failure in any pass is data: a record with a status and a reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from time import perf_counter  # bound before any plugin loads
from typing import Any

import torch

from variants import Unsupported, get_variant
from variants.compiled import compile_mode
from variants.masks import NONE, Mask

from .accuracy import DEFAULT_MAX_ROWS, exact_rows, measure_accuracy
from .allocator import allocator_state, pin_allocator
from .canary import canary_time
from .case import Case, make_inputs
from .case_work import case_bytes, case_flops, declared_classes
from .compilation import compiled_graphs, recompile_warning
from .contract import aliases_input, input_damage, non_finite, too_wrong, unlike
from .device import device_name
from .energy import case_energy, gpu_columns
from .fidelity import measure_fidelity
from .layer_scope import layer_workload
from .memory import peak_memory
from .model_scope import model_workload
from .record import Record
from .reference_cache import ReferenceCache, input_set_key
from .sampling import per_round
from .threads import thread_count
from .timing import time_callable
from .workload import Workload, follows_inputs, plainly, workload

SCOPES = {"layer": layer_workload, "model": model_workload}  # the workloads of a case timed inside more than attention


def record_for(case: Case, status: str = "ok", reason: str = "") -> Record:
    """A record carrying the case's identity, and the variant's spec when it is registered."""
    try:
        spec = get_variant(case.variant)
        # A layer's or model's time is its projections' O(N) plus its attention's: no one class to hold it to.
        classes = declared_classes(spec, case) if case.scope == "attention" else {"declared_time": None, "declared_memory": None}
        described = {"family": spec.family, "exact": spec.exact, **classes,
                     "params": json.dumps(dict(spec.params), sort_keys=True),
                     "gqa_method": spec.gqa_method if case.heads_kv else None,
                     "padding_fraction": spec.padding(case) if spec.padding else None}  # fmt: skip
    except KeyError:
        described = {}
    try:
        name = device_name(case.device)
    except (RuntimeError, AssertionError):  # a CUDA case read on a machine without CUDA
        name = None
    identity = {**case.to_dict(), "heads_kv": case.n_heads_kv, "q_len": case.n_q}
    pairs = case.mask.visible_pairs(case.n_q, case.seq_len)
    return Record(**identity, **described, case_id=case.case_id, device_name=name, status=status, reason=reason,
                  visible_pairs=pairs)  # fmt: skip


def reference_mask(spec, case: Case) -> Mask:
    """The mask of the float64 reference a case's error is measured against: the case's own, or, for an
    approximation that declares ``reference=`` (e.g. "sliding:256") run without a mask, that one."""
    return spec.reference if spec.reference is not None and case.mask == NONE else case.mask


def is_oom(exc: BaseException) -> bool:
    """An allocation failure, whichever way the allocator reported it."""
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def failure_status(exc: BaseException) -> tuple[str, str]:
    """(status, one-line reason) for an exception raised while measuring."""
    if isinstance(exc, Unsupported):
        return "unsupported", str(exc)
    first = (str(exc).strip().splitlines() or [""])[0]
    kind = type(exc).__name__
    if type(exc).__module__.startswith(("torch._dynamo", "torch._inductor")):  # not our Unsupported: say whose
        kind = f"{type(exc).__module__}.{kind}"
    return ("oom" if is_oom(exc) else "error"), f"{kind}: {first}"


def _accuracy(record: Record, spec, case: Case, w: Workload, out, pristine, rows: int, references: ReferenceCache):
    """The first call's error against float64 (`harness.measure.accuracy`; the rows shared through ``references``
    by the variants of one input set); ``record`` an ``error`` when it is beyond what the variant's kind allows
    (`harness.measure.contract.too_wrong`). An approximation's fidelity (`harness.measure.fidelity`) and the
    trained input family's task accuracy go on ``record`` too. A layer or model case's workload brings its own
    ``accuracy`` (`harness.measure.layer_scope`, `harness.measure.model_scope`)."""
    if w.accuracy is not None:  # a layer's output, held to the layer in float64 (`harness.measure.layer_scope`)
        acc = w.accuracy(out, pristine, rows)
    else:
        pristine = w.logical(pristine)
        against = reference_mask(spec, case)
        key = input_set_key(case, against, case.score_mod, rows)
        exact = references.get(key, lambda: exact_rows(*pristine, mask=against, score_mod=case.score_mod,
                                                       max_rows=rows, seed=case.seed, kv_lens=w.kv_lens))  # fmt: skip
        acc = measure_accuracy(out, *pristine, exact=exact)
        record.err_reference = against.spec if against != case.mask else None
    record.inputs_accuracy = case.inputs.task_accuracy(case.head_dim)
    wrong = too_wrong(acc.rel_err, case.torch_dtype, spec.exact, spec.tolerance)
    if wrong:
        record.status, record.reason, record.rel_err = "error", f"{case.variant}: {wrong}", acc.rel_err
    elif not spec.exact and w.accuracy is None:  # how the approximation is wrong, beside how much
        _fidelity(record, spec, case, pristine)
    return acc


def _fidelity(record: Record, spec, case: Case, pristine) -> None:
    """The approximation's implied attention against exact's, on its own inputs (N_kv up to 1024)."""
    found = measure_fidelity(spec, pristine[0], pristine[1], mask=case.mask, score_mod=case.score_mod, seed=case.seed,
                             reference=reference_mask(spec, case))  # fmt: skip
    if found is not None:
        record.attn_tv, record.attn_recall, record.implied_entropy = found.tv, found.recall, found.entropy


def _backend(spec, case: Case, pristine) -> str | None:
    """The kernel a dispatching variant (SDPA) picks for the case, asked with the inputs the timed call gets:
    a dispatcher picks by ``requires_grad`` too."""
    if spec.backend is None:
        return None
    asked = tuple(t.detach().requires_grad_(case.mode == "fwd_bwd") for t in pristine)
    lengths = {} if case.cache_lengths is None else {"kv_lens": torch.tensor(case.cache_lengths, device=case.device)}
    return spec.backend(*asked, mask=case.mask, score_mod=case.score_mod, **lengths)


def _first_call_wrong(out, w: Workload, pristine, variant: str) -> str | None:
    """Why the untimed first call's output is not to be timed (a broken contract, garbage, inputs changed)."""
    inputs = w.inputs
    broken = w.broken(out) or aliases_input(out, inputs)
    if broken:
        return f"contract broken: {variant} {broken}"
    garbage = non_finite(out) or input_damage(inputs, pristine)
    return f"{variant} {garbage}" if garbage else None


def _after_timing(w: Workload, out: torch.Tensor, pristine, case: Case, whole: bool, memory: bool) -> tuple[Any, str | None]:
    """(The peak memory of one call or None, why the timed calls are not to be believed or None), checked after
    them: inputs changed while timed, a last timed output unlike the first (garbage or stale answers in a
    tight loop), or (``whole``: a whole case, not a later round) an answer that does not follow its inputs
    refilled in place (`harness.measure.workload`); with ``memory``, that call is the memory pass's
    (`harness.measure.memory`: the same shapes, the same peak)."""
    damage = input_damage(w.inputs, pristine)
    if damage:
        return None, f"{damage} while being timed"
    stale = unlike(w.last[0], out, "the output of the last timed call")
    if stale or not whole:
        return None, stale
    why, mem = follows_inputs(w, case, out, (lambda call: peak_memory(call, case.device)) if memory else plainly)
    return mem, why


def _use_allocator(case: Case) -> tuple[str, list[str]]:
    """Pin malloc when the case asks; (the allocator this process has, a warning when it is not the one asked).

    A pinned process cannot unpin itself: a "system" case measured in such a process (in-process, not by a
    sweep's worker) says so on its row."""
    if case.allocator == "pinned":
        pin_allocator()
    actual = allocator_state()
    if actual == case.allocator:
        return actual, []
    return actual, [f"asked for the {case.allocator} allocator, but this process's malloc is {actual} "
                    "(measured in-process; a sweep's worker starts with the right one)"]  # fmt: skip


def _clocked(call: Callable[[], Any], device: str) -> tuple[Any, float]:
    """(call(), its wall time in seconds), ``device`` synchronized on both sides."""
    _synchronize(device)
    started = perf_counter()
    result = call()
    _synchronize(device)
    return result, perf_counter() - started


def _synchronize(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)  # that device's queue, not the current one's


def measure_case(
    case: Case,
    *,
    max_time_s: float = 2.0,
    accuracy_rows: int = DEFAULT_MAX_ROWS,
    memory: bool = True,
    timing_only: bool = False,
    rounds: int = 1,
    references: str | Path | None = None,
) -> Record:
    """Measure ``case`` (accuracy, time, peak memory) and return its record, one round of it (`harness.measure.rounds`:
    the time, and the canary's beside it); never raises for a failing variant: unsupported cases, allocation failures
    and errors become statuses. ``timing_only``: a later round, which checks the output and times it, without accuracy,
    energy or memory. ``rounds``: how many rounds the case is measured in; each of several asks less of its timing
    (`harness.measure.sampling.per_round`). ``references``: a directory where the variants of one input set share its
    float64 reference (`harness.measure.reference_cache`); None computes it here.

    Garbage is never ``ok``; these are ``error`` rows saying which: a
    non-finite output, an output that is one of the inputs, inputs changed by
    the call (checked after the first call and again after timing), an exact
    variant beyond its dtype's tolerance of float64 (an approximation beyond
    the ``tolerance=`` it declares), a last timed call whose output is unlike
    the first's, and an answer that does not follow its inputs refilled in
    place (`harness.measure.workload`). Accuracy is computed on pristine
    copies of the inputs. A timing the machine disturbed past repair
    (`harness.measure.timing`) is ``contended``.
    """
    try:
        spec = get_variant(case.variant)
    except KeyError as exc:
        return record_for(case, "error", exc.args[0])
    unavailable = spec.unavailable_reason(torch.device(case.device).type)
    if unavailable:
        return record_for(case, "unsupported", f"{case.variant} {unavailable}")
    record = record_for(case)
    record.allocator, record.warnings = _use_allocator(case)
    try:
        with thread_count(case.threads), compile_mode(case.compile_mode):
            w = SCOPES[case.scope](case) if case.scope in SCOPES else workload(case, make_inputs(case))
            timed, forward, inputs = w.timed, w.forward, w.inputs  # what the variant is handed
            pristine = tuple(t.clone() for t in inputs)
            graphs = compiled_graphs()
            out, first_s = _clocked(forward, case.device)  # also the untimed first call
            wrong = _first_call_wrong(out, w, pristine, case.variant)
            if wrong:
                return record_for(case, "error", wrong)
            acc = (
                None
                if timing_only
                else _accuracy(record, spec, case, w, out, pristine, accuracy_rows, ReferenceCache(references))
            )
            if record.status == "error":  # too far from float64 for its kind
                return record
            record.backend = None if timing_only or spec.backend is None else _backend(spec, case, w.logical(pristine))
            if case.mode == "fwd_bwd" and compiled_graphs():  # something compiles here: its backward may compile
                first_s += _clocked(timed, case.device)[1]  # on the first gradient call, which belongs to compile_s, not warm-up
            compiled, graphs = compiled_graphs() - graphs, compiled_graphs()
            # The first call above was the timed call's own (forward modes, nothing compiled): warm-up need not repeat it.
            first_call = first_s if case.mode != "fwd_bwd" and not compiled else None
            timing = time_callable(timed, case.device, graphs=case.cuda_graphs, max_time_s=max_time_s, **per_round(rounds),
                                   first_call_s=first_call, retake_faults=record.allocator == "pinned")  # fmt: skip
            recompiled = compiled_graphs() - graphs
            canary = canary_time(case.device)
            energy = case_energy(timed, case.device, timing.median) if case.energy and not timing_only else None
            mem, dishonest = _after_timing(w, out, pristine, case, not timing_only, memory)
            if dishonest:
                return record_for(case, "error", f"{case.variant}: {dishonest}")
    except Exception as exc:  # errors are data: the sweep records them and goes on
        status, reason = failure_status(exc)
        record.status, record.reason = status, reason
        return record

    record.warnings += [recompile_warning(recompiled)] if recompiled else []
    record.compile_s = first_s if compiled else None
    if mem is not None:
        record.peak_mem_bytes, record.mem_method = mem.peak_bytes, mem.method
    if acc is not None:
        record.rel_err, record.max_abs_err, record.cosine, record.err_rows = acc.rel_err, acc.max_abs_err, acc.cosine, acc.rows
        record.attn_entropy = acc.entropy
    return _with_timing(record, case, timing, canary, energy)


def _with_timing(record: Record, case: Case, timing, canary: float, energy=None) -> Record:
    """``record`` with one round's time (``timing``, a `Measurement`), its interference and work rates, the
    canary's time beside it and the GPU's readings (``energy``: an `Energy`); ``contended`` when the machine
    disturbed the timing past repair."""
    s = timing.summary
    record.time_median_s, record.time_iqr_s = s.median, s.iqr
    record.time_p20_s, record.time_p80_s, record.time_min_s, record.time_mean_s = s.p20, s.p80, s.min, s.mean
    record.n_samples, record.block_size, record.noisy, record.n_outliers = s.n, timing.block_size, s.noisy, s.outliers
    record.stop_reason, record.time_samples_s, record.timer = timing.stop_reason, list(timing.used), timing.clock
    record.warnings += list(timing.warnings)
    if timing.contended:
        record.status, record.reason = "contended", timing.warnings[0]
    i = timing.interference
    if i is not None:
        record.runqueue_wait_ratio, record.cpu_utilization, record.discarded_blocks = i.wait_ratio, i.cpu_utilization, i.discarded
        record.load_avg, record.steal_ratio = i.load_avg, i.steal
    record.flops = case_flops(case)
    record.gflops_per_s = record.flops / s.median / 1e9 if record.flops and s.median > 0 else None
    record.bytes_moved = case_bytes(case)
    record.gbytes_per_s = record.bytes_moved / s.median / 1e9 if s.median > 0 else None
    record.time_ci_low_s, record.time_ci_high_s, record.rounds = s.ci_low, s.ci_high, 1
    for column, value in gpu_columns(timing.gpu, energy).items():
        setattr(record, column, value)
    record.round_medians_s, record.round_canary_s, record.round_samples = [s.median], [canary], [s.n]
    record.round_contended = record.round_disturbed = [timing.contended]
    return record
