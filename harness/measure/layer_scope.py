"""``--scope layer``: a case timed as a whole decoder layer (`variants.decoder.DecoderLayer`) around its variant.

The layer is built from the case's shape (heads, KV heads, head dim, and ``layer``: the MLP, hidden and inner
sizes, which ``--model`` fills from the model's config), its weights drawn from the case's seed. Its inputs are
x (B, N_q, hidden), Gaussian times ``input_scale``, and for cross-attention (N_q ≠ N) the memory (B, N, hidden)
its keys and values are projected from. ``fwd_bwd`` computes the gradients of the inputs and of every weight,
as a training step does.

Its error is the layer output's against the same layer in float64 with exact float64 attention, on a seeded
sample of query rows (every step but attention acts row by row, so the rows need only their own queries, and
every key): O(N·hidden·H_kv·D + R·(N·H·D + hidden·ffn)) in float64.
"""

from __future__ import annotations

import torch

from variants.decoder import DecoderLayer, LayerShape

from .accuracy import Accuracy, compare, exact_rows, sample_rows
from .case import Case
from .workload import Workload

LAYER_ROWS = 256  # rows held to float64 at most: each costs the MLP's O(hidden·ffn) in float64 besides attention


def is_cross(case: Case) -> bool:
    """Queries of their own against a memory of N positions (cross-attention), else self-attention."""
    return case.n_q != case.seq_len


def layer_of(case: Case) -> DecoderLayer:
    """The case's decoder layer, on its device and dtype."""
    return DecoderLayer(LayerShape.parse(case.layer), heads=case.heads, heads_kv=case.n_heads_kv, head_dim=case.head_dim,
                        variant=case.variant, mask=case.mask, score_mod=case.score_mod, seed=case.seed,
                        device=case.device, dtype=case.torch_dtype)  # fmt: skip


def layer_inputs(case: Case, seed: int) -> tuple[torch.Tensor, ...]:
    """x (B, N_q, hidden), and the memory (B, N, hidden) under cross-attention: seeded Gaussians times the scale."""
    hidden = LayerShape.parse(case.layer).hidden
    gen = torch.Generator().manual_seed(seed)
    lengths = (case.n_q, case.seq_len) if is_cross(case) else (case.n_q,)
    return tuple((torch.randn(case.batch, n, hidden, generator=gen) * case.input_scale).to(case.device, case.torch_dtype)
                 for n in lengths)  # fmt: skip


def layer_accuracy(layer: DecoderLayer, out: torch.Tensor, inputs: tuple, max_rows: int, seed: int) -> Accuracy:
    """Error of ``out`` (B, N_q, hidden), the layer's output on ``inputs``, against the layer in float64 with exact
    attention, on up to ``max_rows`` (at most LAYER_ROWS) seeded query rows."""
    exact = layer.twin(torch.float64)
    x, memory = inputs[0].double(), (inputs[1].double() if len(inputs) > 1 else None)
    B, n_q, _ = x.shape
    rows = sample_rows(n_q, min(max_rows, LAYER_ROWS), seed)
    rows = torch.arange(n_q) if rows is None else rows
    with torch.no_grad():
        q_rows, k, v = exact.attention_inputs(x, memory, rows=rows.to(x.device))
        q = q_rows.new_zeros(B, layer.heads, n_q, layer.head_dim)  # only the sampled rows are read
        q[:, :, rows.to(x.device)] = q_rows
        found = exact_rows(q, k, v, mask=layer.mask, score_mod=layer.score_mod, max_rows=len(rows), seed=seed)
        reference = exact.after_attention(x[:, rows.to(x.device)], found.values.to(x.device))
    rel, max_abs, cosine = compare(out[:, rows.to(out.device)], reference)
    return Accuracy(rel, max_abs, cosine, len(rows), found.entropy / found.seeing if found.seeing else float("nan"))


def _shape_wrong(out, x: torch.Tensor) -> str | None:
    if not isinstance(out, torch.Tensor):
        return f"returned {type(out).__name__}, not a tensor"
    if out.shape != x.shape or out.dtype != x.dtype or out.device != x.device:
        return f"the layer returned {tuple(out.shape)} {out.dtype} on {out.device}, expected {tuple(x.shape)} {x.dtype}"
    return None


def layer_workload(case: Case) -> Workload:
    """The calls of a layer case (`harness.measure.workload.Workload`): its inputs x (and memory), its forward
    output (B, N_q, hidden); ``logical`` gives the q, k, v its attention sees."""
    layer = layer_of(case)
    inputs = layer_inputs(case, case.seed)
    last: list = [None]

    def on(*tensors: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return layer(*tensors)

    def logical(handed: tuple) -> tuple:
        with torch.no_grad():
            return layer.attention_inputs(*handed)

    def store(*values: torch.Tensor) -> None:
        with torch.no_grad():
            for tensor, value in zip(inputs, values):
                tensor.copy_(value)

    common = {"inputs": inputs, "last": last, "on": on, "logical": logical, "store": store,
              "draw": lambda seed: layer_inputs(case, seed), "broken": lambda out: _shape_wrong(out, inputs[0]),
              "accuracy": lambda out, given, rows: layer_accuracy(layer, out, given, rows, case.seed)}  # fmt: skip
    if case.mode != "fwd_bwd":

        def timed() -> None:
            last[0] = on(*inputs)

        return Workload(timed, lambda: on(*inputs), **common)

    leaves = tuple(t.detach().requires_grad_() for t in inputs)  # views of the inputs: a refill reaches them
    weights = tuple(layer.parameters())
    grad_out = layer_inputs(case, case.seed + 1)[0]  # the fixed upstream gradient, x's shape

    def forward_backward() -> None:
        out = layer(*leaves)
        torch.autograd.grad(out, (*leaves, *weights), grad_out)
        last[0] = out.detach()

    def forward_only() -> torch.Tensor:
        with torch.no_grad():
            return layer(*leaves)

    return Workload(forward_backward, forward_only, **common)
