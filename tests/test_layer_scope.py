"""--scope layer: a decoder layer around each variant, its error against float64, its work, its share of attention."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import run_attnbench

from harness.analyze.layers import half_table, layer_share_table
from harness.measure.case import Case
from harness.measure.case_work import case_flops
from harness.measure.layer_scope import layer_accuracy, layer_inputs, layer_of
from harness.measure.measure_case import measure_case
from harness.measure.parsers import SweepError
from harness.measure.reference import reference_attention
from harness.run.sweep import build_sweep, expand
from variants.decoder import DecoderLayer, LayerShape


def _by_hand(layer, x: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
    """The layer written out in float64 from its weights: pre-norm, GQA projections, exact attention, MLP."""
    w = {name: t.detach().double() for name, t in layer.state_dict().items()}
    x = x.double()

    def norm(t, prefix):
        if layer.shape.gated:  # RMSNorm
            return t / torch.sqrt(t.square().mean(-1, keepdim=True) + 1e-5) * w[f"{prefix}.weight"]
        return F.layer_norm(t, t.shape[-1:], w[f"{prefix}.weight"], w[f"{prefix}.bias"])

    def heads(t, h):
        return t.view(t.shape[0], t.shape[1], h, layer.head_dim).transpose(1, 2)

    h = norm(x, "norm1")
    source = h if memory is None else memory.double()
    q, k, v = heads(h @ w["q_proj.weight"].T, layer.heads), heads(source @ w["k_proj.weight"].T, layer.heads_kv), \
        heads(source @ w["v_proj.weight"].T, layer.heads_kv)  # fmt: skip
    attended = reference_attention(q, k, v, mask=layer.mask, score_mod=layer.score_mod)
    x = x + attended.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1) @ w["o_proj.weight"].T
    inner = norm(x, "norm2")
    if layer.shape.mlp == "swiglu":
        hidden = F.silu(inner @ w["mlp.gate.weight"].T) * (inner @ w["mlp.up.weight"].T)
    elif layer.shape.mlp == "geglu":
        hidden = F.gelu(inner @ w["mlp.gate.weight"].T, approximate="tanh") * (inner @ w["mlp.up.weight"].T)
    else:
        hidden = F.gelu(inner @ w["mlp.up.weight"].T)
    return x + hidden @ w["mlp.down.weight"].T


@pytest.mark.parametrize("variant, layer, mask, score_mod, q_len", [
    ("sdpa", "swiglu:48:96", "causal", "none", None),
    ("chunked-online", "geglu:40:80", "sliding:16", "softcap:30", None),
    ("naive", "gelu:64:256", "none", "none", 24),  # cross-attention: 24 queries against a memory of 80
])  # fmt: skip
def test_a_layer_around_an_exact_variant_matches_the_layer_written_out_in_float64(variant, layer, mask, score_mod, q_len):
    case = Case(variant, 80, heads=4, heads_kv=2, head_dim=16, mask=mask, score_mod=score_mod, q_len=q_len, scope="layer",
                layer=layer, threads=1)  # fmt: skip
    module, inputs = layer_of(case), layer_inputs(case, case.seed)
    assert len(inputs) == (2 if q_len else 1) and inputs[0].shape == (1, q_len or 80, LayerShape.parse(layer).hidden)
    with torch.no_grad():
        out = module(*inputs)
    expected = _by_hand(module, *inputs)
    assert (out.double() - expected).norm() / expected.norm() < 1e-5
    accuracy = layer_accuracy(module, out, inputs, 1024, case.seed)  # every row
    assert accuracy.rows == (q_len or 80) and accuracy.rel_err < 1e-5
    assert layer_accuracy(module, out + 0.01 * out.norm() / math.sqrt(out.numel()), inputs, 1024, 0).rel_err > 1e-3


@pytest.mark.parametrize("mode", ["fwd", "fwd_bwd"])
def test_a_layer_case_is_measured_with_its_error_and_work(mode):
    case = Case("sdpa", 96, heads=4, heads_kv=2, head_dim=16, mask="causal", scope="layer", layer="swiglu:64:128",
                mode=mode, threads=1)  # fmt: skip
    record = measure_case(case, max_time_s=0.1)
    assert record.status == "ok", record.reason
    assert record.scope == "layer" and record.layer == "swiglu:64:128" and record.rel_err < 1e-5
    attention = case_flops(Case("sdpa", 96, heads=4, heads_kv=2, head_dim=16, mask="causal", mode=mode, threads=1))
    # Q and O: 2·64·(4·16) each per token; K and V: 2·64·(2·16) each; the gated MLP: 3 products of 2·64·128.
    per_token = 2 * 64 * 64 * 2 + 2 * 64 * 32 * 2 + 3 * 2 * 64 * 128
    assert record.flops == pytest.approx(attention + 96 * per_token * (3 if mode == "fwd_bwd" else 1))


def test_an_answer_cached_inside_a_layer_is_caught():
    """The refill check reaches the layer's inputs: a core that answers from a cache gives the old layer output."""
    from variants import register, unregister

    cache = {}

    @register("cached-inside", family="test", exact=True, time="O(N^2 d)", memory="O(N^2)")
    def cached(q, k, v, *, mask, scale=None):
        return cache.setdefault(q.shape, F.scaled_dot_product_attention(q, k, v)).clone()

    try:
        record = measure_case(Case("cached-inside", 64, heads=2, head_dim=16, scope="layer", threads=1), max_time_s=0.05)
    finally:
        unregister("cached-inside")
    assert record.status == "error" and "did not follow its inputs" in record.reason


