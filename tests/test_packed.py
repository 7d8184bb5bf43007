"""Packed documents of unequal length: masks written out by hand, drawn lengths, the padded and nested
variants against float64, the padding fraction on the row, and the sweep's edge."""

from __future__ import annotations

import pytest
import torch
from conftest import run_attnbench

from harness.measure.case import Case
from harness.measure.measure_case import record_for
from harness.verify.dimensions import check_masks
from harness.verify.yardstick import exact_error
from variants import get_variant, list_variants
from variants.masks import MaskError, drawn_lengths, parse_mask
from variants.packed import padded_flops

# docs:1+2+3 over 6 tokens: documents {0}, {1, 2}, {3, 4, 5}.
DOCS_CAUSAL = [
    [1, 0, 0, 0, 0, 0],
    [0, 1, 0, 0, 0, 0],
    [0, 1, 1, 0, 0, 0],
    [0, 0, 0, 1, 0, 0],
    [0, 0, 0, 1, 1, 0],
    [0, 0, 0, 1, 1, 1],
]
DOCS_BIDIRECTIONAL = [
    [1, 0, 0, 0, 0, 0],
    [0, 1, 1, 0, 0, 0],
    [0, 1, 1, 0, 0, 0],
    [0, 0, 0, 1, 1, 1],
    [0, 0, 0, 1, 1, 1],
    [0, 0, 0, 1, 1, 1],
]
# The variants made for packing; those serving every mask kind are checked under docs and docs-bi in test_masks.
PACKING = [n for n in list_variants() if get_variant(n).family == "packed"]


@pytest.mark.parametrize("spec, expected", [("docs:1+2+3", DOCS_CAUSAL), ("docs-bi:1+2+3", DOCS_BIDIRECTIONAL)])
def test_six_tokens_in_three_documents_by_hand(spec, expected):
    mask = parse_mask(spec)
    assert mask.dense(6, 6).int().tolist() == expected
    assert mask.visible_pairs(6, 6) == sum(map(sum, expected))
    assert mask.spec == spec


def test_drawn_lengths_are_seeded_positive_and_sum_to_n():
    lengths = drawn_lengths(8, 8192)
    assert len(lengths) == 8 and sum(lengths) == 8192 and min(lengths) >= 1
    assert drawn_lengths(8, 8192) == lengths  # the same documents for every variant, run and machine
    assert max(lengths) / min(lengths) > 3  # log-normal: unequal, unlike document:K
    assert drawn_lengths(3, 3) == (1, 1, 1)
    assert parse_mask("docs:8").doc_lengths(8192) == lengths


@pytest.mark.parametrize("spec", ["docs:0", "docs:x", "docs:", "docs:1+0+2", "docs:1+-2", "docs-bi:2.5", "docs:3+"])
def test_bad_packed_specs_are_refused_with_one_line(spec):
    with pytest.raises(MaskError) as caught:
        parse_mask(spec)
    assert "\n" not in str(caught.value) and spec in str(caught.value)


def test_lengths_that_do_not_fit_n_are_refused():
    with pytest.raises(MaskError, match="sum to 6, not to N = 7"):
        parse_mask("docs:1+2+3").doc_lengths(7)
    with pytest.raises(MaskError, match="needs N >= 3"):
        parse_mask("docs:3").doc_lengths(2)


@pytest.mark.parametrize("name", PACKING)
def test_every_packing_variant_matches_float64_with_gqa(name):
    """Lengths 1, 7 and the rest at every check shape (N_q != N_kv both ways, decode), 4 query heads over 2."""
    result = check_masks(get_variant(name))
    assert result.passed, result.detail


@pytest.mark.parametrize("name", ["naive", "sdpa", "chunked-online", "sdpa-padded", "sdpa-nested"])
@pytest.mark.parametrize("spec", ["docs:1+2+3", "docs-bi:1+2+3", "docs:5", "docs-bi:5"])
def test_hand_and_drawn_documents_within_1e_5_of_float64(name, spec):
    n = 6 if "+" in spec else 301
    try:
        err = exact_error(get_variant(name), n_q=n, n_kv=n, mask=parse_mask(spec), heads=4, heads_kv=2)
    except NotImplementedError as exc:  # nested SDPA in this torch takes no is_causal: torch's own reason
        assert name == "sdpa-nested" and spec.startswith("docs:") and "is_causal" in str(exc)
        return
    assert err <= 1e-5


def test_packing_skips_the_hidden_blocks():
    """chunked-online under docs:8 at N = 2048 does Σ l_i²/2 of the work: its FLOPs count only visible pairs."""
    mask = parse_mask("docs:8")
    dense = Case("chunked-online", 2048, threads=1)
    packed = Case("chunked-online", 2048, threads=1, mask="docs:8")
    lengths = mask.doc_lengths(2048)
    assert get_variant("chunked-online").flops(packed) == 4 * 8 * 64 * sum(n * (n + 1) // 2 for n in lengths)
    assert get_variant("chunked-online").flops(packed) < get_variant("chunked-online").flops(dense) / 4


def test_padded_counts_its_padding_as_work_and_records_its_fraction():
    case = Case("sdpa-padded", 6, threads=1, mask="docs-bi:1+2+3")
    assert padded_flops(case) == 4 * 8 * 64 * 3 * 3**2  # three documents padded to three tokens each
    assert record_for(case).padding_fraction == pytest.approx(1 - 6 / 9)
    assert record_for(Case("naive", 6, threads=1, mask="docs:1+2+3")).padding_fraction is None


def test_packed_variants_refuse_a_decoding_query_by_name():
    with pytest.raises(NotImplementedError, match="N_q \\(1\\) must equal N_kv \\(300\\)"):
        exact_error(get_variant("sdpa-padded"), n_q=1, n_kv=300, mask=parse_mask("docs:3"))


def test_a_packed_sweep_records_the_documents_and_refuses_lengths_that_do_not_fit(tmp_path):
    bad = run_attnbench("sweep", "--variants", "naive", "--seq-lens", "32", "--mask", "docs:1+2+3", "--out",
                        str(tmp_path / "bad"))  # fmt: skip
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "sum to 6" in bad.stderr
    assert not (tmp_path / "bad").exists()
    done = run_attnbench("sweep", "--variants", "chunked-online,sdpa-padded", "--seq-lens", "64", "--mask", "docs:4",
                         "--threads", "1", "--rounds", "1", "--max-time", "0.02", "--out", str(tmp_path / "run"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    from harness.run.results import load_results

    frame = load_results(tmp_path / "run").set_index("variant")
    assert set(frame["mask"]) == {"docs:4"} and (frame["rel_err"] < 1e-5).all()
    lengths = drawn_lengths(4, 64)
    assert frame.loc["sdpa-padded", "padding_fraction"] == pytest.approx(1 - 64 / (4 * max(lengths)))
    assert torch.isnan(torch.tensor(frame.loc["chunked-online", "padding_fraction"], dtype=torch.float64))
