"""Launch-bound rows (`harness.analyze.launch`): kept and drawn hollow, but never a fit point, a crossing or a winner.

Each table here holds a launch-bound row that, read as a kernel's time, would win, bend a fit or add a crossing;
each test checks the same table without the warning does so, so that it fails if the row is let back in.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from harness.analyze.findings import fastest_ranges
from harness.analyze.launch import launch_bound
from harness.analyze.paging import paging_cost_table
from harness.analyze.tables import crossover_table, fastest_table, fit_table, with_config
from harness.report.build import build_report
from harness.report.console import print_results
from harness.report.figures import _curves, palette
from harness.report.launch_marks import HOLLOW_LEGEND, flagged
from harness.run.results import load_run, to_frame

GRID = [128, 256, 512, 1024, 2048, 4096]
BOUND = "launch-bound: 9 us on the device per call against 30 us for the host to queue it; the events measured the launches"


def rows(times: dict, bound: set = frozenset(), **fixed) -> pd.DataFrame:
    """A results table: one ok row per (variant, N) of ``times`` {variant: (exact, {N: seconds})}, the (variant, N)
    in ``bound`` carrying the timer's launch-bound warning."""
    records = []
    for variant, (exact, curve) in times.items():
        for n, t in curve.items():
            records.append({"run_id": "r", "case_id": f"{variant}-{n}", "variant": variant, "family": "test",
                            "exact": exact, "declared_time": "O(N^2 d)", "declared_memory": "O(N)", "device": "cuda",
                            "dtype": "bfloat16", "mode": "fwd", "batch": 1, "heads": 8, "seq_len": n, "head_dim": 64,
                            "status": "ok", "time_median_s": t, "time_samples_s": [t, t, t], "peak_mem_bytes": n,
                            "noisy": False, "timer": "cuda_event", "rel_err": 1e-3, "flops": 4.0 * 8 * n * n * 64,
                            "gflops_per_s": 4.0 * 8 * n * n * 64 / t / 1e9,
                            "warnings": [BOUND] if (variant, n) in bound else [], **fixed})  # fmt: skip
    return to_frame(records)


def quadratic(n):
    return 1e-9 * n * n


def test_the_predicate_reads_lists_arrays_joined_strings_and_spares_graph_replays():
    frame = pd.DataFrame({
        "warnings": [[BOUND], np.array(["noisy", BOUND]), f"recompiled; {BOUND}", BOUND, "noisy; not launch-bound: x",
                     [], None, float("nan"), [BOUND]],
        "timer": ["cuda_event"] * 8 + ["cuda_graph"],
    })  # fmt: skip
    assert launch_bound(frame).tolist() == [True, True, True, True, False, False, False, False, False]
    assert not launch_bound(frame.drop(columns=["timer"])).iloc[-2]
    assert not launch_bound(pd.DataFrame({"variant": ["a"]})).any()  # a run from before the warning


def test_a_call_that_copies_from_pageable_memory_is_host_synchronizing_not_launch_bound():
    # Its graph capture failed on the copy (torch's words): the host waited for the device on every call, so its
    # queueing time held the device's and the launch-bound test read nothing (the H200 run's decode and masked sdpa).
    copy = ("no CUDA graph (RuntimeError: Cannot copy between CPU and CUDA tensors during CUDA graph capture unless "
            "the CPU tensor is pinned.); timed with events, launch gaps included")  # fmt: skip
    frame = pd.DataFrame({"warnings": [[BOUND, copy], f"{BOUND}; {copy}", [BOUND, "no CUDA graph (other)"]],
                          "timer": ["cuda_event"] * 3})  # fmt: skip
    assert launch_bound(frame).tolist() == [False, False, True]


def test_a_launch_bound_row_never_wins():
    # b at 128 reads 10x faster than a: its launches, not its kernel.
    times = {"a": (True, {128: 1.0, 256: 2.0}), "b": (True, {128: 0.1, 256: 3.0}), "x": (False, {128: 0.05, 256: 9.0})}
    clean, bound = rows(times), rows(times, {("b", 128), ("x", 128)})
    assert fastest_ranges(clean).loc[0, "fastest"] == "b"  # the same numbers without the warning: b wins
    ranges = fastest_ranges(bound)
    assert ranges[["n_from", "n_to", "fastest"]].values.tolist() == [[128, 256, "a"]]
    assert ranges.loc[0, "approx_speedup_max"] == pytest.approx(2 / 9)  # x at 128 (a 20x "speedup") is out too
    per_n = fastest_table(bound).set_index("seq_len")
    assert per_n.loc[128, "fastest"] == "a" and fastest_table(clean).set_index("seq_len").loc[128, "fastest"] == "x"
    assert launch_bound(bound).sum() == 2 and len(bound) == 6  # kept in the table itself, with the warning