def test_a_layer_scope_brings_its_attention_and_a_model_its_layer():
    cases = expand(build_sweep(models="gemma-2-9b", variants="naive", scopes="layer", seq_lens="64", threads="1"))
    assert {(c.scope, c.layer) for c in cases} == {("attention", None), ("layer", "geglu:3584:14336")}
    plain = expand(build_sweep(variants="naive", scopes="layer", seq_lens="64", heads="2", head_dim="8", threads="1"))
    assert {c.layer for c in plain if c.scope == "layer"} == {"gelu:16:64"}  # GPT-2's: H·D, 4·H·D


@pytest.mark.parametrize("settings, message", [
    ({"scopes": "layer", "modes": "decode"}, "--scope layer times fwd or fwd_bwd"),
    ({"scopes": "layer", "inputs": "peaked:4"}, "--scope layer draws its own Gaussian inputs"),
    ({"scopes": "block"}, "unknown scope 'block'"),
    ({"scopes": "layer", "layer": "relu:64:128"}, "--layer: layer 'relu:64:128' is not MLP:hidden:ffn"),
    ({"layer": "gelu:64:256"}, "--layer shapes the layer of --scope layer or model"),
    ({"scopes": "model", "masks": "causal", "layer": "gelu:64:256"}, "whose MLP is gated"),
])  # fmt: skip
def test_bad_scope_settings_are_one_line(settings, message):
    with pytest.raises(SweepError, match=re.escape(message)) as refused:
        build_sweep(variants="naive", seq_lens="64", **settings)
    assert "\n" not in str(refused.value)


def test_a_bad_scope_on_the_command_line_is_one_line_and_exit_2(tmp_path):
    done = run_attnbench("sweep", "--variants", "naive", "--seq-lens", "64", "--scope", "layer", "--mode", "decode",
                         "--out", str(tmp_path / "run"))  # fmt: skip
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "not decode" in done.stderr
    assert not (tmp_path / "run").exists()


def _rows(shares: dict[int, float], flops: dict[int, float]) -> pd.DataFrame:
    rows = []
    for n, share in shares.items():
        common = {"variant": "sdpa", "seq_len": n, "status": "ok", "device": "cpu", "dtype": "float32", "mode": "fwd",
                  "mask": "causal", "model": "m"}  # fmt: skip
        rows.append({**common, "scope": "attention", "layer": None, "time_median_s": share, "flops": flops[n]})
        rows.append({**common, "scope": "layer", "layer": "swiglu:8:16", "time_median_s": 1.0, "flops": 1.0})
    return pd.DataFrame(rows)


def test_the_half_of_the_layer_is_found_between_points_and_past_them():
    # Odds 1/3 at 1024 and 3 at 4096: log-odds -ln3 and +ln3, so one half falls at the geometric middle, 2048.
    shares = layer_share_table(_rows({1024: 0.25, 4096: 0.75}, {1024: 0.1, 4096: 0.2}))
    assert list(shares["share"]) == [0.25, 0.75]
    row = half_table(shares).iloc[0]
    assert row["measured half at N"] == "≈2,048" and row["share there"] == "75%"
    # FLOP odds 1/9 and 1/4 over a factor 4: slope ln(9/4)/ln 4, one half at 4096·4^(ln 4 / ln(9/4)).
    assert row["analytic half at N"] == f"≈{4096 * 4 ** (math.log(4) / math.log(9 / 4)):,.0f} (extrapolated)"
    flat = half_table(layer_share_table(_rows({1024: 0.2, 4096: 0.2}, {1024: 0.6, 4096: 0.7})))
    assert flat.iloc[0]["measured half at N"] == "not approaching" and flat.iloc[0]["analytic half at N"] == "below 1,024"


def test_a_share_timed_past_the_whole_layer_or_unknown_is_no_verdict_of_never():
    # Noise can time attention alone above its layer: still past one half, between 1024 and 4096.
    noisy = half_table(layer_share_table(_rows({1024: 0.25, 4096: 1.05}, {1024: 0.1, 4096: 0.2})))
    assert noisy.iloc[0]["measured half at N"].startswith("≈") and "extrapolated" not in noisy.iloc[0]["measured half at N"]
    unknown = half_table(layer_share_table(_rows({1024: 0.25, 4096: 0.5}, {1024: float("nan"), 4096: float("nan")})))
    assert unknown.iloc[0]["analytic half at N"] == "–"


def test_a_layer_draws_its_weights_from_its_seed_and_leaves_the_generator_alone():
    shape = LayerShape.parse("swiglu:32:64")
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    first, again = (DecoderLayer(shape, heads=2, head_dim=16, seed=7) for _ in range(2))
    assert torch.equal(torch.random.get_rng_state(), before)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    other = DecoderLayer(shape, heads=2, head_dim=16, seed=8)
    assert not torch.equal(first.q_proj.weight, other.q_proj.weight)
    twin = first.twin(torch.float64)
    assert twin.q_proj.weight.dtype == torch.float64 and torch.equal(twin.q_proj.weight.float(), first.q_proj.weight)
