"""Model shapes (--model: the built-in table, a config.json of one's own) and cross-attention (--q-len in fwd)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import run_attnbench

from harness.measure.case import Case
from harness.measure.measure_case import record_for
from harness.measure.models import BUILT_IN, ModelError, load_model
from harness.run.legacy import upgrade_sweep
from harness.run.sweep import build_sweep, expand

# What each model's published config.json says (the source each BUILT_IN entry names), written out by hand:
# (heads, KV heads, head dim, N or None, N_q or None) and its kinds of layer as (mask, score modification).
EXPECTED = {
    "llama-3-8b": ((32, 8, 128, None, None), {("causal", "none")}),
    "llama-3-70b": ((64, 8, 128, None, None), {("causal", "none")}),
    "mistral-7b": ((32, 8, 128, None, None), {("sliding:4096", "none")}),
    "gemma-2-9b": ((16, 8, 256, None, None), {("causal", "softcap:50"), ("sliding:4096", "softcap:50")}),
    "qwen2-7b": ((28, 4, 128, None, None), {("causal", "none")}),  # sliding_window set, use_sliding_window false
    "vit-b-16": ((12, 12, 64, 197, None), {("none", "none")}),  # (224/16)² patches and a class token
    "vit-l-14-336": ((16, 16, 64, 577, None), {("none", "none")}),  # (336/14)² + 1
    "whisper-small": ((12, 12, 64, 1500, 448), {("none", "none")}),  # 448 text queries against 1500 audio frames
    "llava-1.5-7b": ((32, 32, 128, None, None), {("causal", "none")}),
}

# Each model's decoder layer (--scope layer) as its config.json publishes it: MLP kind, hidden_size (d_model),
# intermediate_size (decoder_ffn_dim); gated where the activation is SiLU (SwiGLU) and for Gemma (GeGLU).
LAYERS = {
    "llama-3-8b": "swiglu:4096:14336",
    "llama-3-70b": "swiglu:8192:28672",
    "mistral-7b": "swiglu:4096:14336",
    "gemma-2-9b": "geglu:3584:14336",  # gelu_pytorch_tanh, gated
    "qwen2-7b": "swiglu:3584:18944",
    "vit-b-16": "gelu:768:3072",
    "vit-l-14-336": "gelu:1024:4096",  # quick_gelu, timed as GELU: the same cost
    "whisper-small": "gelu:768:3072",
    "llava-1.5-7b": "swiglu:4096:11008",  # its Llama-2-7B language model
}


@pytest.mark.parametrize("name", EXPECTED)
def test_each_built_in_model_has_the_shapes_its_config_publishes(name):
    cases = expand(
        build_sweep(models=name, variants="naive", threads="1", **({} if EXPECTED[name][0][3] else {"seq_lens": "64"}))
    )
    shapes = {(c.heads, c.n_heads_kv, c.head_dim, c.seq_len if EXPECTED[name][0][3] else None, c.q_len) for c in cases}
    assert shapes == {EXPECTED[name][0]}
    assert {(c.mask.spec, c.score_mod.spec) for c in cases} == EXPECTED[name][1]
    assert {c.model for c in cases} == {name} and BUILT_IN[name][0].startswith("https://huggingface.co/")
    layered = expand(build_sweep(models=name, variants="naive", threads="1", scopes="layer", seq_lens="64"))
    assert {c.layer for c in layered if c.scope == "layer"} == {LAYERS[name]}


def test_flags_beside_a_model_override_it():
    cases = expand(build_sweep(models="mistral-7b", heads="16", masks="causal", seq_lens="64", variants="naive", threads="1"))
    assert {(c.heads, c.n_heads_kv, c.mask.spec, c.model) for c in cases} == {(16, 8, "causal", "mistral-7b")}


@pytest.mark.parametrize(("config", "message"), [
    ("not json", "is not JSON"),
    ({"hidden_size": 64}, "no num_attention_heads"),
    ({"num_attention_heads": 6, "num_key_value_heads": 4, "hidden_size": 48}, "num_key_value_heads 4 does not divide"),
    ({"num_attention_heads": 5, "hidden_size": 64}, "hidden_size 64 is not a multiple of num_attention_heads 5"),
    ({"num_attention_heads": 4, "head_dim": 0}, "head_dim must be a positive integer"),
    ({"num_attention_heads": 4, "head_dim": 16, "attn_logit_softcapping": -1}, "attn_logit_softcapping must be"),
    ([1, 2], "holds one JSON object"),
])  # fmt: skip
def test_a_config_that_cannot_be_read_is_one_line(tmp_path, config, message):
    path = tmp_path / "config.json"
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    with pytest.raises(ModelError, match=message) as caught:
        load_model(str(path), "--model")
    assert "\n" not in str(caught.value)


def test_a_config_of_ones_own_sweeps_with_its_shapes(tmp_path):
    """A made-up model: 6 heads over 2 KV heads, head dim 16 from hidden 96, a 24-token window, a soft cap of 30,
    a plain GELU MLP of 160 (its layer timed too, --scope layer)."""
    config = {"model_type": "made-up", "hidden_size": 96, "num_attention_heads": 6, "num_key_value_heads": 2,
              "sliding_window": 24, "attn_logit_softcapping": 30.0, "intermediate_size": 160, "hidden_act": "gelu"}  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(config))
    done = run_attnbench("sweep", "--model", "config.json", "--variants", "naive,chunked-online", "--seq-lens", "64",
                         "--scope", "layer", "--threads", "1", "--rounds", "1", "--max-time", "0.02", "--out", "run",
                         cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    frame = pd.read_parquet(tmp_path / "run" / "results.parquet")
    assert set(zip(frame["heads"], frame["heads_kv"], frame["head_dim"])) == {(6, 2, 16)}
    assert set(zip(frame["scope"], frame["layer"].fillna("-"))) == {("attention", "-"), ("layer", "gelu:96:160")}
    assert set(frame["mask"]) == {"sliding:24"} and set(frame["score_mod"]) == {"softcap:30"}
    assert set(frame["model"]) == {"config.json"} and (frame["rel_err"] < 1e-5).all()
    bad = run_attnbench("sweep", "--model", "gpt-17", "--out", "bad", cwd=tmp_path)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()


def test_cross_attention_runs_forward_and_backward_at_a_fixed_query_count(tmp_path):
    done = run_attnbench("sweep", "--variants", "naive,sdpa,chunked-online", "--seq-lens", "64,256", "--q-len", "48",
                         "--mode", "fwd,fwd_bwd", "--mask", "none,causal-br", "--threads", "1", "--rounds", "1",
                         "--max-time", "0.02", "--out", str(tmp_path / "run"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    frame = pd.read_parquet(tmp_path / "run" / "results.parquet")
    assert (frame["q_len"] == 48).all() and frame["status"].isin(["ok", "contended"]).all() and (frame["rel_err"] < 1e-5).all()
    assert set(frame["declared_time"]) == {"O(N d)"}  # fitted against N_kv at fixed N_q


def test_a_query_count_above_the_keys_is_cross_attention_outside_decode_only():
    assert Case("naive", 64, q_len=100, threads=1).n_q == 100
    with pytest.raises(ValueError, match="decode case must be a positive integer up to 64"):
        Case("naive", 64, q_len=100, mode="decode", threads=1)
    assert record_for(Case("naive", 64, q_len=100, threads=1)).declared_time == "O(N d)"


def test_an_older_sweep_json_q_len_of_one_was_decodes_default():
    assert upgrade_sweep({"q_len": 1, "modes": ["fwd"]})["q_len"] is None  # before --model, 1 meant "decode's 1"
    assert upgrade_sweep({"q_len": 1, "modes": ["fwd"], "models": []})["q_len"] == 1  # since: as given


def test_the_attn_implementation_finding_names_the_winner_and_the_fastest_of_all():
    from harness.analyze.implementations import implementation_table

    rows = [
        {
            "variant": v,
            "family": f,
            "exact": True,
            "status": "ok",
            "seq_len": 1024,
            "time_median_s": t,
            "model": "llama-3-8b",
            "device": "cpu",
            "dtype": "float32",
            "mode": "fwd",
            "mask": "causal",
        }
        for v, f, t in (("hf-eager", "hf", 3.0), ("hf-sdpa", "hf", 1.5), ("sdpa", "sdpa", 1.2), ("naive", "naive", 4.0))
    ]
    rows.append({**rows[0], "seq_len": 2048})  # one implementation alone at 2048: no row
    table = implementation_table(pd.DataFrame(rows))
    assert table.to_dict("records") == [
        {
            "config": "llama-3-8b cpu float32 fwd causal",
            "seq_len": 1024,
            "attn_implementation": "sdpa",
            "lead": "2.00× over eager",
            "fastest exact of all": "sdpa",
            "its time over the winner's": "0.80×",
        }
    ]


def test_the_models_preset_measures_every_built_in_model_and_three_layers():
    cases = expand(build_sweep("models"))
    assert {c.model for c in cases} == set(BUILT_IN)
    assert {c.model for c in cases if c.scope == "layer"} == {"llama-3-8b", "gemma-2-9b", "vit-b-16"}
    assert {c.variant for c in cases if c.model == "llama-3-70b"} == {"sdpa", "hf-sdpa", "hf-eager"}
    assert {c.variant for c in cases if c.model == "gemma-2-9b"} >= {"chunked-online", "hf-flex"}  # a soft cap
    assert max(c.seq_len for c in cases if c.model == "llama-3-70b") == 4096  # 8K and 16K: a GPU's
    assert {c.batch for c in cases if c.model == "vit-b-16"} == {1, 8, 64}
