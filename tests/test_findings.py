"""The report's headline findings and its tables for people, on small tables written out by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from harness.analyze import findings
from harness.report.headline import class_table, crossover_lines, fastest_table
from harness.report.human import for_people, significant

# variant -> (exact, {N: median seconds}); "x" is an approximation with a rising error.
TIMES = {
    "a": (True, {128: 1.0, 256: 2.0, 512: 8.0, 1024: 32.0}),
    "b": (True, {128: 1.5, 256: 2.5, 512: 6.0, 1024: 16.0}),
    "x": (False, {128: 3.0, 256: 4.0, 512: 4.0, 1024: 8.0}),
}


def rows(times=TIMES, **fixed) -> pd.DataFrame:
    records = []
    for variant, (exact, curve) in times.items():
        for n, t in curve.items():
            records.append({
                "run_id": "r", "device": "cpu", "device_name": "cpu", "dtype": "float32", "mode": "fwd", "mask": "none",
                "batch": 1, "heads": 8, "heads_kv": 8, "q_len": n, "head_dim": 64, "variant": variant, "seq_len": n,
                "status": "ok", "exact": exact, "time_median_s": t, "rel_err": (1e-7 if exact else n / 1e4),
                "flops": None if variant == "x" else 1.0, **fixed,
            })  # fmt: skip
    return pd.DataFrame(records)


def test_fastest_ranges_follow_the_exact_winner_and_say_what_the_approximation_gains():
    ranges = findings.fastest_ranges(rows())
    assert ranges[["n_from", "n_to", "fastest", "runner_up"]].values.tolist() == [[128, 256, "a", "b"], [512, 1024, "b", "a"]]
    assert ranges.loc[0, "lead_min"] == pytest.approx(1.25) and ranges.loc[0, "lead_max"] == pytest.approx(1.5)
    assert ranges.loc[1, "lead_min"] == pytest.approx(8 / 6) and ranges.loc[1, "lead_max"] == pytest.approx(2.0)
    # x against the fastest exact: 1/3 and 2/4 over a's range, 6/4 and 16/8 over b's.
    assert ranges.loc[0, ["approx_speedup_min", "approx_speedup_max"]].tolist() == pytest.approx([1 / 3, 0.5])
    assert ranges.loc[1, ["approx_speedup_min", "approx_speedup_max"]].tolist() == pytest.approx([1.5, 2.0])
    shown = fastest_table(rows())
    assert shown.loc[0, "N"] == "128–256" and shown.loc[1, "fastest approximation: its speedup"] == "x: 1.5–2.0×"


def test_a_lead_inside_the_intervals_is_a_tie():
    # One kernel under two names: "c" reads 5 % slower than "a" at every N, with intervals of +-10 %.
    times = {**TIMES, "c": (True, {n: 1.05 * t for n, t in TIMES["a"][1].items()})}
    frame = rows(times)
    frame["time_ci_low_s"], frame["time_ci_high_s"] = frame["time_median_s"] * 0.9, frame["time_median_s"] * 1.1
    ranges = findings.fastest_ranges(frame)
    assert ranges.loc[0, "fastest"] == "a ≈ c" and ranges.loc[0, "runner_up"] == "b"
    assert ranges.loc[0, "lead_min"] == pytest.approx(1.25)  # over b, the next outside the tie
    assert ranges.loc[0, ["n_from", "n_to"]].tolist() == [128, 256]
    # Without intervals (a run from before rounds) a 5 % lead is a lead.
    assert findings.fastest_ranges(rows(times)).loc[0, "fastest"] == "a"


def test_contended_rows_never_win():
    frame = rows()
    frame.loc[(frame["variant"] == "b") & (frame["seq_len"] == 128), ["status", "time_median_s"]] = ["contended", 0.1]
    assert findings.fastest_ranges(frame).loc[0, "fastest"] == "a"


def test_crossovers_against_the_baseline_only_in_words():
    crossovers = pd.DataFrame(
        [["c1", "time", "b", "a", 400.0, 350.0, 460.0, "128..1024"], ["c2", "time", "b", "a", 380.0, 380.0, 380.0, "128..1024"],
         ["c1", "time", "x", "b", 300.0, 300.0, 300.0, "128..1024"],
         ["c1", "memory", "a", "x", 200.0, 200.0, 200.0, "128..1024"]],
        columns=["config", "metric", "ahead_beyond", "behind_beyond", "crossover_n", "crossover_n_low", "crossover_n_high",
                 "n_range"],
    )  # fmt: skip
    mine = findings.baseline_crossovers(crossovers, "a")
    assert mine[["config", "metric", "variant", "beyond"]].values.tolist() == [
        ["c1", "time", "b", "ahead"], ["c2", "time", "b", "ahead"], ["c1", "memory", "x", "behind"]]  # fmt: skip
    lines = crossover_lines(crossovers, "a")
    assert lines.values.tolist() == [
        ["b: faster than a", "380–400", "350–460", "all 2 configurations"],
        ["x: more memory than a", "200", "–", "c1"],
    ]


def test_class_verdicts_count_agreement_per_variant():
    fits = pd.DataFrame(
        [["c1", "a", 1.95, "O(N^2 d)", True, 1.0, "O(N)", True], ["c2", "a", 2.6, "O(N^2 d)", False, 1.1, "O(N)", True],
         ["c1", "x", 1.0, "O(N d^2)", None, 1.0, "O(N)", True]],
        columns=["config", "variant", "time_alpha", "declared_time", "time_agrees", "mem_beta", "declared_memory",
                 "mem_agrees"],
    )  # fmt: skip
    verdicts = findings.class_verdicts(fits).set_index("variant")
    assert verdicts.loc["a", ["time_alpha_min", "time_alpha_max", "time_agree", "time_judged"]].tolist() == [1.95, 2.6, 1, 2]
    assert verdicts.loc["x", ["time_agree", "time_judged", "mem_agree", "mem_judged"]].tolist() == [0, 0, 1, 1]
    shown = class_table(fits).set_index("variant")
    assert shown.loc["a", ["time ~ N^α, fitted", "time agrees", "memory agrees"]].tolist() == [
        "1.95 … 2.60",
        "✗ 1 of 2",
        "✓ 2 of 2",
    ]
    assert shown.loc["x", "time agrees"] == "–"


def test_approximation_errors_and_variants_without_a_work_model():
    errors = findings.approximation_errors(rows()).set_index("variant")
    assert list(errors.index) == ["x"]
    assert errors.loc["x", ["n_small", "err_small", "n_large", "err_large"]].tolist() == [128, 0.0128, 1024, 0.1024]
    assert findings.without_work_model(rows()) == ["x"]
    assert findings.without_work_model(rows().assign(flops=1.0)) == []
    assert findings.without_work_model(rows().assign(status="contended")) == []  # nothing ok: nothing to say


def test_tables_for_people_have_words_units_and_marks():
    raw = pd.DataFrame({"variant": ["a"], "time_median_s": [0.0012345], "time_agrees": [False], "mem_agrees": [None],
                        "iqr_over_median": [0.123], "crossover_n": [1234.5], "matmul_float32_gflops": [812.345]})  # fmt: skip
    shown = for_people(raw)
    assert list(shown.columns) == ["variant", "time (ms)", "time agrees", "memory agrees", "IQR / median", "crossover N",
                                   "matmul float32 (GFLOP/s)"]  # fmt: skip
    assert shown.iloc[0].tolist() == ["a", "1.23", "✗", "–", "12%", "1,234", "812"]
    assert [significant(v) for v in (0.5, 12.34, 0.0001234, 0.0, math.inf)] == ["0.500", "12.3", "1.23e-04", "0", "inf"]


def test_a_variant_declaring_other_classes_in_decode_gets_a_row_for_each():
    # The H200 run: sdpa's forward fit (1.99 against O(N^2 d)) and its decode fit (0.56 against O(N d)) shared one
    # row, "0.56 … 1.99, declared O(N d)".
    fits = pd.DataFrame(
        [["fwd", "sdpa", 1.99, "O(N^2 d)", True, 1.0, "O(N)", True],
         ["decode", "sdpa", 0.56, "O(N d)", False, 1.0, "O(N)", True]],
        columns=["config", "variant", "time_alpha", "declared_time", "time_agrees", "mem_beta", "declared_memory",
                 "mem_agrees"],
    )  # fmt: skip
    verdicts = findings.class_verdicts(fits).set_index("declared_time")
    assert len(verdicts) == 2 and set(verdicts["variant"]) == {"sdpa"}
    assert verdicts.loc["O(N^2 d)", ["time_alpha_min", "time_agree"]].tolist() == [1.99, 1]
    assert verdicts.loc["O(N d)", ["time_alpha_max", "time_agree", "time_judged"]].tolist() == [0.56, 0, 1]
