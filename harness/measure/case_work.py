"""What a case asks of the machine, by model: its FLOPs, its least memory traffic, and the complexity classes
its variant declares for it (read in this case's N: decoding, cross-attention, a banded or dense mask)."""

from __future__ import annotations

import torch

from variants import get_variant
from variants.decoder import LayerShape

from .case import Case
from .complexity import declared_exponent
from .model_scope import MODEL_LAYERS

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


def _layer_work(case: Case) -> tuple[float, float]:
    """(FLOPs, least bytes) of a layer case's own work beside its attention's, forward: the matrix products
    (`variants.decoder.LayerShape.linear_flops`) and its weights read once, x (and the memory) read and the
    output written. Zero for an attention case."""
    if case.layer is None:
        return 0.0, 0.0
    # (a model's layers each do a layer's work: `case_flops` and `case_bytes` count them MODEL_LAYERS times)
    shape = LayerShape.parse(case.layer)
    cross = case.n_q != case.seq_len
    flops = case.batch * shape.linear_flops(case.n_q, case.seq_len, case.heads, case.n_heads_kv, case.head_dim, cross)
    activations = case.batch * shape.hidden * (2 * case.n_q + (case.seq_len if cross else 0))
    return flops, float(shape.weights(case.heads, case.n_heads_kv, case.head_dim) + activations)


def layer_memory_bytes(case: Case) -> int:
    """What a layer or model case holds beside its attention's working set: its weights, their float64 twin
    (the reference's, built before timing), and the MLP's (B, N_q, ffn) activations a few times over; 0 for an
    attention case. For the memory budget (`harness.run.budget`)."""
    if case.layer is None:
        return 0
    shape = LayerShape.parse(case.layer)
    element = torch.empty((), dtype=case.torch_dtype).element_size()
    weights = shape.weights(case.heads, case.n_heads_kv, case.head_dim) * _layers(case)
    return weights * (element + 8) + 3 * case.batch * case.n_q * shape.ffn * element * (2 if case.mode == "fwd_bwd" else 1)


def case_bytes(case: Case) -> float:
    """The least memory traffic of one timed call: q, k, v read once and the output written
    (forward, decode; each cache to its own length); forward plus backward adds reading q, k, v, out, dout and writing dq, dk, dv.
    A layer adds its own (`_layer_work`), three times over for forward plus backward."""
    element = torch.empty((), dtype=case.torch_dtype).element_size()
    q = case.batch * case.heads * case.n_q * case.head_dim  # q, the output, dout, dq: each this size
    lengths = case.cache_lengths or (case.seq_len,) * case.batch  # unequal caches: each read to its length
    kv = sum(lengths) * case.n_heads_kv * case.head_dim  # k, v, dk, dv: each this size
    forward = 2 * q + 2 * kv
    if case.kv_layout != "contiguous":  # a paged cache's block table is read too: one int64 per page
        forward += 8 * case.batch * -(-case.seq_len // int(case.kv_layout.partition(":")[2])) / element
    backward = (3 * q + 2 * kv) + (q + 2 * kv)  # reads q, out, dout, k, v; writes dq, dk, dv
    layer = _layer_work(case)[1] * (3 if case.mode == "fwd_bwd" else 1)
    return float(element * (forward + (backward if case.mode == "fwd_bwd" else 0) + layer) * _layers(case))


def case_flops(case: Case) -> float | None:
    """FLOPs of one timed call: the variant's forward model, times 3.5 for forward plus backward; a layer's
    matrix products besides (times 3 for forward plus backward: each product's two gradients)."""
    spec = get_variant(case.variant)
    if spec.flops is None:
        return None
    forward = float(spec.flops(case))
    layer = _layer_work(case)[0] * (3 if case.mode == "fwd_bwd" else 1)
    return ((forward * (1 + BACKWARD_FLOPS_FACTOR) if case.mode == "fwd_bwd" else forward) + layer) * _layers(case)


def _layers(case: Case) -> int:
    """How many layers one call runs: a model case's MODEL_LAYERS, else one."""
    return MODEL_LAYERS if case.scope == "model" else 1
