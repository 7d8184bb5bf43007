"""The results table in the terminal (`harness.report.console`): cells, marks, and what is left out of it."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from rich.console import Console

from harness.cli import main
from harness.measure.case import Case
from harness.measure.measure_case import record_for
from harness.report.console import print_results


def _row(variant: str, n: int, status: str = "ok", median: float | None = None, **fields) -> dict:
    record = record_for(Case(variant, n, threads=1), status, fields.pop("reason", "")).to_dict()
    if median is not None:
        record.update(time_median_s=median, time_iqr_s=median * 0.02, noisy=False, peak_mem_bytes=3 * 2**20)
    record.update(fields)
    return record


def _text(frame: pd.DataFrame) -> str:
    out = io.StringIO()
    print_results(frame, Console(file=out, width=200, color_system=None))
    return out.getvalue()


def test_cells_marks_and_variants_that_could_not_run():
    frame = pd.DataFrame([
        _row("naive", 128, median=1e-3), _row("naive", 256, median=5e-3, noisy=True, time_iqr_s=1e-3),
        _row("sdpa", 128, median=2e-3), _row("sdpa", 256, median=4e-3),
        _row("linear-elu", 128, "contended", median=9e-4, reason="contended: 10 of 10 blocks preempted"),
        _row("linear-elu", 256, "oom", reason="OutOfMemoryError"),
        _row("xformers", 128, "unsupported", reason="xformers has no CPU kernel"),
        _row("xformers", 256, "unsupported", reason="xformers has no CPU kernel"),
    ])  # fmt: skip
    text = _text(frame)
    lines = {line.split("│")[1].strip(): line for line in text.splitlines() if line.startswith("│ ") and line[2] != " "}
    assert set(lines) == {"naive", "sdpa", "linear-elu"}  # xformers is a note, not a row of n/a
    assert "1 ms ±2% ★" in lines["naive"] and "5 ms ±20% ~" in lines["naive"]  # fastest at 128; noisy at 256
    assert "4 ms ±2% ★" in lines["sdpa"]  # fastest at 256: the contended 0.9 ms is no timing and never the best
    assert "contended !" in lines["linear-elu"] and "oom" in lines["linear-elu"]
    assert "xformers: not run here: xformers has no CPU kernel" in text
    assert "3 MiB" in text and "★ fastest in its column" in text


def test_show_and_version_from_the_command_line(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("attnbench ")
    assert main(["show", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("attnbench show: error:") and len(err.splitlines()) == 1
