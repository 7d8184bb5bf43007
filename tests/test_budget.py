"""The memory budget's prediction and skip reasons, and the growth stops that skip larger N after a failure."""

from __future__ import annotations

from harness.measure.case import Case
from harness.run.budget import over_budget, predicted_peak_bytes, reference_bytes
from harness.run.runner import GrowthStops

MiB = 2**20


def test_quadratic_memory_class_predicts_two_n_by_n_matrices_plus_inputs():
    case = Case("naive", 4096, heads=8, head_dim=64, threads=1)  # declared memory O(N^2)
    inputs = 4 * 8 * 4096 * 64 * 4  # q, k, v and the output, fp32: 32 MiB
    assert predicted_peak_bytes(case) == inputs + 2 * 8 * 4096 * 4096 * 4  # + 1 GiB of scores and probabilities


def test_linear_memory_class_predicts_tensors_as_wide_as_the_largest_parameter():
    case = Case("chunked-online", 2**20, heads=8, head_dim=64, threads=1)  # O(N), block=128 > D
    working = 4 * 8 * 2**20 * 128 * 4  # 4 GiB of (B, H, N, 128) tiles, above the reference's 3 GiB
    assert predicted_peak_bytes(case) == 4 * 8 * 2**20 * 64 * 4 + working


def test_the_float64_reference_counts_where_it_is_larger():
    # At N=1024, H=8: float64 q, k, v (12 MiB) and 1024 rows of float64 scores three times (192 MiB) on the
    # case's device, against naive's 64 MiB of fp32 scores and probabilities.
    case = Case("naive", 1024, heads=8, head_dim=64, threads=1)
    assert reference_bytes(case) == 8 * 3 * 8 * 1024 * 64 + 3 * 8 * 8 * 1024 * 1024
    assert predicted_peak_bytes(case) == 4 * 8 * 1024 * 64 * 4 + reference_bytes(case)
    # Past 256 MiB of scores a chunk holds fewer rows: at N=65536, 64 rows of 8 heads.
    long = Case("chunked-online", 65536, heads=8, head_dim=64, threads=1)
    assert reference_bytes(long) == 8 * 3 * 8 * 65536 * 64 + 3 * 8 * 8 * 64 * 65536


def test_forward_backward_doubles_the_prediction():
    fwd = Case("naive", 4096, threads=1)
    assert predicted_peak_bytes(Case("naive", 4096, mode="fwd_bwd", threads=1)) == 2 * predicted_peak_bytes(fwd)


def test_over_budget_names_the_class_and_the_budget():
    case = Case("naive", 4096, threads=1)  # 1 GiB of scores and probabilities, 32 MiB of q, k, v, output
    assert over_budget(case, 2**31) is None
    assert over_budget(case, 256 * MiB) == (
        "predicted peak 1.0 GiB (memory class O(N^2)) exceeds the budget of 0.2 GiB (80% of available cpu memory)"
    )


def test_growth_stops_skip_larger_n_of_the_failed_configuration_only():
    cases = [Case("naive", n, threads=1) for n in (256, 512, 1024)] + [Case("naive", 1024, mask="causal", threads=1)]
    stops = GrowthStops(cases, recorded=[{"case_id": cases[1].case_id, "seq_len": 512, "status": "oom"}])
    assert stops.reason(cases[2]) == "not run: the same configuration was oom at N=512"
    assert stops.reason(cases[0]) is None  # smaller N still run (a resume may lack one)
    assert stops.reason(cases[3]) is None  # causal is another configuration
    stops.note(cases[3], "ok")
    assert stops.reason(cases[3]) is None  # only failures stop growth


def test_decode_prediction_counts_the_cache_once_and_the_single_query_row():
    case = Case("chunked-online", 65536, batch=8, heads=32, heads_kv=8, head_dim=128, mode="decode", threads=1)
    cache = 2 * 8 * 8 * 65536 * 128 * 4  # K and V: 4 GiB
    query_side = 2 * 8 * 32 * 1 * 128 * 4  # q and the output
    # The float64 reference copies the cache (8 GiB), above the variant's tiles of one row per head.
    reference = 8 * (8 * 32 * 1 * 128 + 2 * 8 * 8 * 65536 * 128) + 3 * 8 * 8 * 32 * 1 * 65536
    assert predicted_peak_bytes(case) == cache + query_side + reference


