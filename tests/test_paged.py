"""Paged KV caches: a block table written out by hand, the pool round trip, the paged variants against float64,
and the sweep's edge."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from conftest import run_attnbench

from harness.measure.case import Case
from harness.measure.case_work import case_bytes
from harness.measure.reference import reference_attention
from harness.verify.dimensions import check_paged
from variants import get_variant, list_variants
from variants.paged import PageTable, page

PAGED = [n for n in list_variants() if "paged" in get_variant(n).layouts]
# A compiled variant compiles anew for each page size (a block mask's key tile is a page): its edge cases are
# opt-in (-m slow); the hand-written table runs by default.
PAGED_EAGER = [pytest.param(n, marks=pytest.mark.slow) if get_variant(n).family == "compiled" else n for n in PAGED]


def test_two_sequences_of_three_pages_read_through_a_block_table_by_hand():
    """P = 2: sequence 0's pages are physical 4, 0, 2 and sequence 1's 1, 5, 3 (a pool of six pages)."""
    table = PageTable(torch.tensor([[4, 0, 2], [1, 5, 3]]), page_size=2, n_kv=6)
    assert table.token_index(0, 6).tolist() == [[8, 9, 0, 1, 4, 5], [2, 3, 10, 11, 6, 7]]
    pool = torch.arange(12.0).view(1, 1, 12, 1)  # pool token t holds the number t
    assert table.gather(pool)[:, 0, :, 0].tolist() == [[8, 9, 0, 1, 4, 5], [2, 3, 10, 11, 6, 7]]
    assert table.gather(pool, 3, 5)[:, 0, :, 0].tolist() == [[1, 4], [11, 6]]  # keys 3, 4: a block across a page


@pytest.mark.parametrize("name", PAGED)
def test_each_paged_variant_reads_the_hand_written_table_within_1e_5_of_float64(name):
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 4, 1, 8), torch.randn(2, 2, 6, 8), torch.randn(2, 2, 6, 8)  # GQA: 4 query heads over 2
    table = PageTable(torch.tensor([[4, 0, 2], [1, 5, 3]]), page_size=2, n_kv=6)
    pools = [torch.zeros(1, 2, 12, 8) for _ in range(2)]
    for pool, x in zip(pools, (k, v)):
        pool[0][:, table.token_index(0, 6)] = x.transpose(0, 1)
    out = get_variant(name)(q, *pools, mask="causal-br", pages=table)
    ref = reference_attention(q, k, v, mask="causal-br")
    assert ((out.double() - ref).norm() / ref.norm()).item() < 1e-5


@pytest.mark.parametrize("name", PAGED_EAGER)
def test_pages_of_one_token_a_partly_filled_last_page_and_a_page_longer_than_the_sequence(name):
    result = check_paged(get_variant(name))
    assert result.passed, result.detail


def test_a_pool_holds_the_cache_in_a_seeded_shuffled_order():
    k, v = torch.randn(3, 2, 37, 4), torch.randn(3, 2, 37, 4)
    k_pool, v_pool, table = page(k, v, page_size=8, seed=1)
    assert k_pool.shape == (1, 2, 3 * 5 * 8, 4) and table.block_table.shape == (3, 5)  # 37 keys: 5 pages, last of 5
    assert sorted(table.block_table.flatten().tolist()) == list(range(15))
    assert table.block_table.flatten().tolist() != list(range(15))  # shuffled, as a busy server's pool is
    assert torch.equal(table.gather(k_pool), k) and torch.equal(table.gather(v_pool), v)
    assert torch.equal(page(k, v, page_size=8, seed=1)[2].block_table, table.block_table)


def test_the_block_table_counts_in_a_paged_cases_bytes():
    contiguous = Case("gather", 1024, mode="decode", batch=8, threads=1)
    paged = Case("gather", 1024, mode="decode", batch=8, threads=1, kv_layout="paged:16")
    assert case_bytes(paged) - case_bytes(contiguous) == 8 * 8 * (1024 // 16)  # an int64 per page per sequence
    with pytest.raises(ValueError, match="decode cache"):
        Case("gather", 1024, threads=1, kv_layout="paged:16")


@pytest.mark.parametrize(("flags", "message"), [
    (["--kv-layout", "paged:16"], "--kv-layout paged:16 is a decode cache; this sweep's modes are fwd"),
    (["--mode", "decode", "--kv-layout", "paged:0"], "paged:P takes a positive integer P"),
    (["--mode", "decode", "--kv-layout", "paged:x"], "paged:P takes a positive integer P"),
    (["--mode", "decode", "--kv-layout", "pages"], "unknown KV layout 'pages'"),
])  # fmt: skip
def test_bad_layouts_are_one_line_and_exit_2(tmp_path, flags, message):
    bad = run_attnbench("sweep", "--variants", "gather", "--seq-lens", "64", *flags, "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and message in bad.stderr, bad.stderr
    assert not (tmp_path / "bad").exists()


def test_a_paged_decode_sweep_reads_pages_and_records_the_layout(tmp_path):
    done = run_attnbench("sweep", "--variants", "gather,chunked-online,sdpa", "--mode", "decode", "--mask", "causal",
                         "--kv-layout", "contiguous,paged:16", "--seq-lens", "300", "--batch", "2", "--kv-heads", "2",
                         "--threads", "1", "--rounds", "1", "--max-time", "0.02", "--out", str(tmp_path / "run"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    frame = pd.read_parquet(tmp_path / "run" / "results.parquet").set_index(["variant", "kv_layout"])
    ran = frame[frame["status"] == "ok"]
    assert set(ran.index) == {("gather", "paged:16"), ("chunked-online", "paged:16"), ("chunked-online", "contiguous"),
                              ("sdpa", "contiguous")}  # fmt: skip
    assert (ran["rel_err"] < 1e-5).all()  # held to float64 on the contiguous cache, refilled pages followed
    assert frame.loc[("sdpa", "paged:16"), "status"] == "unsupported"


def test_a_gather_into_a_reused_buffer_is_the_gather():
    from variants.paged import page

    k = torch.randn(2, 3, 10, 4)
    pool, _, table = page(k, k.clone(), 4, seed=1)
    buffer = torch.full((2 * 3 * 8 * 4,), float("nan"))  # room for 8 keys a sequence; 5 are asked for
    for start, stop in ((3, 8), (4, 8), (0, 8)):  # a cut page (one index a token), whole pages (one a page)
        got = table.gather(pool, start, stop, out=buffer)
        assert torch.equal(got, table.gather(pool, start, stop)) and torch.equal(got, k[:, :, start:stop])
        assert got.data_ptr() == buffer.data_ptr()  # written where it was asked, not into a fresh tensor
