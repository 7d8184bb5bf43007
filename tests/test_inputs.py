"""Input families: each moves the exact attention the way its parameter says, gaussian stays today's numbers,
bad specs are one line, and a sweep records each row's family and exact-attention entropy."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_attnbench

from harness.analyze.families import breaking_points
from harness.measure import trained
from harness.measure.accuracy import measure_accuracy
from harness.measure.case import Case, make_inputs, seeded_qkv
from harness.measure.fidelity import measure_fidelity
from harness.measure.inputs import InputsError, parse_inputs
from harness.measure.reference import reference_attention, reference_probabilities
from harness.report.dimension_figures import family_map_figure
from harness.report.headline import family_lines
from harness.run.isolated import write_attention_maps
from variants import get_variant, register, unregister
from variants.masks import NONE
from variants.score_mods import NO_MOD


def draw(spec: str, n: int = 512, d: int = 64, seed: int = 0):
    return parse_inputs(spec).draw(n, n, batch=1, heads=4, heads_kv=4, d=d, seed=seed)


def entropy(spec: str, **kwargs) -> float:
    q, k, v = draw(spec, **kwargs)
    return measure_accuracy(reference_attention(q, k, v), q, k, v).entropy


def mean_distance(spec: str, n: int = 512) -> float:
    """The attention-weighted mean |i - j| of the exact attention rows."""
    q, k, _ = draw(spec, n)
    probs = reference_probabilities(q, k)
    distance = (torch.arange(n)[:, None] - torch.arange(n)[None]).abs().double()
    return float((probs * distance).sum(-1).mean())


def test_gaussian_is_todays_inputs_so_old_runs_mean_what_they_meant():
    case = Case("sdpa", 96, heads=4, head_dim=16, threads=1, seed=3, input_scale=2.0)
    for drawn, before in zip(make_inputs(case), seeded_qkv(96, heads=4, d=16, seed=3, scale=2.0)):
        assert torch.equal(drawn, before)
    assert Case("sdpa", 96, threads=1, inputs="gaussian").case_id == Case("sdpa", 96, threads=1).case_id


def test_uniform_attention_has_entropy_log_n_and_peaked_lowers_it_monotonically():
    q = torch.zeros(1, 1, 8, 4)  # every score equal: uniform over 32 keys
    k, v = torch.randn(1, 1, 32, 4), torch.randn(1, 1, 32, 4)
    assert measure_accuracy(reference_attention(q, k, v), q, k, v).entropy == pytest.approx(math.log(32))
    entropies = [entropy(f"peaked:{t}") if t != 1 else entropy("gaussian") for t in (1, 2, 4, 8)]
    assert entropies == sorted(entropies, reverse=True) and entropies[-1] < 1.5 < math.log(512) - 0.6 < entropies[0]


def test_local_attention_spreads_with_its_length():
    """Past a few keys (below, a head attends mostly to itself): unit Gaussian inputs spread over ~N/3 = 170 keys."""
    distances = [mean_distance(f"local:{length}") for length in (16, 64, 256)]
    assert distances == sorted(distances) and distances[0] < 10 and distances[-1] < 170 / 4
    entropies = [entropy(f"local:{length}") for length in (4, 16, 64, 256)]
    assert entropies == sorted(entropies) and entropies[-1] < entropy("gaussian")


def test_lowrank_inputs_have_the_rank_and_clustered_ones_are_sharper_than_gaussian():
    q, k, _ = draw("lowrank:4", n=64, d=32)
    assert int(torch.linalg.matrix_rank(q[0, 0])) == 4 and int(torch.linalg.matrix_rank(k[0, 0])) == 4
    assert q.square().sum(-1).mean() == pytest.approx(32, rel=0.2)  # the Gaussian's norm
    assert entropy("clustered:4") < entropy("gaussian") - 1


@pytest.mark.parametrize("spec", ["bogus", "trained:3", "peaked:0", "peaked:-1", "peaked:nan", "local:0", "lowrank:0",
                                  "clustered:0", "clustered:x", "gaussian:2"])  # fmt: skip
def test_bad_families_are_refused_with_one_line(spec):
    with pytest.raises(InputsError) as caught:
        parse_inputs(spec)
    assert "\n" not in str(caught.value) and spec in str(caught.value)


def test_a_sweep_records_each_family_and_its_entropy(tmp_path):
    bad = run_attnbench("sweep", "--inputs", "lowrank:65", "--head-dim", "64", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "rank 65 is above --head-dim 64" in bad.stderr and not (tmp_path / "bad").exists()
    done = run_attnbench("sweep", "--variants", "naive,linear-elu", "--seq-lens", "256", "--inputs", "gaussian,peaked:4",
                         "--threads", "1", "--rounds", "1", "--max-time", "0.02", "--out", str(tmp_path / "run"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    frame = pd.read_parquet(tmp_path / "run" / "results.parquet").set_index(["variant", "inputs"])
    assert frame.loc[("naive", "peaked:4"), "attn_entropy"] < frame.loc[("naive", "gaussian"), "attn_entropy"] - 1
    assert frame.loc[("naive", "peaked:4"), "rel_err"] < 1e-5  # an exact variant is exact on any family


def test_total_variation_recall_and_implied_entropy_by_hand_on_three_keys():
    """A variant whose implied map is written out: against uniform exact rows (q = 0), TV is ½·Σ|A - 1/3| per row:
    2/3, 2/3 and 8/15; against exact rows led by key 0 (scores 3, 2, 0), the top-1 recall is 1/3."""
    implied = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-0.2, 0.6, 0.6]])

    @register("test-fixed-map", exact=False, masks=("none",))
    def fixed(q, k, v, *, mask, scale=None):
        return implied.to(v.dtype) @ v  # (B, H, 3, D_v): the rows of ``implied`` applied to V

    try:
        spec, k = get_variant("test-fixed-map"), torch.tensor([3.0, 2.0, 0.0]).view(1, 1, 3, 1)
        uniform = measure_fidelity(spec, torch.zeros(1, 1, 3, 1), k, mask=NONE, score_mod=NO_MOD, top=1)
        assert uniform.tv == pytest.approx((2 / 3 + 2 / 3 + 8 / 15) / 3)
        led = measure_fidelity(spec, torch.ones(1, 1, 3, 1), k, mask=NONE, score_mod=NO_MOD, top=1)
        assert led.recall == pytest.approx(1 / 3)
        row3 = -(1 / 7 * math.log(1 / 7) + 2 * 3 / 7 * math.log(3 / 7))  # |A| / 1.4 = 1/7, 3/7, 3/7; rows 1, 2 one-hot
        assert led.entropy == pytest.approx(row3 / 3)
    finally:
        unregister("test-fixed-map")


@pytest.mark.parametrize("name", ["naive", "chunked-online"])
def test_an_exact_variant_implies_exact_attention(name):
    q, k, _ = draw("local:64", n=300)
    found = measure_fidelity(get_variant(name), q, k, mask=NONE, score_mod=NO_MOD)
    assert found.tv < 1e-5 and found.recall == 1.0


def test_breaking_points_name_the_entropy_below_which_an_approximation_fails():
    rows = [  # an approximation fine on flat attention, broken on sharp; an exact variant is left out
        {"inputs": "gaussian", "attn_entropy": 5.0, "rel_err": 0.05, "attn_recall": 0.9},
        {"inputs": "local:64", "attn_entropy": 3.0, "rel_err": 0.08, "attn_recall": 0.4},
        {"inputs": "peaked:8", "attn_entropy": 1.0, "rel_err": 0.6, "attn_recall": 0.2},
    ]
    common = {"status": "ok", "device": "cpu", "dtype": "float32", "mode": "fwd", "mask": "none", "seq_len": 256}
    frame = pd.DataFrame([{**common, **row, "variant": "approx", "exact": False} for row in rows]
                         + [{**common, **rows[0], "variant": "naive", "exact": True}])  # fmt: skip
    found = breaking_points(frame).set_index("variant")
    assert list(found.index) == ["approx"]
    assert found.loc["approx", "breaks_below_entropy"] == 3.0  # recall under 0.5 at 3 nats, error over 0.1 at 1
    assert (found.loc["approx", "best_inputs"], found.loc["approx", "worst_inputs"]) == ("gaussian", "peaked:8")
    # The findings say it in a sentence, with its best and worst family.
    line = family_lines(frame).set_index("approximation").loc["approx"]
    assert line["on attention that looks real"].startswith("breaks at 3.0 nats and below")
    assert line["best family"] == "gaussian (error 0.050, recall 0.90)" and line["worst family"].startswith("peaked:8")
    held = frame.assign(rel_err=0.01, attn_recall=0.95)
    assert family_lines(held).iloc[0]["on attention that looks real"].startswith("within 0.1 of exact")
    broken = frame.assign(rel_err=0.5)
    assert family_lines(broken).iloc[0]["on attention that looks real"].startswith("error over 0.1 or top-8 recall")


def test_a_sweep_over_families_maps_each_family(tmp_path):
    """One attention map per family, on that family's inputs: exact's and the approximation's, not the exact variants'."""
    cases = [Case(name, 64, heads=1, inputs=family) for name in ("naive", "performer-64") for family in ("gaussian", "local:8")]
    write_attention_maps(tmp_path, cases, [], timeout=120)
    maps = json.loads((tmp_path / "attention_maps.json").read_text())
    assert sorted(maps["families"]) == ["gaussian", "local:8"]
    for by_name in maps["families"].values():
        assert list(by_name) == ["exact", "performer-64"] and all(entry["status"] == "ok" for entry in by_name.values())
    exact, local = (np.array(maps["families"][f]["exact"]["matrix"]) for f in ("gaussian", "local:8"))
    assert np.allclose(exact.sum(1), 1) and np.allclose(local.sum(1), 1)
    distance = lambda a: (a * abs(np.arange(64)[:, None] - np.arange(64)[None, :])).sum(1).mean()  # noqa: E731
    assert distance(local) < distance(exact) / 2  # the local family's map hugs the diagonal
    assert family_map_figure(maps["families"], tmp_path / "family_maps.png").stat().st_size > 10_000


def test_the_trained_family_solves_its_task_and_attends_sharply(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNBENCH_CACHE", str(tmp_path))
    trained.recall_model.cache_clear()
    try:
        model = trained.recall_model(32)
        assert model.accuracy >= trained.TARGET  # associative recall solved on held-out sequences
        assert (tmp_path / "recall-d32-seed0.npz").is_file()
        trained.recall_model.cache_clear()
        assert trained.recall_model(32).accuracy == model.accuracy  # read back from the cache, not retrained
        assert parse_inputs("trained").task_accuracy(32) == model.accuracy
        assert entropy("trained", d=32) < entropy("gaussian", d=32) - 3
    finally:
        trained.recall_model.cache_clear()
