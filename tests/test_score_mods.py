"""Score modifications: small cases written out by hand, float64 agreement, the check, the sweep's edge."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from conftest import DEVICES, run_attnbench, runnable

from harness.measure.case import Case, seeded_qkv
from harness.measure.memory import peak_memory
from harness.verify.checks import gradient_error
from harness.verify.dimensions import check_score_mods
from harness.verify.yardstick import exact_error
from variants import get_variant, list_variants, register
from variants.masks import parse_mask
from variants.registry import unregister
from variants.score_mods import (
    NO_MOD,
    ScoreMod,
    ScoreModError,
    alibi_slopes,
    parse_score_mod,
    rel_bias_table,
)

MODIFYING = [n for n in list_variants() if get_variant(n).score_mods != ("none",)]
# Compiled variants compile anew for every mask and modification (seconds each): the full grid is opt-in.
MODIFYING = [pytest.param(n, marks=pytest.mark.slow) if get_variant(n).family == "compiled" else n for n in MODIFYING]


def test_alibi_slopes_for_eight_heads_halve_from_a_half_to_one_256th():
    assert alibi_slopes(8).tolist() == [1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 64, 1 / 128, 1 / 256]


def test_alibi_slopes_for_six_heads_are_four_heads_then_every_other_slope_of_eight():
    assert alibi_slopes(6).tolist() == [1 / 4, 1 / 16, 1 / 64, 1 / 256, 1 / 2, 1 / 8]


def test_alibi_bias_of_three_queries_over_four_keys():
    # o = 1: query i sits at key position i + 1; the bias is -m_h·|i + 1 - j|, m = 1/16 and 1/256 for H = 2.
    distance = torch.tensor([[1.0, 0, 1, 2], [2, 1, 0, 1], [3, 2, 1, 0]])
    bias = ScoreMod("alibi").bias(2, torch.arange(3), 3, 4, dtype=torch.float64)
    assert torch.equal(bias, torch.stack([-distance / 16, -distance / 256]))


def test_softcap_at_50_by_hand():
    scores = torch.tensor([10.0, -10.0, 100.0, -100.0, 1000.0, -1000.0], dtype=torch.float64)
    capped = ScoreMod("softcap", 50.0).apply(scores.view(1, 1, 6), torch.arange(1), 1, 6).flatten()
    expected = [9.868766, -9.868766, 48.201379, -48.201379, 50.0, -50.0]  # 50·tanh(0.2), 50·tanh(2), 50·tanh(20)
    assert capped.tolist() == pytest.approx(expected, abs=1e-6)


def test_rel_bias_looks_up_the_clipped_relative_position():
    # R = 1, three queries over three keys: j - i clipped to [-1, 1], plus R, indexes the (H, 3) table.
    table = rel_bias_table(2, 1)
    index = torch.tensor([[1, 2, 2], [0, 1, 2], [0, 0, 1]])
    bias = ScoreMod("rel-bias", 1.0).bias(2, torch.arange(3), 3, 3, dtype=torch.float64)
    for h in range(2):
        assert torch.equal(bias[h], table[h][index])


@pytest.mark.parametrize("spec", ["softcap:0", "softcap:-1", "softcap:nan", "softcap:inf", "rel-bias:0", "rel-bias:x",
                                  "rel-bias:1.5", "alibi:3", "bogus"])  # fmt: skip
def test_bad_specs_are_refused_with_one_line(spec):
    with pytest.raises(ScoreModError) as caught:
        parse_score_mod(spec)
    assert "\n" not in str(caught.value) and spec in str(caught.value)


def test_a_spec_reads_back_as_itself():
    for spec in ("none", "alibi", "softcap:50", "softcap:2.5", "rel-bias:32"):
        assert parse_score_mod(spec).spec == spec
    assert parse_score_mod(None) is NO_MOD


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", MODIFYING)
def test_every_variant_that_declares_a_modification_matches_float64_under_it(name, device):
    """Each declared modification under each declared mask, GQA, N_q != N_kv both ways and one decoding query."""
    result = check_score_mods(runnable(name, device), device=device)
    assert result.passed, result.detail


@pytest.mark.parametrize("mod", ["alibi", "softcap:5", "rel-bias:8"])
@pytest.mark.parametrize("name", ["naive", "chunked-query", "chunked-online"])
def test_gradients_under_a_modification_match_float64(name, mod):
    """Past a 128-key block, N_q != N_kv both ways, 4 query heads over 2 key heads, unmasked and banded."""
    for mask, (n_q, n_kv) in itertools.product(("none", "causal", "sliding:40"), ((65, 300), (300, 65))):
        errors = gradient_error(get_variant(name), n_q=n_q, n_kv=n_kv, mask=parse_mask(mask), heads=4, heads_kv=2,
                                score_mod=parse_score_mod(mod))  # fmt: skip
        assert max(errors.values()) <= 1e-5, (mask, n_q, n_kv, errors)


@pytest.mark.parametrize("mod", ["alibi", "softcap:5", "rel-bias:8"])
def test_flex_fuses_each_modification_within_float64s_tolerance(mod):
    """One shape of the full check (`pytest -m slow` runs it all): causal, N_q != N_kv, GQA, after the plain
    kernel compiled in the same process (the order that once miscompiled)."""
    flex = runnable("flex", "cpu")
    exact_error(flex, n_q=300, n_kv=517, mask=parse_mask("causal"), heads=4, heads_kv=2)
    err = exact_error(flex, n_q=300, n_kv=517, mask=parse_mask("causal"), score_mod=parse_score_mod(mod), heads=4,
                      heads_kv=2)  # fmt: skip
    assert err <= 1e-5


def test_a_variant_that_declares_a_modification_and_ignores_it_fails_the_check():
    naive = get_variant("naive")

    @register("test-ignores-softcap", exact=True, masks=("none", "causal"), score_mods=("none", "softcap"))
    def ignores(q, k, v, *, mask, scale=None, score_mod=NO_MOD):
        return naive(q, k, v, mask=mask, scale=scale)  # the cap never applied

    try:
        result = check_score_mods(get_variant("test-ignores-softcap"))
        assert result.passed is False and "over tolerance" in result.detail, result.detail
    finally:
        unregister("test-ignores-softcap")


def test_a_variant_without_modifications_refuses_them_by_name():
    q, k, v = seeded_qkv(16)
    with pytest.raises(NotImplementedError, match="linear-elu does not serve score modification alibi"):
        get_variant("linear-elu")(q, k, v, score_mod="alibi")
    with pytest.raises(NotImplementedError, match=r"sdpa does not serve score modification softcap:50 \(serves: none, alibi"):
        get_variant("sdpa")(q, k, v, score_mod="softcap:50")


def test_sdpas_bias_is_real_memory_about_the_analytic_n2_h_4_bytes():
    n, heads = 512, 8
    q, k, v = seeded_qkv(n, heads=heads, d=64)
    sdpa = get_variant("sdpa")
    with torch.inference_mode():
        peaks = {mod: peak_memory(lambda m=mod: sdpa(q, k, v, score_mod=m)).peak_bytes for mod in ("none", "alibi")}
    extra = (peaks["alibi"] - peaks["none"]) / (n * n * heads * 4)
    assert 1.0 <= extra <= 2.0, extra  # the (H, N, N) float bias, and at most as much again in temporaries


def test_a_case_keeps_its_id_without_a_modification_and_changes_it_with_one():
    plain = Case("naive", 64, threads=1)
    assert Case("naive", 64, threads=1, score_mod="none").case_id == plain.case_id
    assert Case("naive", 64, threads=1, score_mod="alibi").case_id != plain.case_id
    assert Case("naive", 64, threads=1, score_mod="softcap:50").label().endswith("fwd softcap:50")


def test_a_sweep_over_modifications_records_them_and_refuses_bad_ones(tmp_path):
    bad = run_attnbench("sweep", "--variants", "naive", "--seq-lens", "32", "--score-mod", "softcap:0",
                        "--out", str(tmp_path / "bad"))  # fmt: skip
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "softcap:C" in bad.stderr
    assert not (tmp_path / "bad").exists()
    done = run_attnbench("sweep", "--variants", "naive,sdpa", "--seq-lens", "32", "--score-mod", "none,softcap:50",
                         "--threads", "1", "--rounds", "1", "--max-time", "0.02", "--out", str(tmp_path / "run"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    from harness.run.results import load_results

    frame = load_results(tmp_path / "run").set_index(["variant", "score_mod"])
    capped = frame.loc[("naive", "softcap:50")]
    assert capped["status"] in ("ok", "contended") and capped["rel_err"] < 1e-5
    assert frame.loc[("sdpa", "softcap:50"), "status"] == "unsupported"
    assert math.isfinite(frame.loc[("naive", "none"), "time_median_s"] or math.nan)


def test_sdpas_declared_memory_is_quadratic_under_a_dense_bias_or_mask():
    """What the fit is held to and the budget grows by: SDPA's bias (H, N_q, N_kv) and dense mask are N²."""
    from harness.measure.measure_case import record_for

    pairs = [("causal", "none"), ("causal", "alibi"), ("sliding:64", "none"), ("none", "rel-bias:8")]
    declared = {(m, s): record_for(Case("sdpa", 512, threads=1, mask=m, score_mod=s)).declared_memory for m, s in pairs}
    assert declared == {("causal", "none"): "O(N)", ("causal", "alibi"): "O(N^2)", ("sliding:64", "none"): "O(N^2)",
                        ("none", "rel-bias:8"): "O(N^2)"}  # fmt: skip
    decoding = Case("sdpa", 512, threads=1, mode="decode", q_len=1, score_mod="alibi")
    assert record_for(decoding).declared_memory == "O(N)"  # one query's bias row grows with N_kv alone
