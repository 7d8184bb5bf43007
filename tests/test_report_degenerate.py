"""Every run the sweep can produce reports: a figure with nothing to draw is left out with a sentence, never a traceback.

One real sweep holds the degenerate shapes of a run (N = 1, whose error is exactly zero, decode, an
approximation, a variant with a wrong output shape); each run of the grid is a subset of its rows, as a
sweep over fewer variants or lengths would have written it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.report.build import build_report

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = str(ROOT / "tests" / "plugins" / "garbage.py")

GRID = {
    "everything": lambda f: f,
    "decode only": lambda f: f[f["mode"] == "decode"],
    "N=1 only": lambda f: f[f["seq_len"] == 1],
    "one row": lambda f: f[f["status"] == "ok"].head(1),
    "all errors": lambda f: f[f["variant"] == "test-wrong-shape"],
    "only approximations": lambda f: f[~f["exact"]],
    "zero errors": lambda f: f[(f["rel_err"] == 0) & (f["status"] == "ok")],  # one key: o = v exactly
}


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("degenerate") / "run"
    args = ["sweep", "--plugin", PLUGIN, "--variants", "sdpa,linear-elu,test-wrong-shape", "--seq-lens", "1,64",
            "--mode", "fwd,decode", "--heads", "2", "--rounds", "1",
            "--max-time", "0.01", "--out", str(out)]  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out


def subset_run(run: Path, rows: pd.DataFrame, out: Path) -> Path:
    out.mkdir(parents=True)
    rows.to_parquet(out / "results.parquet", index=False)
    for name in ("env.json", "attention_maps.json"):
        if (run / name).is_file():
            shutil.copy(run / name, out / name)
    return out


def test_the_grid_covers_what_it_names(real_run):
    frame = pd.read_parquet(real_run / "results.parquet")
    wrong = frame[frame["variant"] == "test-wrong-shape"]
    assert (wrong["status"] == "error").all()
    zero = GRID["zero errors"](frame)
    assert len(zero) and (zero["rel_err"] == 0).all()
    assert len(GRID["N=1 only"](frame).query("status == 'ok'")) and len(GRID["decode only"](frame))


@pytest.mark.parametrize("name", GRID)
def test_a_degenerate_run_reports_each_missing_figure_with_a_reason(real_run, tmp_path, name):
    rows = GRID[name](pd.read_parquet(real_run / "results.parquet"))
    assert len(rows), name
    index = build_report([subset_run(real_run, rows, tmp_path / "run")], tmp_path / "report")
    page = index.read_text()
    drawn = re.findall(r'<img src="figures/([^"]+)"', page)
    omitted = dict(re.findall(r'data-figure="(\w+)">Not drawn: .*? Left out because (.*?)\.</p>', page))
    assert all((tmp_path / "report" / "figures" / png).stat().st_size > 1000 for png in drawn)
    assert len(drawn) + len(omitted) == 13  # every figure is drawn or says why not
    assert not [why for why in omitted.values() if why.startswith("could not be drawn")], omitted
    if (rows["status"] == "ok").any():
        assert "time_vs_n.png" in drawn
    else:
        assert set(omitted) >= {"time", "memory", "accuracy"} and omitted["time"] == "no case finished ok"
