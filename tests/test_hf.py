"""Transformers both ways: its attention functions as variants, and our variants installed into a Transformers model."""

from __future__ import annotations

import pytest
import torch

from harness.measure.reference import reference_attention
from variants import get_variant

transformers = pytest.importorskip("transformers")

from variants.hf import install  # noqa: E402


@pytest.mark.parametrize("name", ["hf-sdpa", "hf-eager"])
@pytest.mark.parametrize("mask, n_q", [("none", 48), ("causal", 48), ("causal-br", 1), ("causal-br", 17), ("causal-br", 64)])
def test_transformers_functions_match_float64(name, mask, n_q):
    """Grouped-query heads (8 over 2), decode, cross lengths, and queries that see no key (zeros, the contract's)."""
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, h, n, 32, generator=gen) for h, n in ((8, n_q), (2, 48), (2, 48)))
    out = get_variant(name)(q, k, v, mask=mask)
    assert out.shape == (2, 8, n_q, 32)
    assert torch.allclose(out.double(), reference_attention(q, k, v, mask=mask), atol=1e-5)


@pytest.mark.parametrize("name, score_mod", [("hf-sdpa", "none"), ("hf-eager", "none"), ("hf-eager", "softcap:20")])
def test_transformers_windows_and_gemma_2s_soft_cap_match_float64(name, score_mod):
    """Mistral's window as Transformers' mask; Gemma 2's eager function, which caps the scores before it."""
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, h, 96, 32, generator=gen) for h in (6, 2, 2))
    out = get_variant(name)(q, k, v, mask="sliding:24", score_mod=score_mod)
    assert torch.allclose(out.double(), reference_attention(q, k, v, mask="sliding:24", score_mod=score_mod), atol=1e-5)


def test_transformers_flex_matches_float64_on_a_gemma_2_kind_of_layer():
    """hf-flex: a sliding window, a soft cap Transformers passes to flex, grouped heads (6 over 2: not a power of
    two, so Transformers repeats K and V; one compile)."""
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, h, 200, 32, generator=gen) for h in (6, 2, 2))
    out = get_variant("hf-flex")(q, k, v, mask="sliding:48", score_mod="softcap:20")
    expected = reference_attention(q, k, v, mask="sliding:48", score_mod="softcap:20")
    assert torch.allclose(out.double(), expected, atol=1e-5)


def _tiny_llama(implementation: str):
    """Two layers, hidden 64, 4 heads over 2 KV heads; random weights from a fixed seed, nothing downloaded."""
    config = transformers.LlamaConfig(vocab_size=101, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)  # fmt: skip
    torch.manual_seed(0)
    return transformers.AutoModelForCausalLM.from_config(config, attn_implementation=implementation).eval()


def test_a_variant_installed_into_transformers_runs_a_model():
    """chunked-online gives the logits Transformers' own sdpa gives; performer-64, an approximation, others."""
    tokens = torch.randint(0, 101, (2, 96), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = _tiny_llama("sdpa")(tokens).logits
        exact = _tiny_llama(install("chunked-online"))(tokens).logits
        approximate = _tiny_llama(install("performer-64"))(tokens).logits
    assert torch.allclose(exact, reference, atol=1e-4)
    assert torch.isfinite(approximate).all() and not torch.allclose(approximate, reference, atol=1e-2)


@pytest.mark.parametrize("mode", ["fwd", "fwd_bwd"])
def test_a_model_case_runs_transformers_llama_with_the_variant_installed(mode):
    """--scope model: the variant inside a 2-layer Transformers Llama, held to the float64 model with eager attention."""
    from harness.measure.case import Case
    from harness.measure.case_work import case_flops
    from harness.measure.measure_case import measure_case

    shape = {"heads": 4, "heads_kv": 2, "head_dim": 16, "mask": "causal", "mode": mode, "threads": 1}
    exact = measure_case(Case("chunked-online", 80, scope="model", layer="swiglu:64:128", **shape), max_time_s=0.1)
    approximate = measure_case(Case("performer-64", 80, scope="model", layer="swiglu:64:128", **shape), max_time_s=0.1)
    assert exact.status == "ok" and exact.rel_err < 1e-5, exact.reason
    assert approximate.status == "ok" and approximate.rel_err > 10 * exact.rel_err
    layer = case_flops(Case("chunked-online", 80, scope="layer", layer="swiglu:64:128", **shape))
    assert exact.flops == pytest.approx(2 * layer)  # two layers, each a layer's work


def test_model_scope_settings_are_checked(monkeypatch):
    import importlib.util

    from harness.measure.parsers import SweepError
    from harness.run.sweep import build_sweep

    with pytest.raises(SweepError, match="--scope model runs a Llama model: --mask causal"):
        build_sweep(variants="naive", scopes="model", masks="none", seq_lens="64")
    assert build_sweep(variants="naive", scopes="model", masks="causal", seq_lens="64").scopes == ("model",)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "transformers" else real(name, *a))
    with pytest.raises(SweepError, match=r"pip install -e '\.\[hf\]'"):
        build_sweep(variants="naive", scopes="model", masks="causal", seq_lens="64")
