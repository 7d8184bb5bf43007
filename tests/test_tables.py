"""The analysis tables, on curves whose crossings and winners are known in closed form."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.analyze.tables import crossover_table, failure_table, fastest_table, fit_table, with_config
from harness.run.results import to_frame

GRID = [128, 256, 512, 1024, 2048, 4096]


def curves(times: dict[str, callable], *, exact: dict[str, bool], memory=lambda n: float(n)) -> pd.DataFrame:
    """A results table with one ok row per (variant, N): time times(N) exactly, three identical samples."""
    rows = []
    for variant, time in times.items():
        for n in GRID:
            t = time(n)
            rows.append({"run_id": "r", "case_id": f"{variant}-{n}", "variant": variant, "exact": exact[variant],
                         "declared_time": "O(N^2 d)", "declared_memory": "O(N)", "device": "cpu", "dtype": "float32",
                         "mode": "fwd", "causal": False, "batch": 1, "heads": 8, "seq_len": n, "head_dim": 64,
                         "threads": 1, "input_scale": 1.0, "seed": 0, "status": "ok", "time_median_s": t,
                         "time_samples_s": [t, t, t], "peak_mem_bytes": memory(n), "noisy": False})  # fmt: skip
    return to_frame(rows)


def quadratic(n):
    return 1e-9 * n * n


def linear(n):
    return 1e-9 * 700 * n  # equals the quadratic at N = 700 exactly


def near_quadratic(n):
    return 1.05 * quadratic(n)  # always within 10% of the quadratic: one kernel under two names


FRAME = curves(
    {"lin": linear, "quad": quadratic, "quad2": near_quadratic},
    exact={"lin": False, "quad": True, "quad2": True},
)


def test_crossovers_are_found_where_the_closed_form_puts_them():
    table = crossover_table(FRAME).set_index(["ahead_beyond", "behind_beyond"])
    time = table[table["metric"] == "time"]
    assert time.loc[("lin", "quad"), "crossover_n"] == pytest.approx(700)  # log-log interpolation is exact for power laws
    assert time.loc[("lin", "quad2"), "crossover_n"] == pytest.approx(700 / 1.05)  # 700 N = 1.05 N^2
    assert len(time) == 2  # quad and quad2 never cross; lin is ahead past N* in both pairs
    assert table[table["metric"] == "memory"].empty  # equal memory curves: nobody overtakes anybody
    assert set(table["n_range"]) == {"128..4096"}


def test_fastest_per_n_switches_at_the_crossover_and_keeps_the_fastest_exact_apart():
    table = fastest_table(FRAME).set_index("seq_len")
    assert list(table["fastest"]) == ["quad", "quad", "quad", "lin", "lin", "lin"]  # 512 < 700 < 1024
    assert set(table["fastest_exact"]) == {"quad"}  # lin is an approximation
    assert table.loc[4096, "time_s"] == pytest.approx(linear(4096))
    assert table.loc[4096, "exact_time_s"] == pytest.approx(quadratic(4096))


def test_fits_read_declared_classes_from_the_records_not_the_registry():
    frame = FRAME.assign(declared_time=FRAME["variant"].map({"lin": "O(N)", "quad": "O(N^2 d)", "quad2": "O(N^3)"}))
    fits = fit_table(frame).set_index("variant")
    assert fits.loc["lin", "time_alpha"] == pytest.approx(1.0) and fits.loc["lin", "time_agrees"]
    assert fits.loc["quad", "time_alpha"] == pytest.approx(2.0) and fits.loc["quad", "time_agrees"]
    assert not fits.loc["quad2", "time_agrees"]  # declared N^3, measured N^2
    unrecorded = fit_table(FRAME.assign(declared_time=None)).set_index("variant")  # a run from before the column
    assert unrecorded["time_agrees"].isna().all() and unrecorded["declared_time"].isna().all()


def test_config_label_names_only_what_varies_and_is_made_once():
    two = pd.concat([FRAME, FRAME.assign(heads=16, case_id=FRAME["case_id"] + "-h16")], ignore_index=True)
    labelled = with_config(two)
    assert set(labelled["config"]) == {"cpu float32 fwd · heads=8", "cpu float32 fwd · heads=16"}
    assert with_config(labelled) is labelled  # already labelled: not relabelled
    assert set(with_config(FRAME)["config"]) == {"cpu float32 fwd"}


def test_failure_table_lists_every_case_not_ok_with_its_reason():
    frame = FRAME.copy()
    frame.loc[0, ["status", "reason"]] = ["oom", "RuntimeError: out of memory"]
    failures = failure_table(frame)
    assert failures[["variant", "seq_len", "status", "reason"]].values.tolist() == [
        ["lin", 128, "oom", "RuntimeError: out of memory"]
    ]
