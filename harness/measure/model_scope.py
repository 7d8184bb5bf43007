"""``--scope model``: a case timed as a small Transformers model's full forward, the variant installed as its attention.

The model is Transformers' own ``LlamaModel`` built from a config of the case's shape (nothing downloaded):
MODEL_LAYERS layers of hidden size, heads, KV heads and head dim from the case, the MLP's inner size from its
``layer`` (``swiglu``, or ``geglu``: a GELU-gated one; a Llama MLP is always gated, so ``gelu`` is refused),
weights drawn from the case's seed.
The variant runs inside it through Transformers' ``AttentionInterface`` (`variants.hf.install`), so the time
includes what Transformers does around attention: rotary embeddings, its mask handling, its reshapes. Its
input is ``inputs_embeds`` (B, N, hidden), Gaussian times ``input_scale``; its output the last hidden state.
A Llama is causal: the case's mask is ``causal``.

Its error is the output's against the same model in float64 running Transformers' own ``eager`` attention,
on every row (layers mix rows, so no sample of rows suffices): one float64 forward per check.
"""

from __future__ import annotations

import torch

from variants.decoder import NORM_EPS, LayerShape

from .accuracy import Accuracy, compare
from .case import Case
from .workload import Workload

MODEL_LAYERS = 2


def model_of(case: Case, implementation: str, dtype: torch.dtype | None = None):
    """The case's Llama model with ``implementation`` as its attention, on its device, in ``dtype`` (default the
    case's); weights drawn from the case's seed."""
    import transformers

    shape = LayerShape.parse(case.layer)
    config = transformers.LlamaConfig(
        vocab_size=8, hidden_size=shape.hidden, intermediate_size=shape.ffn, num_hidden_layers=MODEL_LAYERS,
        num_attention_heads=case.heads, num_key_value_heads=case.n_heads_kv, head_dim=case.head_dim,
        max_position_embeddings=max(case.seq_len, 2), hidden_act="gelu_pytorch_tanh" if shape.mlp == "geglu" else "silu",
        rms_norm_eps=NORM_EPS,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):  # drawn on the CPU from its generator alone, then moved
        torch.default_generator.manual_seed(case.seed)
        model = transformers.LlamaModel._from_config(config, attn_implementation=implementation)
    if dtype == torch.float64:  # the reference: everything in float64, the rotary frequencies too
        return model.to(device=case.device, dtype=dtype).eval()
    # The parameters in the case's dtype; the rotary frequencies stay float32, as Transformers keeps them.
    for parameter in model.parameters():
        parameter.data = parameter.data.to(case.torch_dtype)
    return model.to(device=case.device).eval()


def model_inputs(case: Case, seed: int) -> tuple[torch.Tensor]:
    """inputs_embeds (B, N, hidden): a seeded Gaussian times the scale."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(case.batch, case.seq_len, LayerShape.parse(case.layer).hidden, generator=gen) * case.input_scale
    return (x.to(case.device, case.torch_dtype),)


def model_accuracy(model, case: Case, out: torch.Tensor, inputs: tuple) -> Accuracy:
    """Error of ``out`` against the model's float64 twin with Transformers' eager attention, every row."""
    exact = model_of(case, "eager", torch.float64)
    exact.load_state_dict(model.state_dict())
    with torch.no_grad():
        reference = exact(inputs_embeds=inputs[0].double()).last_hidden_state
    rel, max_abs, cosine = compare(out, reference)
    return Accuracy(rel, max_abs, cosine, out.shape[1])


def model_workload(case: Case) -> Workload:
    """The calls of a model case (`harness.measure.workload.Workload`): input x, output (B, N, hidden);
    ``logical`` gives seeded q, k, v of the case's shapes (what a dispatching variant picks its kernel by)."""
    from variants.hf import install

    from .case import make_inputs

    model = model_of(case, install(case.variant))
    inputs = model_inputs(case, case.seed)
    last: list = [None]

    def on(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(inputs_embeds=x).last_hidden_state

    def store(value: torch.Tensor) -> None:
        with torch.no_grad():
            inputs[0].copy_(value)

    common = {"inputs": inputs, "last": last, "on": on, "logical": lambda handed: make_inputs(case), "store": store,
              "draw": lambda seed: model_inputs(case, seed),
              "broken": lambda out: None if out.shape == inputs[0].shape else f"returned {tuple(out.shape)}",
              "accuracy": lambda out, given, rows: model_accuracy(model, case, out, given)}  # fmt: skip
    if case.mode != "fwd_bwd":

        def timed() -> None:
            last[0] = on(inputs[0])

        return Workload(timed, lambda: on(inputs[0]), **common)

    leaf = inputs[0].detach().requires_grad_()  # a view of the input: a refill reaches it
    weights = tuple(w for name, w in model.named_parameters() if not name.startswith("embed_tokens"))  # unused: x is given
    grad_out = model_inputs(case, case.seed + 1)[0]

    def forward_backward() -> None:
        out = model(inputs_embeds=leaf).last_hidden_state
        torch.autograd.grad(out, (leaf, *weights), grad_out)
        last[0] = out.detach()

    def forward_only() -> torch.Tensor:
        with torch.no_grad():
            return model(inputs_embeds=leaf).last_hidden_state

    return Workload(forward_backward, forward_only, **common)
