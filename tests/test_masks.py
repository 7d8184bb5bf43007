"""Masks against small matrices written out by hand; exact variants under every mask with grouped heads."""

from __future__ import annotations

import pytest
import torch
from conftest import runnable

from harness.measure.case import Case, seeded_qkv
from harness.measure.case_work import case_bytes
from harness.measure.reference import reference_attention
from harness.verify.dimensions import check_masks
from variants import Unsupported, exact_flops, get_variant, list_variants
from variants.masks import NONE, MaskError, parse_mask, tile_rows

# 4 queries over 6 keys: o = N_kv - N_q = 2, so bottom-right masks align query i with key i + 2.
BY_HAND = {
    "none": ["111111", "111111", "111111", "111111"],
    "causal": ["100000", "110000", "111000", "111100"],  # j <= i, top-left
    "causal-br": ["111000", "111100", "111110", "111111"],  # j <= i + 2
    "sliding:2": ["011000", "001100", "000110", "000011"],  # i < j <= i + 2
    "document:2": ["111000", "000100", "000110", "000111"],  # keys 0-2 and 3-5; query i sits at key i + 2
    "prefix:4": ["111100", "111100", "111110", "111111"],  # j < 4 or j <= i + 2
}
# 6 queries over 4 keys (o = -2): the first two queries of a bottom-right mask see no key.
BY_HAND_TALL = {"causal-br": ["0000", "0000", "1000", "1100", "1110", "1111"]}


def matrix(rows: list[str]) -> torch.Tensor:
    return torch.tensor([[c == "1" for c in row] for row in rows])


@pytest.mark.parametrize("spec", sorted(BY_HAND))
def test_dense_mask_counts_and_mask_mod_match_the_matrix_written_by_hand(spec):
    mask, expected = parse_mask(spec), matrix(BY_HAND[spec])
    assert torch.equal(mask.dense(4, 6), expected)
    assert mask.visible_pairs(4, 6) == int(expected.sum())
    i, j = torch.meshgrid(torch.arange(4), torch.arange(6), indexing="ij")
    assert torch.equal(mask.mask_mod(4, 6)(0, 0, i, j), expected)  # FlexAttention's form, elementwise
    assert mask.spec == spec


def test_bottom_right_mask_leaves_early_queries_of_a_tall_problem_no_key():
    assert torch.equal(parse_mask("causal-br").dense(6, 4), matrix(BY_HAND_TALL["causal-br"]))
    q, k, v = seeded_qkv(6, 4, heads=2, d=8, dtype=torch.float64)
    ref = reference_attention(q, k, v, mask="causal-br")
    assert torch.equal(ref[:, :, :2], torch.zeros_like(ref[:, :, :2]))  # zeros, not NaN
    for name in [n for n in list_variants() if get_variant(n).exact and "causal-br" in get_variant(n).masks
                 and "contiguous" in get_variant(n).layouts]:  # fmt: skip
        if get_variant(name).unavailable_reason("cpu") is None and "float64" in get_variant(name).dtypes:  # no skip
            out = get_variant(name)(q, k, v, mask="causal-br")
            assert torch.equal(out[:, :, :2], torch.zeros_like(out[:, :, :2])), name


@pytest.mark.parametrize("spec", ["causal", "causal-br", "sliding:5", "document:3", "prefix:7", "none"])
@pytest.mark.parametrize("n_q, n_kv, groups", [(37, 37, 1), (20, 45, 2), (45, 20, 4)])
def test_tile_rows_agree_with_the_dense_matrix(spec, n_q, n_kv, groups):
    mask = parse_mask(spec)
    rows = torch.arange(n_q).repeat_interleave(groups)
    lo, hi = mask.bounds(rows, n_q, n_kv)
    dense = mask.dense(n_q, n_kv, rows=rows)  # (R, N_kv)
    for k0 in range(0, n_kv, 8):
        k1 = min(k0 + 8, n_kv)
        r0, r1, f0, f1 = tile_rows(lo, hi, k0, k1)
        sees = dense[:, k0:k1].any(1)
        assert not sees[:r0].any() and not sees[r1:].any()  # nobody outside [r0, r1) sees the block
        assert dense[f0:f1, k0:k1].all()  # the unmasked rows see all of it
        partial = torch.cat([dense[r0:f0, k0:k1], dense[f1:r1, k0:k1]])
        assert not partial.all(1).any() or spec == "none"  # rows left to mask are the partly visible ones


@pytest.mark.parametrize("spec, why", [("bogus", "unknown mask"), ("sliding:0", "positive integer W"),
                                       ("document:0", "positive integer K"), ("prefix:-1", "positive integer P"),
                                       ("causal:3", "takes no size")])  # fmt: skip
def test_bad_mask_specs_are_one_clear_error(spec, why):
    with pytest.raises(MaskError, match=why):
        parse_mask(spec)