def test_a_launch_bound_point_does_not_bend_the_fit():
    times = {"q": (True, {n: quadratic(n) for n in GRID})}
    times["q"][1][2048] = quadratic(2048) / 6  # the host queued it faster than the kernel ran
    clean_alpha = fit_table(rows(times)).loc[0, "time_alpha"]
    assert abs(clean_alpha - 2.0) > 0.2  # the point bends the fit when read as the kernel's
    fit = fit_table(rows(times, {("q", 2048)})).iloc[0]
    assert fit["time_alpha"] == pytest.approx(2.0, abs=0.01)
    assert fit["mem_beta"] == pytest.approx(1.0, abs=0.01)  # memory, measured apart, keeps every point


def test_a_launch_bound_point_adds_no_crossover():
    linear = {n: 1e-9 * 700 * n for n in GRID}  # crosses the quadratic at N = 700
    times = {"lin": (False, linear), "quad": (True, {n: quadratic(n) for n in GRID})}
    times["quad"][1][4096] = linear[4096] / 2  # launch-bound: would put quad ahead again at the end

    def ahead(frame):
        return crossover_table(frame).query("metric == 'time'")[["ahead_beyond", "crossover_n"]].values.tolist()

    assert ahead(rows(times))[0][0] == "quad"
    [(who, n_star)] = ahead(rows(times, {("quad", 4096)}))
    assert who == "lin" and n_star == pytest.approx(700)


def test_a_launch_bound_decode_is_not_the_best_paged_or_contiguous():
    decode = {"mode": "decode", "q_len": 1}
    contiguous = rows({"c1": (True, {4096: 2e-5}), "c2": (True, {4096: 5e-6})}, {("c2", 4096)}, **decode)
    paged = rows({"p": (True, {4096: 3e-5})}, kv_layout="paged:16", **decode)
    table = paging_cost_table(pd.concat([contiguous.assign(kv_layout="contiguous"), paged], ignore_index=True))
    assert table[["best_contiguous", "best_paged"]].values.tolist() == [["c1", "p"]]
    assert table.loc[0, "cost"] == pytest.approx(1.5)


def test_figures_draw_launch_bound_points_hollow():
    times = {"a": (True, {n: quadratic(n) for n in GRID}), "b": (True, {n: 2 * quadratic(n) for n in GRID})}
    ok = flagged(with_config(rows(times, {("b", 256)})))
    colours = palette(ok)
    grid = _curves(ok, "time_median_s", "time", colours, hollow=True)
    lines = grid.axes.flat[0].get_lines()
    hollow = [line for line in lines if line.get_markerfacecolor() == "none"]
    assert len(hollow) == 1 and list(hollow[0].get_xdata()) == [256]
    assert hollow[0].get_markeredgecolor() == colours["b"]  # the edge in the line's colour
    [b_line] = [line for line in lines if line not in hollow and list(line.get_xdata()) == GRID and
                line.get_color() == colours["b"]]  # fmt: skip
    assert b_line.get_markevery() == [n != 256 for n in GRID]  # its own filled marker is not under the hollow one
    assert HOLLOW_LEGEND in [text.get_text() for legend in grid.figure.legends for text in legend.get_texts()]
    # A figure of memory (hollow=False) and a run without launch-bound rows draw every marker filled.
    for hollow_asked, frame in ((False, ok), (True, flagged(with_config(rows(times))))):
        plain = _curves(frame, "time_median_s", "time", colours, hollow=hollow_asked)
        assert all(line.get_markerfacecolor() != "none" for line in plain.axes.flat[0].get_lines())


def test_the_report_says_how_many_and_where_they_are_left_out(tmp_path):
    times = {"a": (True, {n: quadratic(n) for n in GRID}), "b": (True, {n: 1.5 * quadratic(n) for n in GRID})}
    times["b"][1][128] = quadratic(128) / 5
    run = tmp_path / "gpu-run"
    run.mkdir()
    rows(times, {("b", 128)}).to_parquet(run / "results.parquet", index=False)
    (run / "env.json").write_text(json.dumps({"torch": "x"}))
    build_report([run], tmp_path / "report", baseline="a")
    page, summary = (tmp_path / "report" / "index.html").read_text(), (tmp_path / "report" / "summary.md").read_text()
    assert "1 of 12 timed cases launch-bound" in page and "left out of the complexity fits, the crossovers" in page
    assert "### Launch-bound cases, left out of the findings" in summary
    assert "| b | 128 |" in summary.replace("cuda bfloat16 fwd | ", "")
    fastest = pd.read_csv(tmp_path / "report" / "tables" / "fastest_per_n.csv").set_index("seq_len")
    assert fastest.loc[128, "fastest"] == "a"
    assert launch_bound(load_run(run)[0]).sum() == 1  # the row itself stays, with its warning


def test_the_terminal_table_stars_no_launch_bound_cell():
    times = {"a": (True, {128: 2e-3}), "b": (True, {128: 1e-3})}
    out = io.StringIO()
    print_results(rows(times, {("b", 128)}), Console(file=out, width=200, color_system=None))
    lines = {line.split("│")[1].strip(): line for line in out.getvalue().splitlines() if line.startswith("│ ")}
    assert "2 ms" in lines["a"] and "★" in lines["a"]
    assert "1 ms" in lines["b"] and "‡" in lines["b"] and "★" not in lines["b"]
