"""Rounds: the row's time and interval across rounds, read at one machine speed (harness.measure.rounds)."""

from __future__ import annotations

import math

import pytest

from harness.measure.rounds import (
    PRIOR_DOF,
    SLOW_LIMIT,
    Machine,
    add_round,
    machine_of,
    summarize_rounds,
    t975,
    wants_round,
)


def one_round(median: float, canary: float | None, *, status: str = "ok", n: int = 6) -> dict:
    """A worker's one-round record: n samples spread +-1 % around ``median``."""
    samples = [median * (1 + 0.01 * (i - (n - 1) / 2) / n) for i in range(n)]
    return {"status": status, "reason": "", "device": "cpu", "threads": 2, "time_median_s": median,
            "time_samples_s": samples, "round_medians_s": [median], "round_canary_s": [canary],
            "round_contended": [status == "contended"], "round_disturbed": [status == "contended"],
            "round_samples": [n], "flops": 1e9, "bytes_moved": 1e6, "warnings": []}  # fmt: skip


def rounds(medians, canaries, machine: Machine | None = None) -> dict:
    machine = machine or Machine()
    record = one_round(medians[0], canaries[0])
    for m, c in zip(medians[1:], canaries[1:]):
        record = add_round(record, one_round(m, c), machine)
    return summarize_rounds(record, machine)


def test_t_quantiles_match_the_table_and_approach_the_normal():
    assert t975(1) == pytest.approx(12.706)
    assert t975(2) == pytest.approx(4.303)
    assert t975(2.5) == pytest.approx((4.303 + 3.182) / 2)
    assert t975(1000) == pytest.approx(1.96, abs=0.01)


def test_the_time_is_the_geometric_mean_of_the_rounds_with_a_student_t_interval():
    record = rounds([1.0e-3, 2.0e-3, 4.0e-3], [None, None, None])
    assert record["time_median_s"] == pytest.approx(2.0e-3)
    logs = [math.log(x) for x in (1e-3, 2e-3, 4e-3)]
    sd = math.sqrt(sum((x - math.log(2e-3)) ** 2 for x in logs) / 2)
    half = t975(2) * sd * math.sqrt(2 / 3)  # the rounds' standard error, doubled in variance by a run's own
    assert record["time_ci_low_s"] == pytest.approx(2e-3 * math.exp(-half))
    assert record["time_ci_high_s"] == pytest.approx(2e-3 * math.exp(half))
    assert record["rounds"] == 3 and record["round_samples"] == [6, 6, 6] and len(record["time_samples_s"]) == 18
    assert record["gflops_per_s"] == pytest.approx(1e9 / 2e-3 / 1e9)


def test_each_round_is_read_at_the_reference_speed_of_the_run():
    # The machine ran at half speed in round 2 (canary 2 x): the kernel's 2 ms there is 1 ms at full speed.
    record = rounds([1.0e-3, 2.0e-3, 1.0e-3], [100e-6, 200e-6, 100e-6])
    machine = machine_of([record])
    assert machine.reference(record) == pytest.approx(100e-6)  # the 10th percentile of the canaries
    summarize_rounds(record, machine)
    assert record["round_disturbed"] == [False, True, False]  # 2 x the reference is past SLOW_LIMIT
    assert record["time_median_s"] == pytest.approx(1.0e-3)
    assert record["time_unadjusted_s"] == pytest.approx(1.0e-3)  # the disturbed round is left out of both

    mild = rounds([1.0e-3, 1.2e-3, 1.0e-3], [100e-6, 120e-6, 100e-6])  # 20 % slower: adjusted, not dropped
    summarize_rounds(mild, machine_of([mild]))
    assert mild["round_disturbed"] == [False, False, False]
    assert mild["time_median_s"] == pytest.approx(1.0e-3)
    assert mild["time_ci_high_s"] == pytest.approx(1.0e-3)  # read at one speed, the three rounds agree exactly
    assert mild["time_unadjusted_s"] == pytest.approx((1.0e-3 * 1.2e-3 * 1.0e-3) ** (1 / 3))
    assert 1.2 < SLOW_LIMIT


def test_a_preempted_canary_is_not_a_speed_and_a_row_disturbed_in_every_round_is_contended():
    # Measured beside a CPU hog: the case's timer dropped its preempted blocks and read the kernel right (2.3 ms),
    # while the canary's 0.18 ms matmul read a 16 ms scheduler slice. Scaled by it, the row read 0.03 ms.
    machine = Machine(canary_ref_s={("cpu", 2): 0.18e-3})
    record = one_round(2.3e-3, 16e-3)
    for _ in range(2):
        record = add_round(record, one_round(2.3e-3, 16e-3), machine)
    assert record["round_disturbed"] == [True, True, True]
    assert record["time_median_s"] == pytest.approx(2.3e-3)  # as measured, not x 0.18/16
    assert record["status"] == "contended" and "every round disturbed" in record["reason"]
    # one calm round among them: that round alone, adjusted, and the row is ok
    calm = add_round(record, one_round(2.0e-3, 0.2e-3), machine)
    assert calm["status"] == "ok" and calm["reason"] == "" and calm["rounds"] == 1
    assert calm["time_median_s"] == pytest.approx(2.0e-3 * 0.18 / 0.2)


