"""Decode batches whose caches differ in length (`variants.kv_lens`): masks written out by hand, every variant that
reads them against float64 (contiguous and paged, grouped heads), each sequence as if decoded alone, and the edge."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import run_attnbench

from harness.analyze.ragged import unequal_lengths_table
from harness.measure.case import Case
from harness.measure.case_work import case_bytes, case_flops
from harness.measure.reference import reference_attention
from harness.run.results import load_results
from variants import Unsupported, get_variant, list_variants
from variants.kv_lens import cache_lengths, dense
from variants.masks import parse_mask
from variants.paged import page

ROOT = Path(__file__).resolve().parent.parent
RAGGED = [n for n in list_variants() if get_variant(n).ragged and get_variant(n).unavailable_reason("cpu") is None]
MASKS = ["causal-br", "sliding:5", "prefix:3", "none"]
PAGED_MASKS = ["causal-br", "none"]  # a paged cache's decode masks (harness.verify.dimensions.PAGED_MASKS)


def test_each_sequence_reads_its_own_keys_written_out_by_hand():
    """Two sequences of a 6-slot cache holding 3 and 6 keys, two queries each (the last of their sequence)."""
    lens = torch.tensor([3, 6])
    assert dense(parse_mask("causal-br"), 2, 6, lens)[:, 0].int().tolist() == [
        [[1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0]],
        [[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]],
    ]
    assert dense(parse_mask("sliding:2"), 2, 6, lens)[:, 0].int().tolist() == [
        [[1, 1, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0]],
        [[0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 1, 1]],
    ]
    assert dense(parse_mask("none"), 1, 6, lens)[:, 0].int().tolist() == [[[1, 1, 1, 0, 0, 0]], [[1, 1, 1, 1, 1, 1]]]


def test_drawn_lengths_are_seeded_the_longest_n_and_none_shorter_than_the_queries():
    drawn = cache_lengths("drawn", 8, 8192, n_q=4, seed=0)
    assert max(drawn) == 8192 and min(drawn) >= 4 and len(set(drawn)) > 4
    assert cache_lengths("drawn", 8, 8192, n_q=4, seed=0) == drawn != cache_lengths("drawn", 8, 8192, n_q=4, seed=1)
    assert cache_lengths("equal", 8, 8192) is None and cache_lengths("3+7", 2, 7) == (3, 7)


@pytest.mark.parametrize("mask", MASKS)
def test_the_reference_is_each_sequence_decoded_at_its_own_length(mask):
    q, k, v = torch.randn(3, 4, 2, 8), torch.randn(3, 2, 40, 8), torch.randn(3, 2, 40, 8)
    lengths = (40, 9, 2)
    together = reference_attention(q, k, v, mask=mask, kv_lens=torch.tensor(lengths))
    alone = [
        reference_attention(q[b : b + 1], k[b : b + 1, :, :n], v[b : b + 1, :, :n], mask=mask) for b, n in enumerate(lengths)
    ]
    assert torch.allclose(together, torch.cat(alone), atol=1e-12)


LAYOUTS = ["contiguous", "paged:1", "paged:7", "paged:64"]
EAGER = [n for n in RAGGED if get_variant(n).family != "compiled"]  # the compiled: test_flex_..., below
READS = [(n, layout) for n in EAGER for layout in LAYOUTS if layout.partition(":")[0] in get_variant(n).layouts]


@pytest.mark.parametrize(("name", "layout"), READS)
def test_each_ragged_variant_matches_float64_on_drawn_and_extreme_lengths_with_grouped_heads(name, layout):
    spec = get_variant(name)
    torch.manual_seed(0)
    q, k, v = torch.randn(4, 8, 2, 16), torch.randn(4, 2, 300, 16), torch.randn(4, 2, 300, 16)  # 300 keys: 3 blocks
    drawn = cache_lengths("drawn", 4, 300, n_q=2, seed=3)
    masks = MASKS if layout == "contiguous" else PAGED_MASKS
    for lengths, queries, mask in [(drawn, 2, m) for m in masks] + [((300, 1, 7, 64), 1, m) for m in masks]:
        check(spec, q[:, :, :queries], k, v, lengths, layout, mask)


def check(spec, q, k, v, lengths: tuple[int, ...], layout: str, mask: str) -> None:
    """``spec`` on caches of ``lengths`` (contiguous, or paged:P) within 1e-5 of float64."""
    lens = torch.tensor(lengths)
    ref = reference_attention(q, k, v, mask=mask, kv_lens=lens)
    if layout == "contiguous":
        out = spec(q, k, v, mask=mask, kv_lens=lens)
    else:
        k_pool, v_pool, pages = page(k, v, int(layout.partition(":")[2]), seed=1, lengths=lengths)
        out = spec(q, k_pool, v_pool, mask=mask, kv_lens=lens, pages=pages)
    assert ((out.double() - ref).norm() / ref.norm()).item() < 1e-5, (lengths, mask)


def test_a_pool_of_unequal_caches_holds_only_their_pages_and_a_scratch_page():
    k = torch.arange(2 * 8.0).view(2, 1, 8, 1)
    k_pool, _, pages = page(k, k, page_size=2, seed=0, lengths=(3, 8))
    assert k_pool.shape[2] == (2 + 4 + 1) * 2  # sequence 0's two pages, sequence 1's four, one scratch page
    table = pages.block_table
    assert (table[0, 2:] == 6).all()  # the scratch page: what sequence 0 does not hold
    assert sorted(table[0, :2].tolist() + table[1].tolist()) == list(range(6))
    logical = pages.gather(k_pool)[:, 0, :, 0]
    assert logical[0, :3].tolist() == [0, 1, 2] and logical[1].tolist() == list(range(8, 16))


def test_a_variant_that_does_not_declare_them_says_so():
    q, k, v = torch.randn(2, 2, 1, 8), torch.randn(2, 2, 16, 8), torch.randn(2, 2, 16, 8)
    with pytest.raises(Unsupported, match="does not read KV caches of unequal lengths"):
        get_variant("chunked-query")(q, k, v, mask="causal-br", kv_lens=torch.tensor([16, 4]))
    with pytest.raises(Unsupported, match="no packed-document mask"):
        get_variant("naive")(q, k, v, mask="docs:2", kv_lens=torch.tensor([16, 4]))


def test_the_work_counts_each_sequence_at_its_length():
    equal = Case("naive", 1024, mode="decode", batch=2, threads=1)
    unequal = Case("naive", 1024, mode="decode", batch=2, threads=1, kv_lens="256+1024")
    assert case_flops(unequal) / case_flops(equal) == pytest.approx((256 + 1024) / 2048)
    q_and_out = 2 * 2 * 8 * 1 * 64 * 4  # bytes: q read, the output written
    assert (case_bytes(unequal) - q_and_out) / (case_bytes(equal) - q_and_out) == pytest.approx((256 + 1024) / 2048)


def test_a_sweep_of_unequal_caches_measures_each_against_float64(tmp_path):
    out = tmp_path / "run"
    done = run_attnbench("sweep", "--variants", "naive,gather,chunked-query", "--mode", "decode", "--kv-lens", "equal,drawn",
                         "--kv-layout", "contiguous,paged:16", "--batch", "4", "--seq-lens", "256", "--heads", "4",
                         "--kv-heads", "2", "--rounds", "1", "--max-time", "0.05", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    table = unequal_lengths_table(load_results(out))  # the report's: drawn against full, per layout
    assert sorted(table["config"].str.contains("paged:16")) == [False, True], table
    assert (table["work_left"] == table["work_left"].iloc[0]).all() and 0 < table["work_left"].iloc[0] < 1
    rows = pd.read_parquet(out / "results.parquet")
    rows = rows[rows["kv_lens"] == "drawn"].set_index(["variant", "kv_layout"])
    for key in [("naive", "contiguous"), ("gather", "paged:16")]:
        assert rows.loc[key, "status"] == "ok" and rows.loc[key, "rel_err"] < 1e-5, rows.loc[key, "reason"]
    assert rows.loc[("chunked-query", "contiguous"), "reason"] == "chunked-query does not read KV caches of unequal lengths"


@pytest.mark.parametrize(("flags", "message"), [
    (["--kv-lens", "drawn"], "--kv-lens drawn are a decode batch's cache lengths; this sweep's modes are fwd"),
    (["--mode", "decode", "--kv-lens", "0+64"], "every sequence holds at least one key"),
    (["--mode", "decode", "--kv-lens", "x"], "unknown KV lengths 'x'"),
    (["--mode", "decode", "--kv-lens", "5+64"], "2 lengths for a batch of 1"),
    (["--mode", "decode", "--batch", "2", "--kv-lens", "5+32"], "the longest N"),
    (["--mode", "decode", "--batch", "2", "--kv-lens", "drawn", "--mask", "docs:2"], "no packed-document mask"),
    (["--mode", "decode", "--batch", "2", "--kv-lens", "drawn", "--score-mod", "alibi"], "not alibi"),
])  # fmt: skip
def test_bad_lengths_are_one_line_and_exit_2(tmp_path, flags, message):
    bad = run_attnbench("sweep", "--variants", "naive", "--seq-lens", "64", *flags, "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and message in bad.stderr, bad.stderr
    assert not (tmp_path / "bad").exists()


def test_check_holds_a_declaration_of_unequal_lengths_to_float64():
    plugin = str(Path(__file__).resolve().parent / "plugins" / "lengths.py")
    honest = run_attnbench("check", "test-honors-lengths", "--plugin", plugin)
    assert honest.returncode == 0 and "pass  unequal KV lengths" in honest.stdout, honest.stdout + honest.stderr
    padded = run_attnbench("check", "test-ignores-lengths", "--plugin", plugin)
    assert padded.returncode != 0 and "FAIL  unequal KV lengths" in padded.stdout, padded.stdout + padded.stderr


@pytest.mark.slow
def test_flex_reads_unequal_lengths_contiguous_and_paged():
    """`attnbench check`'s unequal-lengths check on flex, in a process of its own: torch 2.13's CPU Inductor can
    fail to build a FlexAttention kernel after others were built in the same process (`variants.compiled`)."""
    code = "from harness.verify.dimensions import check_kv_lens; from variants import get_variant; " \
           "r = check_kv_lens(get_variant('flex')); print(r.passed, r.detail)"  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.stdout.startswith("True lengths 1+7+300"), done.stdout + done.stderr[-2000:]
