"""The generated report: fits on a real run, bad run directories, and a real headless browser."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.report.build import build_report
from harness.run.results import ResultsError, load_run, to_frame

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
INJECTION = "<script>alert(1)</script>"


def synthetic_run(run_dir: Path, variants: dict[str, tuple], *, reason: str = "") -> Path:
    """A finished run folder whose curves follow t = c·1e-9·N^alpha (2% noise), memory = N^beta exactly;
    ``variants`` maps a name to (alpha, beta) or (alpha, beta, c), c = 1 by default."""
    rng = np.random.default_rng(0)
    records = []
    for variant, (alpha, beta, *c) in variants.items():
        for n in [128, 256, 512, 1024, 2048, 4096]:
            median = (c[0] if c else 1.0) * 1e-9 * n**alpha
            samples = list(median * np.exp(rng.normal(0, 0.02, 9)))
            records.append(
                {
                    "run_id": run_dir.name, "case_id": f"{variant}-{n}", "variant": variant, "family": "test",
                    "exact": True, "device": "cpu", "dtype": "float32", "mode": "fwd", "causal": False, "batch": 1,
                    "heads": 8, "seq_len": n, "head_dim": 64, "threads": 2, "input_scale": 1.0, "seed": 0,
                    "params": "{}", "status": "ok", "reason": "", "time_median_s": float(np.median(samples)),
                    "time_samples_s": samples, "block_size": 1, "n_samples": 9, "peak_mem_bytes": int(n**beta),
                    "flops": 4.0 * 8 * n * n * 64, "gflops_per_s": 4.0 * 8 * n * n * 64 / median / 1e9,
                    "rel_err": 1e-7, "cosine": 1.0,
                }
            )  # fmt: skip
    records.append({**records[0], "case_id": "bad", "seq_len": 8192, "status": "error", "reason": reason or "boom",
                    "time_median_s": None, "time_samples_s": []})  # fmt: skip
    run_dir.mkdir(parents=True)
    to_frame(records).to_parquet(run_dir / "results.parquet", index=False)
    (run_dir / "env.json").write_text(json.dumps({"torch": "x", "ceilings": {"cpu": {"matmul_gflops": {"float32": 400.0}}}}))
    return run_dir


def test_report_files_and_fitted_exponents(tmp_path):
    run = synthetic_run(tmp_path / "synthetic", {"quadratic": (2.0, 2.0), "linear": (1.0, 1.0, 700.0)})
    index = build_report([run], tmp_path / "report")
    assert index.name == "index.html" and index.is_file()
    assert (tmp_path / "report" / "summary.md").read_text().startswith("# attnbench report")
    fits = pd.read_csv(tmp_path / "report" / "tables" / "complexity_fits.csv").set_index("variant")
    assert fits.loc["quadratic", "time_alpha"] == pytest.approx(2.0, abs=0.05)
    assert fits.loc["linear", "mem_beta"] == pytest.approx(1.0, abs=0.01)
    crossings = pd.read_csv(tmp_path / "report" / "tables" / "crossovers.csv").set_index("metric")
    assert crossings.loc["time", "ahead_beyond"] == "linear"  # 700·N = N^2 at N = 700, within 2% noise
    assert crossings.loc["time", "crossover_n"] == pytest.approx(700, rel=0.05)
    assert "memory" not in crossings.index  # N against N^2 from N = 1 on: never crossing in range
    for name in ["time_vs_n", "memory_vs_n", "gflops_vs_n", "accuracy_vs_n", "error_vs_time", "exponents"]:
        assert (tmp_path / "report" / "figures" / f"{name}.png").stat().st_size > 1000


def test_two_runs_in_one_report(tmp_path):
    a = synthetic_run(tmp_path / "a" / "run", {"v": (2.0, 2.0)})
    b = synthetic_run(tmp_path / "b" / "run", {"v": (1.0, 1.0)})
    build_report([a, b], tmp_path / "report")
    fits = pd.read_csv(tmp_path / "report" / "tables" / "complexity_fits.csv")
    assert len(fits) == 2 and fits["config"].nunique() == 2


def attnbench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, timeout=300, cwd=ROOT)


@pytest.mark.parametrize("kind", ["missing", "empty", "torn", "unfinished", "file"])
def test_report_on_bad_run_directory_is_one_line_and_exit_2(tmp_path, kind):
    run = tmp_path / "run"
    if kind == "empty":
        run.mkdir()
    elif kind == "torn":
        run.mkdir()
        (run / "results.parquet").write_bytes(b"PAR1 this is not a parquet file")
    elif kind == "unfinished":
        run.mkdir()
        (run / "cases.jsonl").write_text('{"case_id": "a", "status": "ok"}\n{"case_id": "b", "sta')
    elif kind == "file":
        run.write_text("x")
    result = attnbench("report", str(run), "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert str(run) in lines[0]
    with pytest.raises(ResultsError):
        load_run(run)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (.ci/run installs it)")
def test_report_in_a_real_browser(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    run = synthetic_run(tmp_path / "run", {INJECTION: (2.0, 2.0), "linear": (1.0, 1.0)}, reason=INJECTION)
    index = build_report([run], tmp_path / "report")
    assert INJECTION not in index.read_text()  # escaped in the file itself
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert INJECTION not in summary and "&lt;script&gt;alert(1)&lt;/script&gt;" in summary  # inert in a Markdown viewer

    console_errors, dialogs = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"],
        )  # fmt: skip
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: console_errors.append(str(e)))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(index.as_uri())
        page.wait_for_load_state("load")
        images = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])")
        text = page.inner_text("body")
        scripts = page.eval_on_selector_all("script", "s => s.length")
        # Top edges on the page: the findings, then measurement quality, then the first figure.
        tops = page.evaluate(
            "() => ['#findings', '#quality', '#figures img'].map(s => document.querySelector(s).getBoundingClientRect().top)"
        )
        widths = page.evaluate("() => [document.querySelector('#figures img').getBoundingClientRect().width,"
                               " document.body.getBoundingClientRect().width]")  # fmt: skip
        findings = page.inner_text("#findings")
        shot = tmp_path / "shot.png"
        page.screenshot(path=str(shot), full_page=False)
        browser.close()

    assert len(images) >= 6
    assert all(complete and width > 0 for _src, complete, width in images), images
    assert console_errors == []
    assert dialogs == [] and scripts == 0
    assert INJECTION in text  # shown as text, run as nothing
    assert tops[0] < tops[1] < tops[2], tops
    assert widths[0] >= 0.9 * (widths[1] - 40), widths  # figures at the page's full width (less its padding)
    for heading in ("Fastest exact variant per range of N", "Crossovers against the baseline",
                    "Fitted complexity against the declared class", "Error of the approximations"):  # fmt: skip
        assert heading in findings
    assert "linear: faster than" not in findings  # no sdpa in this run: no baseline to cross
    assert "True" not in findings and "False" not in findings and "nan" not in findings
    pixels = plt_imread(shot)
    assert pixels.std() > 0.02, "the screenshot is blank"


def plt_imread(path: Path) -> np.ndarray:
    import matplotlib.image

    return matplotlib.image.imread(str(path))


@pytest.mark.slow  # 12 s; the fits' verdicts are held on synthetic curves in test_fits.py in the default run
def test_fitted_classes_on_a_real_sweep(tmp_path):
    """naive time and memory ~N^2, sdpa memory ~N, linear-time variants ~N, measured for real."""
    result = subprocess.run(
        [sys.executable, "-m", "harness.cli", "sweep", "--preset", "quick", "--variants",
         "naive,sdpa,linear-elu,performer-256", "--seq-lens", "256:2048:x2", "--rounds", "1", "--max-time", "0.2",
         "--out", "results/real", "--report"],  # one round, N to 2K: fitted classes, not rounds, are the subject here
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    index = tmp_path / "report" / "real" / "index.html"
    assert f"report: {Path('report/real/index.html')}" in result.stdout and index.is_file()
    assert (tmp_path / "results" / "real" / "attention_maps.json").is_file()
    assert (tmp_path / "report" / "real" / "figures" / "attention_maps.png").is_file()
    fits = pd.read_csv(tmp_path / "report" / "real" / "tables" / "complexity_fits.csv").set_index("variant")
    # Classes, not decimals: the quadratic curve's exponent sits nearer 2 than 1, a whole power above the
    # linear-time ones measured in the same run; memory is deterministic and lands on its class.
    naive, linear = fits.loc["naive", "time_alpha"], fits.loc["linear-elu", "time_alpha"]
    assert abs(naive - 2) < abs(naive - 1) and naive - linear >= 0.7, fits[["time_alpha", "time_ci_low", "time_ci_high"]]
    assert fits.loc["naive", "mem_beta"] == pytest.approx(2.0, abs=0.15)
    assert fits.loc["sdpa", "mem_beta"] == pytest.approx(1.0, abs=0.15)
    assert linear <= 1.3
    assert fits.loc["performer-256", "time_alpha"] <= 1.3


def test_a_run_from_before_declared_classes_and_interference_still_reports(tmp_path):
    run = synthetic_run(tmp_path / "old", {"v": (2.0, 2.0)})
    older = ["declared_time", "declared_memory", "runqueue_wait_ratio", "cpu_utilization", "discarded_blocks", "load_avg"]
    pd.read_parquet(run / "results.parquet").drop(columns=older).to_parquet(run / "results.parquet", index=False)
    build_report([run], tmp_path / "report")
    fits = pd.read_csv(tmp_path / "report" / "tables" / "complexity_fits.csv")
    assert fits.loc[0, "time_alpha"] == pytest.approx(2.0, abs=0.05)
    assert fits["declared_time"].isna().all() and fits["time_agrees"].isna().all()  # nothing declared: no verdict