def test_the_machine_variance_moderates_a_rows_own():
    quiet = rounds([1.0e-3, 1.0e-3, 1.0e-3], [None] * 3)
    noisy = rounds([1.0e-3, 1.5e-3, 0.7e-3], [None] * 3)
    machine = machine_of([quiet, noisy])
    assert machine.dof == 4 and machine.log_var > 0
    summarize_rounds(quiet, machine)
    # Three identical rounds do not make a zero-width interval: the machine's variance is a prior.
    assert quiet["time_ci_low_s"] < 1.0e-3 < quiet["time_ci_high_s"]
    assert quiet["time_log_dof"] == 2 + min(PRIOR_DOF, machine.dof)
    expected_sd = math.sqrt(min(PRIOR_DOF, machine.dof) * machine.log_var / quiet["time_log_dof"])
    assert quiet["time_log_se"] == pytest.approx(expected_sd * math.sqrt(2 / 3))


def test_a_failed_round_fails_the_case_and_a_calm_one_rescues_a_contended_case():
    record = add_round(one_round(1e-3, 1e-4), {"status": "error", "reason": "non-finite output"}, Machine())
    assert record["status"] == "error" and record["reason"] == "round 2: non-finite output"
    assert not wants_round(record, 3, Machine())

    contended = one_round(1e-3, 1e-4, status="contended")
    contended["status"] = "contended"
    record = add_round(contended, one_round(1.1e-3, 1e-4), Machine())
    assert record["status"] == "ok" and record["round_disturbed"] == [True, False]
    assert record["rounds"] == 1 and record["time_median_s"] == pytest.approx(1.1e-3)  # the calm round alone


def test_rounds_are_wanted_until_enough_calm_ones_and_more_only_where_they_disagree():
    machine = Machine(log_var=0.01**2, dof=30)  # rounds on this machine spread by 1 %
    assert wants_round(rounds([1e-3], [None]), 3, machine)  # one of three
    assert not wants_round(rounds([1e-3, 1.01e-3, 0.99e-3], [None] * 3), 3, machine)
    disagreeing = rounds([1e-3, 2e-3, 0.5e-3], [None] * 3)
    assert wants_round(disagreeing, 3, machine)  # far noisier than the machine: more rounds ...
    assert not wants_round(rounds([1e-3, 2e-3, 0.5e-3, 1e-3, 2e-3], [None] * 5), 3, machine)  # ... up to two more
    assert not wants_round(disagreeing, 3, Machine(log_var=0.7**2, dof=30))  # as noisy as the machine: no more
    assert not wants_round({"status": "error", "round_medians_s": [1e-3]}, 3, machine)


def test_an_error_beyond_what_a_kind_of_variant_allows_is_named():
    import torch

    from harness.measure.contract import aliases_input, too_wrong

    assert too_wrong(9e-7, torch.float32, True, None) is None
    assert "beyond 1e-04 (an exact variant in float32)" in too_wrong(2e-4, torch.float32, True, None)
    assert too_wrong(1.1e-2, torch.bfloat16, True, None) is None
    assert "declared tolerance" in too_wrong(0.2, torch.float32, False, 0.1)
    assert too_wrong(7.6, torch.float32, False, None) is None  # an approximation that declares nothing
    q = torch.zeros(1, 1, 4, 2)
    assert aliases_input(q[..., :1], (torch.zeros(1), q, torch.zeros(1))) == "returned (a view of) its input k"
    assert aliases_input(q.clone(), (q, q, q)) is None


def test_a_row_faster_than_its_machine_can_be_is_an_error_left_out_of_the_findings(tmp_path):
    import json

    from harness.analyze.findings import fastest_ranges
    from harness.run.results import consolidate

    ceilings = {"cpu": {"matmul_gflops": {"float32": 70.0}}}
    (tmp_path / "env.json").write_text(json.dumps({"ceilings": ceilings}))
    rows = []
    for variant, seconds in (("honest", 1e-3), ("cheat", 1e-6)):  # 1 GFLOP: 1000 and 1e6 GFLOP/s
        row = one_round(seconds, None)
        row.update(run_id="r", case_id=variant, variant=variant, exact=True, dtype="float32", mode="fwd", seq_len=128,
                   flops=1e9 if variant == "cheat" else 1e7, gflops_per_s=None)  # fmt: skip
        rows.append(row)
    (tmp_path / "cases.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    frame = consolidate(tmp_path).set_index("variant")
    assert frame.loc["honest", "status"] == "ok"  # 10 GFLOP/s
    assert frame.loc["cheat", "status"] == "error"
    assert frame.loc["cheat", "reason"].startswith("impossible: 1000000 GFLOP/s is 14286x the 70 GFLOP/s")
    assert "cheat" not in set(fastest_ranges(frame.reset_index())["fastest"])


def test_a_round_timed_by_another_clock_is_left_out():
    # A call near the launch-bound line: replayed as a CUDA graph in round 1, timed with events in round 2.
    first = {**one_round(1e-4, None), "device": "cuda", "timer": "cuda_graph"}
    second = {**one_round(3e-4, None), "device": "cuda", "timer": "cuda_event"}
    record = add_round(first, second, Machine())
    assert record["round_medians_s"] == [1e-4] and record["time_median_s"] == 1e-4
    assert record["warnings"] == ["a round timed by cuda_event (the row's: cuda_graph) was left out"]
    assert add_round(record, {**second}, Machine())["warnings"] == record["warnings"]  # said once
    same = add_round({**first}, {**one_round(1.01e-4, None), "device": "cuda", "timer": "cuda_graph"}, Machine())
    assert len(same["round_medians_s"]) == 2  # the same clock: folded in
