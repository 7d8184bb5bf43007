"""What a case asks of the machine, by model: its FLOPs, its least memory traffic, and the complexity classes
its variant declares for it (read in this case's N: decoding, cross-attention, a banded or dense mask)."""

from __future__ import annotations

import torch

from variants import get_variant

from .case import Case
from .complexity import declared_exponent

BACKWARD_FLOPS_FACTOR = 2.5  # backward ~2.5x forward (two matmuls per forward one, plus recompute)


def declared_classes(spec, case: Case) -> dict[str, str]:
    """The variant's declared time and memory classes as functions of this case's N.

    Decoding and cross-attention hold the query count fixed (``q_len``), so a
    class quadratic in N (N_q·N_kv) is linear in the KV length; a variant that
    skips hidden blocks does O(N·W·d) under a sliding window; one that takes a
    dense mask or bias (``dense_masks``) holds O(N²) memory under them.
    """
    time, memory = spec.time, spec.memory
    if case.q_len is not None:  # decoding or cross-attention: the queries held fixed as N grows
        time = "O(N d)" if (declared_exponent(time) or 0) >= 2 else time
        memory = "O(N)" if (declared_exponent(memory) or 0) >= 2 else memory
        return {"declared_time": time, "declared_memory": memory}
    if spec.skips_masked and case.mask.kind == "sliding":
        time = "O(N W d)"
    if spec.dense_masks and (case.mask.kind not in ("none", "causal") or case.score_mod.is_bias):
        memory = "O(N^2)"  # the (N_q, N_kv) mask or (H, N_q, N_kv) bias tensor
    return {"declared_time": time, "declared_memory": memory}


def case_bytes(case: Case) -> float:
    """The least memory traffic of one timed call: q, k, v read once and the output written
    (forward, decode); forward plus backward adds reading q, k, v, out, dout and writing dq, dk, dv."""
    element = torch.empty((), dtype=case.torch_dtype).element_size()
    q = case.batch * case.heads * case.n_q * case.head_dim  # q, the output, dout, dq: each this size
    kv = case.batch * case.n_heads_kv * case.seq_len * case.head_dim  # k, v, dk, dv: each this size
    forward = 2 * q + 2 * kv
    if case.kv_layout != "contiguous":  # a paged cache's block table is read too: one int64 per page
        forward += 8 * case.batch * -(-case.seq_len // int(case.kv_layout.partition(":")[2])) / element
    backward = (3 * q + 2 * kv) + (q + 2 * kv)  # reads q, out, dout, k, v; writes dq, dk, dv
    return float(element * (forward + (backward if case.mode == "fwd_bwd" else 0)))


def case_flops(case: Case) -> float | None:
    """FLOPs of one timed call: the variant's forward model, times 3.5 for forward plus backward."""
    spec = get_variant(case.variant)
    if spec.flops is None:
        return None
    forward = float(spec.flops(case))
    return forward * (1 + BACKWARD_FLOPS_FACTOR) if case.mode == "fwd_bwd" else forward
