"""A compiled variant in a non-default compile mode is a curve of its own wherever results are read
(`harness.run.compile_modes`), while the files keep its registered name."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from harness.analyze.compare import compare_runs
from harness.analyze.compile_modes import compile_mode_table
from harness.analyze.tables import compile_table, crossover_table, fastest_table, fit_table
from harness.measure.case import Case
from harness.measure.measure_case import record_for
from harness.report.console import print_results
from harness.report.headline import findings_sections
from harness.run.compile_modes import by_compile_mode, curve_name, registered_name
from harness.run.results import CASES_FILE, PARQUET_FILE, consolidate, load_results, load_run

TUNED = "max-autotune-no-cudagraphs"
GRID = [1024, 2048, 4096]
# Seconds per N²: the tuned flex fastest, then flex in the default mode, then sdpa.
SPEED = {("flex", "default"): 0.9e-9, ("flex", TUNED): 0.6e-9, ("sdpa", "default"): 1.0e-9}


def _record(variant: str, mode: str, n: int, time: float) -> dict:
    case = Case(variant, n, threads=1, compile_mode=mode)
    record = record_for(case).to_dict()
    samples = list(time * (1 + 0.01 * np.linspace(-1, 1, 21)))
    compile_s = 5.0 if mode == TUNED else (0.5 if variant == "flex" else None)
    record.update(run_id="r", time_median_s=time, time_samples_s=samples, time_iqr_s=0.01 * time, noisy=False,
                  peak_mem_bytes=1000.0 * n, compile_s=compile_s)  # fmt: skip
    return record


def write_run(path, slower: float = 1.0):
    """A run folder as a sweep leaves it: its cases.jsonl, consolidated. ``slower``: the tuned flex's factor."""
    path.mkdir()
    records = [_record(v, m, n, k * n * n * (slower if m == TUNED else 1.0)) for (v, m), k in SPEED.items() for n in GRID]
    (path / CASES_FILE).write_text("".join(json.dumps(r) + "\n" for r in records))
    consolidate(path)
    return path


@pytest.fixture
def run(tmp_path):
    return write_run(tmp_path / "run")


def test_the_files_keep_the_registered_name_and_the_table_read_names_the_mode(run):
    stored = pd.read_parquet(run / PARQUET_FILE)
    assert set(stored["variant"]) == {"flex", "sdpa"}  # the file as written: flex, with its mode beside it
    assert set(stored.loc[stored["variant"] == "flex", "compile_mode"]) == {"default", TUNED}
    for frame in (load_results(run), load_run(run)[0]):
        assert set(frame["variant"]) == {"flex", "flex (max-autotune)", "sdpa"}
        assert set(frame.loc[frame["variant"] == "flex (max-autotune)", "compile_mode"]) == {TUNED}
        assert frame["case_id"].tolist() == stored["case_id"].tolist()  # ids untouched
    assert set(pd.read_parquet(run / PARQUET_FILE)["variant"]) == {"flex", "sdpa"}  # reading wrote nothing back
    again = by_compile_mode(load_results(run))
    assert set(again["variant"]) == {"flex", "flex (max-autotune)", "sdpa"}  # read twice, named once


def test_names_of_curves():
    assert curve_name("flex", "default") == "flex"
    assert curve_name("flex", TUNED) == "flex (max-autotune)"
    assert curve_name("naive-compiled", "static") == "naive-compiled (static)"
    assert registered_name("flex (max-autotune)", TUNED) == "flex"
    assert registered_name("flex", "default") == "flex"


def test_fits_fastest_and_crossovers_see_two_flex_curves(run):
    frame = load_results(run)
    fits = fit_table(frame).set_index("variant")
    assert sorted(fits.index) == ["flex", "flex (max-autotune)", "sdpa"]  # one fit per curve, not one for both flex
    assert fits["time_alpha"].to_numpy() == pytest.approx([2, 2, 2], abs=0.01)
    fastest = fastest_table(frame)
    assert set(fastest["fastest"]) == {"flex (max-autotune)"} and len(fastest) == len(GRID)  # one row per N
    assert fastest["time_s"].tolist() == pytest.approx([0.6e-9 * n * n for n in GRID])
    assert crossover_table(frame).empty  # parallel curves: nobody overtakes anybody
    compiled = compile_table(frame).set_index("variant")
    assert compiled.loc["flex (max-autotune)", "compile_s_total"] == pytest.approx(5.0 * len(GRID))
    assert compiled.loc["flex", "compile_s_total"] == pytest.approx(0.5 * len(GRID))


def test_the_mode_table_and_its_finding(run):
    frame = load_results(run)
    table = compile_mode_table(frame)
    assert table["variant"].tolist() == ["flex (max-autotune)"]
    row = table.iloc[0]
    assert (row["n_from"], row["n_to"], row["compared_cases"]) == (1024, 4096, 3)
    assert row["default_over_this_min"] == pytest.approx(1.5) and row["default_over_this_max"] == pytest.approx(1.5)
    assert row["compile_s_min"] == row["compile_s_max"] == 5.0
    findings = findings_sections(frame, fit_table(frame), crossover_table(frame), "sdpa")
    modes = next(f for f in findings if f["title"] == "Compile modes")
    assert "flex (max-autotune): compiled per shape with Inductor's autotuning" in modes["note"]
    assert "compile_s is kept apart from its time" in modes["note"]
    assert modes["table"]["default's time over its own"].tolist() == ["1.5×"]


def test_no_mode_finding_without_a_tuned_curve(run):
    frame = load_results(run)
    plain = frame[frame["compile_mode"] == "default"]
    titles = [f["title"] for f in findings_sections(plain, fit_table(plain), crossover_table(plain), "sdpa")]
    assert "Compile modes" not in titles


def test_compare_meets_a_tuned_curve_with_the_same_curve_of_the_other_run(tmp_path):
    base, new = write_run(tmp_path / "base"), write_run(tmp_path / "new", slower=1.3)
    table = compare_runs(load_results(base), load_results(new)).set_index(["variant", "seq_len"])
    assert len(table) == len(SPEED) * len(GRID) and not table["verdict"].str.startswith("only").any()
    assert (table.loc["flex (max-autotune)", "verdict"] == "regression").all()
    assert table.loc["flex (max-autotune)", "ratio"].to_numpy() == pytest.approx([1.3] * 3, rel=1e-3)
    assert (table.loc["flex", "verdict"] == "unchanged").all()  # the default flex met the default flex
    stored = compare_runs(pd.read_parquet(base / PARQUET_FILE), load_results(new))  # a file read as it is, too
    assert set(stored["variant"]) == set(table.index.get_level_values("variant"))


def test_show_prints_the_tuned_curve_as_a_row_of_its_own(run):
    out = io.StringIO()
    print_results(pd.read_parquet(run / PARQUET_FILE), Console(file=out, width=250, color_system=None))
    rows = [line.split("│")[1].strip() for line in out.getvalue().splitlines() if line.count("│") > 2]
    assert sorted(r for r in rows if r.startswith(("flex", "sdpa"))) == ["flex", "flex (max-autotune)", "sdpa"]


def test_only_the_variants_compiled_here_follow_the_mode():
    from harness.run.sweep import build_sweep, expand

    cases = expand(build_sweep(variants=["flex", "hf-flex", "sdpa"], seq_lens=[128], compile_mode="static"))
    assert {c.variant: c.compile_mode for c in cases} == {"flex": "static", "hf-flex": "default", "sdpa": "default"}
