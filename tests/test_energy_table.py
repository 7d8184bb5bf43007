"""The report's energy table (harness.analyze.energy): power, joules per call and TFLOP/s per watt, from rows
written out by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.analyze.energy import energy_table


def _row(variant: str, n: int, status: str = "ok", **measured) -> dict:
    return {"variant": variant, "seq_len": n, "status": status, "device": "cuda", "dtype": "bfloat16", "mode": "fwd",
            "mask": "none", "batch": 1, "heads": 16, "head_dim": 64, "flops": 1.1e12, **measured}  # fmt: skip


def test_tflops_per_watt_is_the_flops_over_the_joules_and_rows_without_energy_are_left_out():
    frame = pd.DataFrame([
        _row("sdpa", 16384, power_w=700.0, energy_j=1.6),
        _row("sdpa-flash", 16384, power_w=600.0, energy_j=2.2),
        _row("flex", 16384),  # timed, no --energy
        _row("naive", 16384, status="oom", power_w=650.0, energy_j=9.0),  # no timing: no row
    ])  # fmt: skip
    table = energy_table(frame).set_index("variant")
    assert list(table.index) == ["sdpa", "sdpa-flash"]
    assert table.loc["sdpa", "tflops_per_watt"] == pytest.approx(1.1 / 1.6)  # 1.1 TFLOP in 1.6 J
    assert table.loc["sdpa-flash", "tflops_per_watt"] == pytest.approx(0.5)
    assert table.loc["sdpa", "energy_j"] == 1.6


def test_a_run_without_energy_gives_an_empty_table():
    assert energy_table(pd.DataFrame([_row("sdpa", 1024)])).empty
    assert energy_table(pd.DataFrame([_row("sdpa", 1024)]).drop(columns=[])).columns.tolist()[-1] == "tflops_per_watt"
