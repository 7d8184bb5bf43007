"""Memory budget: a case's predicted peak against the memory the device has free.

The prediction reads the variant's declared memory class, so it needs nothing
from a plugin author beyond what `register` already asks: a class with N^2 in
it holds two (B, H, N_q, N) matrices (scores and probabilities), anything
else holds a few (B, H, N_q, max(D, m)) tensors; q, k, v and the output
besides. Forward plus backward keeps what the forward saved and adds
gradients; the float64 reference the accuracy check builds on the same
device is counted where it is larger. Deliberately coarse: its job is to skip cases that cannot possibly
fit (naive at N=65536 wants 275 GB), not to replace the measurement. Once a smaller N of the same
configuration has been measured, its peak grown by the declared class counts too: a kernel that keeps more
than the class says (SDPA's math backend upcasts bf16 scores to fp32: 4.5 score matrices, not 2) is caught
before it runs out of memory, not after.
"""

from __future__ import annotations

import torch

from variants import get_variant

from ..measure.accuracy import CHUNK_BYTES, DEFAULT_MAX_ROWS
from ..measure.case import Case, configuration
from ..measure.case_work import declared_classes, layer_memory_bytes
from ..measure.complexity import declared_exponent
from ..measure.device import available_bytes

BUDGET_FRACTION = 0.8  # of the memory available when the sweep starts


def predicted_peak_bytes(case: Case, measured: tuple[int, float] | None = None) -> int:
    """Rough upper estimate of a case's peak bytes on its device (inputs included); ``measured``: (N, peak bytes)
    of the same configuration at a smaller N, grown to this N by the declared memory class."""
    spec = get_variant(case.variant)
    analytic = _analytic_peak_bytes(case, spec)
    if measured is None:
        return analytic
    n, peak = measured
    return max(analytic, int(peak * (case.seq_len / n) ** (declared_exponent(_memory_class(case, spec)) or 1.0)))


def _memory_class(case: Case, spec) -> str | None:
    """The declared memory class for this case: decoding, or a dense mask or bias, changes it (`declared_classes`)."""
    return declared_classes(spec, case)["declared_memory"]


def _analytic_peak_bytes(case: Case, spec) -> int:
    element = torch.empty((), dtype=case.torch_dtype).element_size()
    B, H, H_kv, N, n_q, D = case.batch, case.heads, case.n_heads_kv, case.seq_len, case.n_q, case.head_dim
    width = max([D] + [v for v in spec.params.values() if isinstance(v, int)])
    inputs = (2 * B * H * n_q * D + 2 * B * H_kv * N * D) * element  # q and the output, k and v
    if (declared_exponent(_memory_class(case, spec)) or 1.0) >= 2:
        working = 2 * B * H * n_q * N * element  # scores and probabilities (or a dense mask and bias)
    else:
        working = 4 * B * H * n_q * width * element  # a few (B, H, N_q, width) tiles and accumulators
    if case.mode == "fwd_bwd":
        working *= 2  # saved activations plus their gradients
        inputs *= 2
    return inputs + max(working, reference_bytes(case)) + layer_memory_bytes(case)


def reference_bytes(case: Case) -> int:
    """The float64 reference's peak on the case's device (`harness.measure.accuracy`): float64 copies of q, k
    and v, and a chunk of rows' scores three times over (scores, masked, softmax). It runs before the timing,
    after the first call's memory is freed, so it counts against the variant's working set, not beside it."""
    B, H, H_kv, N, n_q, D = case.batch, case.heads, case.n_heads_kv, case.seq_len, case.n_q, case.head_dim
    rows = min(n_q, DEFAULT_MAX_ROWS, max(1, CHUNK_BYTES // (B * H * N * 8)))
    return 8 * (B * H * n_q * D + 2 * B * H_kv * N * D) + 3 * 8 * B * H * rows * N


def over_budget(case: Case, budget: int, measured: tuple[int, float] | None = None) -> str | None:
    """The skip reason when the predicted peak exceeds ``budget`` bytes, else None (``measured``: as in
    `predicted_peak_bytes`)."""
    predicted = predicted_peak_bytes(case, measured)
    if predicted <= budget:
        return None
    basis = f"memory class {get_variant(case.variant).memory}"
    if measured is not None and predicted > _analytic_peak_bytes(case, get_variant(case.variant)):
        basis += f", grown from {measured[1] / 2**30:.1f} GiB measured at N={measured[0]}"
    return (f"predicted peak {predicted / 2**30:.1f} GiB ({basis}) exceeds the budget of {budget / 2**30:.1f} GiB "
            f"({BUDGET_FRACTION:.0%} of available {case.device} memory)")  # fmt: skip


def measured_peaks(cases: list[Case], recorded: list[dict]) -> dict[tuple, tuple[int, float]]:
    """Per configuration, (N, peak bytes) of its largest N already recorded with a peak: what a resumed sweep
    knows, so its budget predicts as an uninterrupted one would have."""
    by_id = {case.case_id: case for case in cases}
    peaks: dict[tuple, tuple[int, float]] = {}
    for row in recorded:
        case, peak = by_id.get(row.get("case_id")), row.get("peak_mem_bytes")
        if case is not None and peak and case.seq_len > peaks.get(configuration(case), (0, 0.0))[0]:
            peaks[configuration(case)] = (case.seq_len, peak)
    return peaks


def device_budget(device: str) -> int:
    """The bytes a sweep's cases on ``device`` may use: BUDGET_FRACTION of what is free now."""
    return int(available_bytes(device) * BUDGET_FRACTION)


def worker_memory_limit(device: str, budget: int | None = None) -> int:
    """A worker's address-space allowance: the CPU budget (CUDA's allocator needs no cap on host VA); 0: none."""
    if device != "cpu":
        return 0
    return budget or device_budget("cpu")