def test_a_peak_measured_at_a_smaller_n_grows_by_the_class_and_can_skip():
    # The H200 reference run: SDPA's math backend in bf16 (B=1, H=16, D=64) peaked at 36.25 GiB at N=16384
    # (it upcasts the scores to fp32: 4.5 bf16 matrices, where the class counts 2), then ran out of
    # memory at 32768, which the class alone put at 64 GiB against a budget of 111.4 GiB.
    case = Case("sdpa-math", 32768, device="cuda", dtype="bfloat16", heads=16, threads=1)
    budget, measured = int(111.4 * 2**30), (16384, 36.25 * 2**30)
    assert over_budget(case, budget) is None
    assert predicted_peak_bytes(case, measured) == 4 * 36.25 * 2**30  # O(N^2): twice N, four times the bytes
    reason = over_budget(case, budget, measured)
    assert reason.startswith("predicted peak 145.0 GiB (memory class O(N^2), grown from 36.2 GiB measured at N=16384)")
    # A peak under what the class predicts changes nothing, and says nothing.
    assert predicted_peak_bytes(case, (16384, 2**30)) == predicted_peak_bytes(case)


def test_a_worker_slot_skips_what_its_own_measurements_say_cannot_fit(tmp_path):
    from pathlib import Path

    from harness.run.executor import WorkerSlot
    from variants import list_variants, unregister
    from variants.plugins import load_plugins

    plugin = str(Path(__file__).resolve().parent / "plugins" / "misbehaving.py")
    before = set(list_variants())
    load_plugins([plugin])  # here too: the slot predicts from the spec before its worker runs the case
    small, large = (Case("test-hoarder", n, heads=8, threads=1) for n in (2048, 32768))
    # Its O(N) class predicts 424 MiB at 2048 and 1408 MiB at 32768: both fit. (The budget is also the worker's
    # address-space allowance, of which the case at 2048 maps ~830 MiB: 2000 leaves room.)
    budget = 2000 * MiB
    slot = WorkerSlot([plugin], tmp_path / "worker.log", {"cpu": budget})
    try:
        assert over_budget(small, budget) is None and over_budget(large, budget) is None
        first = slot.measure(small, 0.05, 120)
        assert first["status"] == "ok" and first["peak_mem_bytes"] >= 2 * 8 * 2048**2 * 4  # it holds N x N scores
        second = slot.measure(large, 0.05, 120)
    finally:
        slot.close()
        for name in set(list_variants()) - before:
            unregister(name)
    assert second["status"] == "skipped"
    assert "grown from 0.3 GiB measured at N=2048" in second["reason"], second["reason"]


def test_an_oom_or_a_kill_in_a_worker_that_ran_earlier_cases_is_taken_again_in_a_fresh_one(tmp_path):
    from pathlib import Path

    from harness.run.executor import WorkerSlot
    from variants import list_variants, unregister
    from variants.plugins import load_plugins

    plugin = str(Path(__file__).resolve().parent / "plugins" / "heap.py")
    before = set(list_variants())
    load_plugins([plugin])
    slot = WorkerSlot([plugin], tmp_path / "worker.log", {"cpu": 8 * 2**30})
    try:
        measured = {(name, n): slot.measure(Case(name, n, heads=2, threads=1), 0.05, 120)
                    for name in ("test-heap-history", "test-killed-history", "test-out-of-memory")
                    for n in (64, 128)}  # fmt: skip
    finally:
        slot.close()
        for name in set(list_variants()) - before:
            unregister(name)
    status = {key: record["status"] for key, record in measured.items()}
    assert status[("test-heap-history", 64)] == status[("test-heap-history", 128)] == "ok", measured  # the second: fresh
    assert status[("test-killed-history", 64)] == status[("test-killed-history", 128)] == "ok", measured
    assert status[("test-out-of-memory", 64)] == "ok" and status[("test-out-of-memory", 128)] == "oom"


def test_a_resumed_sweep_knows_the_peaks_its_folder_recorded():
    from harness.measure.case import configuration
    from harness.run.budget import measured_peaks

    cases = [Case("naive", n, threads=1) for n in (64, 128, 256)] + [Case("sdpa", 64, threads=1)]
    recorded = [
        {"case_id": cases[1].case_id, "peak_mem_bytes": 2 * MiB},
        {"case_id": cases[0].case_id, "peak_mem_bytes": 1 * MiB},  # a smaller N, read after: not the one kept
        {"case_id": cases[3].case_id, "peak_mem_bytes": None},  # an error row: no peak
        {"case_id": "not-in-this-sweep", "peak_mem_bytes": 9 * MiB},
    ]
    assert measured_peaks(cases, recorded) == {configuration(cases[0]): (128, 2 * MiB)}
