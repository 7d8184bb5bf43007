"""Accuracy metrics, row sampling, and measure_case end to end."""

from __future__ import annotations

import math

import pytest
import torch

from harness.measure.accuracy import compare, exact_rows, measure_accuracy, sample_rows
from harness.measure.case import Case, make_inputs
from harness.measure.case_work import case_flops
from harness.measure.measure_case import failure_status, measure_case
from harness.measure.reference import reference_attention
from variants import Unsupported, get_variant


def test_metrics_by_hand():
    ref = torch.tensor([3.0, 4.0])  # norm 5
    out = torch.tensor([3.0, 5.0])
    rel, max_abs, cosine = compare(out, ref)
    assert rel == pytest.approx(1 / 5)
    assert max_abs == pytest.approx(1.0)
    assert cosine == pytest.approx((9 + 20) / (5 * math.sqrt(34)))


def test_sampled_reference_rows_are_the_full_reference_rows():
    case = Case("naive", 1024, heads=2, input_scale=2.0)
    q, k, v = make_inputs(case)
    rows = sample_rows(1024, 256, seed=0)
    assert rows is not None and len(rows) == 256 and len(set(rows.tolist())) == 256
    for mask in ("none", "causal"):
        full = reference_attention(q, k, v, mask=mask)
        part = reference_attention(q, k, v, mask=mask, rows=rows)
        assert torch.allclose(part, full[:, :, rows], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["chunked-online", "performer-64"])
def test_sampled_error_agrees_with_full_error(name):
    case = Case(name, 1024, heads=4)
    q, k, v = make_inputs(case)
    out = get_variant(name)(q, k, v, mask="causal")
    full = measure_accuracy(out, q, k, v, mask="causal", max_rows=1024)
    assert full.rows == 1024
    half = measure_accuracy(out, q, k, v, mask="causal", max_rows=512, seed=3)
    assert half.rows == 512
    # A sample estimates the full error; its spread shrinks as 1/sqrt(rows).
    assert abs(half.rel_err - full.rel_err) / full.rel_err < 0.15
    # Chunked references (small chunk_bytes) give exactly the unchunked numbers.
    chunked = measure_accuracy(out, q, k, v, mask="causal", max_rows=1024, chunk_bytes=1 << 16)
    assert chunked.rel_err == pytest.approx(full.rel_err, rel=1e-9)
    assert chunked.max_abs_err == pytest.approx(full.max_abs_err, rel=1e-9)


def test_naive_flops_are_4_b_h_n2_d():
    case = Case("naive", 1024, batch=2, heads=8, head_dim=64)
    assert case_flops(case) == 4 * 2 * 8 * 1024**2 * 64
    # causal: query i sees i + 1 keys, N(N+1)/2 visible pairs in all
    assert case_flops(Case("naive", 1024, mask="causal")) == 4 * 8 * (1024 * 1025 // 2) * 64
    assert case_flops(Case("naive", 1024, mode="fwd_bwd")) == 3.5 * 4 * 8 * 1024**2 * 64


def test_measure_case_fills_every_measured_column():
    r = measure_case(Case("sdpa", 256, heads=2, mask="causal"), max_time_s=0.5)
    assert r.status == "ok", r.reason
    assert r.backend == "flash_attention"
    assert 0 < r.time_min_s <= r.time_p20_s <= r.time_median_s <= r.time_p80_s
    assert r.n_samples == len(r.time_samples_s) >= 5
    assert r.peak_mem_bytes > 0 and r.mem_method == "cpu-profiler"
    assert r.rel_err < 1e-5 and r.cosine > 0.999999 and r.err_rows == 256
    assert r.gflops_per_s == pytest.approx(r.flops / r.time_median_s / 1e9)


def test_measure_case_fwd_bwd_and_failures_become_statuses():
    r = measure_case(Case("chunked-online", 128, heads=2, mode="fwd_bwd"), max_time_s=0.3)
    assert r.status == "ok" and r.flops == 3.5 * 4 * 2 * 128**2 * 64
    assert measure_case(Case("no-such-variant", 8)).status == "error"
    xf = measure_case(Case("xformers", 64, heads=2))
    assert xf.status == "unsupported" and "device=cpu" in xf.reason
    assert failure_status(Unsupported("why")) == ("unsupported", "why")
    assert failure_status(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried"))[0] == "oom"
    assert failure_status(ValueError("bad\nsecond line")) == ("error", "ValueError: bad")


def test_variants_of_one_input_set_share_one_reference(tmp_path):
    """The float64 rows are computed by the first variant of an input set, read by the rest, and give the same errors."""
    from harness.measure.reference_cache import ReferenceCache, input_set_key

    shared = tmp_path / "references"
    cases = [Case(name, 256, heads=2, mask="causal") for name in ("naive", "sdpa", "chunked-online")]
    alone = [measure_case(c, max_time_s=0.02, memory=False) for c in cases]
    together = [measure_case(c, max_time_s=0.02, memory=False, references=shared) for c in cases]
    assert [r.rel_err for r in together] == [r.rel_err for r in alone]
    assert [r.attn_entropy for r in together] == [r.attn_entropy for r in alone]
    assert len(list(shared.glob("*.npz"))) == 1  # one input set
    other = measure_case(Case("naive", 256, heads=2, mask="causal", seed=1), max_time_s=0.02, memory=False, references=shared)
    assert other.rel_err != alone[0].rel_err and len(list(shared.glob("*.npz"))) == 2
    # A torn file is computed again, not trusted.
    key = input_set_key(cases[0], cases[0].mask, cases[0].score_mod, 1024)
    (shared / f"{key}.npz").write_bytes(b"torn")
    q, k, v = make_inputs(cases[0])
    calls = []
    compute = lambda: calls.append(1) or exact_rows(q, k, v, mask="causal")  # noqa: E731
    exact = ReferenceCache(shared).get(key, compute)
    assert calls == [1] and exact.values.shape == (1, 2, 256, 64)
    again = ReferenceCache(shared).get(key, compute)  # rewritten whole: read, not computed
    assert calls == [1] and torch.equal(again.values, exact.values)