EXACT = [n for n in list_variants() if get_variant(n).exact]


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.slow) if get_variant(n).family == "compiled" else n  # ~3 compiles a mask
    for n in EXACT
])  # fmt: skip
def test_exact_variants_match_float64_under_every_declared_mask_with_grouped_heads(name):
    if not runnable(name, "cpu"):
        pytest.skip(f"{name} does not run on this machine")
    result = check_masks(get_variant(name))
    if result.passed is None:  # it runs nowhere on this machine's CPU (xformers): said, not passed
        pytest.skip(result.detail)
    assert result.passed, result.detail


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.slow) if get_variant(n).family == "compiled" else n  # compiles per mask: opt-in
    for n in EXACT if get_variant(n).backward and len(get_variant(n).masks) > 2
])  # fmt: skip
def test_masked_grouped_gradients_match_float64(name):
    if not runnable(name, "cpu"):
        pytest.skip(f"{name} does not run on this machine")
    q, k, v = seeded_qkv(70, 150, heads=4, heads_kv=2, d=16, seed=3, scale=1.5)
    grad_out = seeded_qkv(70, heads=4, d=16, seed=4)[0]
    for spec in ("sliding:20", "document:4", "prefix:30", "causal-br"):
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        try:
            grads = torch.autograd.grad(get_variant(name)(*leaves, mask=spec), leaves, grad_out)
        except Unsupported as exc:  # FlexAttention has no CPU backward
            pytest.skip(str(exc))
        exact = [t.detach().double().requires_grad_() for t in (q, k, v)]
        ref = torch.autograd.grad(reference_attention(*exact, mask=spec), exact, grad_out.double())
        for g, r in zip(grads, ref):
            assert ((g.double() - r).norm() / r.norm()).item() < 1e-5, (name, spec)


def test_work_model_counts_visible_pairs_and_decode_bytes():
    full = Case("naive", 4096, heads=8, head_dim=64, threads=1)
    banded = Case("naive", 4096, heads=8, head_dim=64, mask="sliding:128", threads=1)
    window = sum(min(i + 1, 128) for i in range(4096))  # query i sees min(i + 1, W) keys
    assert exact_flops(banded) == 4 * 8 * window * 64
    assert exact_flops(full) == 4 * 8 * 4096 * 4096 * 64
    decode = Case("sdpa", 32768, batch=4, heads=8, heads_kv=2, head_dim=128, mode="decode", threads=1)
    assert decode.q_len == 1 and decode.mask == NONE
    # K and V read once (B·H_kv·N·D each), q read and the output written (B·H·1·D each), fp32.
    assert case_bytes(decode) == 4 * (2 * 4 * 2 * 32768 * 128 + 2 * 4 * 8 * 1 * 128)


def test_local_computes_the_band_exactly_with_gradients_and_refuses_other_masks():
    local = get_variant("local")
    for n_q, n_kv, window in [(70, 150, 20), (150, 70, 20), (64, 64, 1), (33, 33, 500)]:
        q, k, v = seeded_qkv(n_q, n_kv, heads=4, heads_kv=2, d=16, seed=7, scale=1.5)
        grad_out = seeded_qkv(n_q, heads=4, d=16, seed=8)[0]
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        out = local(*leaves, mask=f"sliding:{window}")
        exact = [t.detach().double().requires_grad_() for t in (q, k, v)]
        ref = reference_attention(*exact, mask=f"sliding:{window}")
        assert ((out.double() - ref).norm() / ref.norm()).item() < 1e-6
        for g, r in zip(torch.autograd.grad(out, leaves, grad_out), torch.autograd.grad(ref, exact, grad_out.double())):
            assert ((g.double() - r).norm() / max(r.norm(), 1.0)).item() < 1e-5  # W = 1: dq = dk = 0 exactly
    with pytest.raises(Unsupported, match="does not serve mask causal-br"):
        local(q, k, v, mask="causal-br")


def test_all_variants_means_those_serving_one_of_the_grids_masks():
    from harness.run.sweep import build_sweep, expand

    dense = {c.variant for c in expand(build_sweep(seq_lens="64", threads="1"))}
    banded = {c.variant for c in expand(build_sweep(seq_lens="64", masks="sliding:8", threads="1"))}
    assert "local" not in dense and "naive" in dense  # local serves sliding windows only
    assert {"local", "naive", "chunked-online"} <= banded and "linear-elu" not in banded


def test_sdpa_is_handed_no_mask_where_the_mask_hides_nothing():
    # Decode's one query under causal-br sees every key: passing a dense mask only shut out the flash and cuDNN
    # backends (which take none). Two queries at the end of four keys do hide a pair: the mask goes.
    from variants.masks import Mask
    from variants.sdpa import _arguments

    q1, q2, k = torch.zeros(1, 2, 1, 8), torch.zeros(1, 2, 2, 8), torch.zeros(1, 2, 4, 8)
    assert _arguments(q1, k, Mask("causal-br"))["attn_mask"] is None
    assert _arguments(q1, k, Mask("sliding", 2))["attn_mask"] is not None  # one query, two of four keys
    dense = _arguments(q2, k, Mask("causal-br"))["attn_mask"]
    assert dense.tolist() == [[True, True, True, False], [True, True, True, True]]
