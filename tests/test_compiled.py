"""Compiled variants (FlexAttention, naive under torch.compile) and how the harness times compilation.

Each torch.compile costs seconds on this CPU, so these tests pick their shapes
to compile few graphs; the registry-wide grids run the compiled variants with
``-m slow``.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch.nn.attention.flex_attention import create_block_mask

from harness.measure.case import Case, seeded_qkv
from harness.measure.compilation import compiled_graphs
from harness.measure.measure_case import measure_case
from harness.measure.reference import reference_attention
from harness.verify.dimensions import MASK_SPECS
from harness.verify.yardstick import exact_error
from variants import Unsupported, get_variant, register, unregister
from variants.compiled import block_mask
from variants.masks import parse_mask

CPU = torch.device("cpu")


@pytest.mark.parametrize("spec", ["causal", "causal-br", "sliding:5", "sliding:40", "document:3", "prefix:7", "prefix:50"])
@pytest.mark.parametrize("n_q, n_kv", [(37, 37), (20, 45), (45, 20), (100, 100), (1, 64), (64, 64)])
def test_block_mask_from_intervals_equals_flex_attentions_own(spec, n_q, n_kv):
    # create_block_mask evaluates mask_mod at every (query, key); ours reads the tiles off the intervals.
    mask = parse_mask(spec)
    ours = block_mask(mask, n_q, n_kv, CPU, block=16)
    theirs = create_block_mask(mask.mask_mod(n_q, n_kv), None, None, n_q, n_kv, device="cpu", BLOCK_SIZE=16)
    for name in ("kv_num_blocks", "full_kv_num_blocks", "q_num_blocks", "full_q_num_blocks"):
        assert torch.equal(getattr(ours, name), getattr(theirs, name)), name
    assert torch.equal(ours.to_dense(), theirs.to_dense())


def test_flex_is_exact_in_bf16_and_when_decoding_and_compiles_once_across_lengths():
    flex = get_variant("flex")
    for n in (300, 600):  # the first two lengths may compile (dynamic shapes are found on the second)
        q, k, v = seeded_qkv(n, n, heads=4, heads_kv=2, d=16, seed=n, scale=1.5)
        flex(q, k, v, mask="sliding:100")
    before = compiled_graphs()
    for n in (257, 1000, 1500):
        q, k, v = seeded_qkv(n, n, heads=4, heads_kv=2, d=16, seed=n, scale=1.5)
        err = flex(q, k, v, mask="sliding:100").double() - (ref := reference_attention(q, k, v, mask="sliding:100"))
        assert (err.norm() / ref.norm()).item() < 1e-5
    assert compiled_graphs() == before  # three more lengths, no new compile
    q, k, v = seeded_qkv(1, 700, heads=4, heads_kv=2, d=16, seed=1, scale=1.5)  # one query at the end of a cache
    ref = reference_attention(q, k, v, mask="causal-br")
    assert ((flex(q, k, v, mask="causal-br").double() - ref).norm() / ref.norm()).item() < 1e-5
    q, k, v = (t.bfloat16() for t in seeded_qkv(200, heads=4, d=16, seed=2))
    ref = reference_attention(q, k, v, mask="causal")
    assert ((flex(q, k, v, mask="causal").double() - ref).norm() / ref.norm()).item() < 2e-2


@pytest.mark.parametrize("name, masks", [("flex", list(MASK_SPECS.values())), ("naive-compiled", ["sliding:16"])])
def test_compiled_variants_are_exact_under_their_masks_with_grouped_heads(name, masks):
    # The masks check (`attnbench check`, -m slow here) adds a square, a one-tile and a decoding shape: more compiles.
    for mask in masks:
        for n_q, n_kv in ((300, 517), (517, 300)):
            err = exact_error(get_variant(name), n_q=n_q, n_kv=n_kv, mask=mask, heads=4, heads_kv=2)
            assert err <= 1e-5, (mask, n_q, n_kv, err)


def test_flex_on_cpu_refuses_gradients_with_torchs_reason():
    q, k, v = (t.requires_grad_() for t in seeded_qkv(64, heads=2, d=16))
    with pytest.raises(Unsupported, match="does not support backward on CPU"):
        get_variant("flex")(q, k, v)
    record = measure_case(Case("flex", 128, heads=2, head_dim=16, mode="fwd_bwd", threads=1), max_time_s=0.05)
    assert record.status == "unsupported" and "backward on CPU" in record.reason


def compile_warnings(record):
    """The row's torch.compile warnings (a busy machine may add a noise warning: not this test's subject)."""
    return [w for w in record.warnings if "torch.compile" in w]


def test_compile_time_is_its_own_column_never_in_the_samples():
    # A mask no other test compiles (dynamo guards on its size), so this process compiles here whatever ran before.
    case = Case("naive-compiled", 384, heads=2, head_dim=16, mask="prefix:123", threads=1)
    first = measure_case(case, max_time_s=0.2, memory=False)
    assert first.status == "ok", first.reason
    assert first.compile_s > 0.1  # seconds of Inductor (less with its on-disk cache warm)
    assert max(first.time_samples_s) < first.compile_s / 20 and first.time_median_s < first.compile_s / 20
    assert first.rel_err < 1e-5 and not compile_warnings(first)
    # Another length in the same process reuses the dynamic-shape graph, or compiles once more, never in timing.
    for n in (768, 1024):
        later = measure_case(replace(case, seq_len=n), max_time_s=0.2, memory=False)
        assert later.status == "ok" and not compile_warnings(later), later.warnings
    assert later.compile_s is None
    plain = measure_case(Case("naive", 384, heads=2, head_dim=16, threads=1), max_time_s=0.05, memory=False)
    assert plain.compile_s is None


LATE = False  # read by the compiled function below: dynamo guards on it


@pytest.fixture
def recompiling_variant():
    calls = [0]

    @torch.compile(fullgraph=True)
    def body(q, k, v):
        return torch.softmax(q @ k.transpose(-1, -2), -1) @ v * (1.0 if LATE else 1.0)

    def recompiles(q, k, v, *, causal=False, scale=None):
        global LATE
        calls[0] += 1
        LATE = calls[0] > 3  # flips once, after the untimed first call and during warm-up and timing
        return body(q, k, v)

    register("test-recompiles", family="test", exact=False, time="O(N^2 d)", memory="O(N^2)", causal=False)(recompiles)
    yield
    unregister("test-recompiles")


def test_a_recompile_during_timing_is_a_warning_on_the_row(recompiling_variant):
    record = measure_case(Case("test-recompiles", 64, heads=2, head_dim=16, threads=1), max_time_s=0.05, memory=False)
    assert record.status == "ok" and record.compile_s > 0
    assert any("torch.compile compiled 1 graph(s) while this case was timed" in w for w in record.warnings)


@pytest.fixture
def graph_breaking_variant():
    @torch.compile(fullgraph=True)
    def breaks(q, k, v, *, causal=False, scale=None):
        scores = q @ k.transpose(-1, -2)
        torch._dynamo.graph_break()
        return torch.softmax(scores, -1) @ v

    register("test-graph-break", family="test", exact=False, time="O(N^2 d)", memory="O(N^2)", causal=False)(breaks)
    yield
    unregister("test-graph-break")


def test_a_graph_break_is_an_error_row_not_a_silent_eager_timing(graph_breaking_variant):
    record = measure_case(Case("test-graph-break", 64, heads=2, head_dim=16, threads=1), max_time_s=0.05)
    assert record.status == "error" and record.time_median_s is None
    assert "graph_break" in record.reason or "graph break" in record.reason.lower(), record.reason
