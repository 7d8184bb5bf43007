"""Variants from outside the repository: --plugin files, installed entry points, broken plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.verify.checks import check_variant

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = Path(__file__).resolve().parent / "plugins"


def attnbench(*args: str, pythonpath: list[Path] = (), cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in [*pythonpath, ROOT])
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, env=env,
                          timeout=600, cwd=cwd)  # fmt: skip


def listed(result: subprocess.CompletedProcess) -> set[str]:
    assert result.returncode == 0, result.stderr
    return {row["name"] for row in json.loads(result.stdout)}


def test_plugin_file_is_listed_checked_and_swept(tmp_path):
    plugin = str(PLUGINS / "good.py")
    assert "test-plugin-attn" in listed(attnbench("list", "--json", "--plugin", plugin))

    check = attnbench("check", "test-plugin-attn", "--plugin", plugin)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "every applicable check passed" in check.stdout
    assert "pass  exact" in check.stdout and "pass  backward" in check.stdout

    out = tmp_path / "run"
    sweep = attnbench("sweep", "--plugin", plugin, "--variants", "test-plugin-attn,sdpa", "--seq-lens", "32,64,128", "--heads",
                      "2", "--max-time", "0.05", "--rounds", "1", "--out", str(out), "--report", cwd=tmp_path)  # fmt: skip
    assert sweep.returncode == 0, sweep.stderr
    frame = pd.read_parquet(out / "results.parquet")
    mine = frame[frame["variant"] == "test-plugin-attn"]
    assert mine["status"].isin(["ok", "contended"]).all() and mine["rel_err"].max() < 1e-5  # against float64 like any other
    fits = pd.read_csv(tmp_path / "report" / "run" / "tables" / "complexity_fits.csv")
    assert "test-plugin-attn" in set(fits["variant"])
    maps = json.loads((out / "attention_maps.json").read_text())
    assert maps["non_causal"]["test-plugin-attn"]["status"] == "ok"

    # A report of the plugin's run, in a process that never loads the plugin: the records carry its classes.
    report = attnbench("report", str(out), "--out", str(tmp_path / "later"), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    later = pd.read_csv(tmp_path / "later" / "tables" / "complexity_fits.csv").set_index("variant")
    assert later.loc["test-plugin-attn", "declared_time"] == "O(N^2 d)"
    assert later.loc["test-plugin-attn", "declared_memory"] == "O(N^2)"


def test_check_fails_a_contract_breaker_and_passes_a_variant_within_the_contract():
    results = {r.name: r for r in check_variant("linear-elu")}
    assert results["contract"].passed and results["deterministic"].passed
    assert "exact" not in results  # an approximation is not held to exact tolerances
    plugin = str(PLUGINS / "bad_contract.py")
    broken = attnbench("check", "test-bad-shape", "--plugin", plugin)
    assert broken.returncode == 1, broken.stdout
    assert "FAIL  contract" in broken.stdout and "returned shape (1, 2, 47, 7), expected (1, 2, 33, 8)" in broken.stdout
    fine = attnbench("check", "test-fine", "--plugin", plugin)  # wrong numbers, but an approximation's contract holds
    assert fine.returncode == 0, fine.stdout
    assert attnbench("check", "nosuch").returncode == 2


def make_distribution(site: Path, module: str, body: str, name: str = "demo") -> None:
    """A minimal installed distribution: its module, and a *.dist-info with entry_points.txt."""
    (site / f"{module}.py").write_text(body)
    info = site / f"attnbench_{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: attnbench-{name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[attnbench.variants]\n{name} = {module}\n")


def test_installed_entry_point_is_discovered_without_a_flag(tmp_path):
    body = (PLUGINS / "good.py").read_text().replace("test-plugin-attn", "ep-demo-attn")
    make_distribution(tmp_path, "ep_demo_variants", body)
    assert "ep-demo-attn" in listed(attnbench("list", "--json", pythonpath=[tmp_path]))
    check = attnbench("check", "ep-demo-attn", pythonpath=[tmp_path])
    assert check.returncode == 0, check.stdout + check.stderr


def test_broken_entry_point_never_stops_list(tmp_path):
    make_distribution(tmp_path, "ep_broken", "raise RuntimeError('kaput')\n", name="broken")
    result = attnbench("list", "--json", pythonpath=[tmp_path])
    names = listed(result)
    assert "naive" in names
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "broken" in warnings[0] and "RuntimeError: kaput" in warnings[0]


@pytest.mark.parametrize(
    "plugin, needle",
    [
        ("broken_import.py", "ModuleNotFoundError: No module named 'attnbench_no_such_dependency'"),
        ("duplicate.py", "variant 'naive' is already registered"),
        ("no_such_file.py", "no such file"),
        ("exits.py", "called sys.exit(0) while being imported"),
        ("ends.py", "ended its process while being imported (exit status 0)"),
    ],
)
def test_a_named_plugin_that_fails_to_load_is_one_line_and_exit_2(tmp_path, plugin, needle):
    (tmp_path / "exits.py").write_text("raise SystemExit(0)\n")
    (tmp_path / "ends.py").write_text("import os\nos._exit(0)\n")
    path = str((tmp_path if plugin in ("exits.py", "ends.py") else PLUGINS) / plugin)
    for command in (["list", "--json"], ["sweep", "--variants", "sdpa", "--seq-lens", "16", "--out", str(tmp_path / "r")]):
        result = attnbench(*command, "--plugin", path)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and not result.stdout, (command, result.stdout, result.stderr)
        assert len(lines) == 1 and path in lines[0] and needle in lines[0], result.stderr
    assert not (tmp_path / "r").exists()  # nothing ran


def test_a_plugin_changes_nothing_for_other_variants(tmp_path):
    """Its patched clock and changed default dtype and grad mode reach only its own variant: each worker loads only
    the plugin it measures, the clock is the one the harness bound before plugins load, torch state is restored."""
    out = tmp_path / "run"
    sweep = attnbench("sweep", "--plugin", str(PLUGINS / "meddler.py"), "--variants", "naive,test-meddler,sdpa",
                      "--seq-lens", "64", "--heads", "2", "--mode", "fwd,fwd_bwd", "--rounds", "1", "--max-time", "0.05",
                      "--out", str(out))  # fmt: skip
    assert sweep.returncode == 0, sweep.stderr
    rows = pd.read_parquet(out / "results.parquet").set_index(["variant", "mode"])
    own = rows.loc[("test-meddler", "fwd_bwd")]  # grad mode off breaks its own backward, and only its own
    assert own["status"] == "error" and "does not require grad" in own["reason"]
    others = rows.drop(index=[("test-meddler", "fwd_bwd")])["status"]  # measured (a VM slowing mid-run may contend one)
    assert others.isin(["ok", "contended"]).all(), rows[["status", "reason"]]
    # the same kernel as sdpa: within a few x of it, not 100x faster as its patched clock would read
    ratio = rows.loc[("test-meddler", "fwd"), "time_median_s"] / rows.loc[("sdpa", "fwd"), "time_median_s"]
    assert 0.2 < ratio < 5, ratio
    maps = json.loads((out / "attention_maps.json").read_text())["non_causal"]
    assert all(maps[name]["status"] == "ok" for name in ("exact", "naive", "sdpa", "test-meddler")), maps


def test_contract_breakers_get_a_clear_line_and_the_rest_still_runs(tmp_path):
    path = str(PLUGINS / "bad_contract.py")
    result = attnbench("list", "--json", "--plugin", path)
    names = listed(result)
    assert {"test-fine", "test-bad-shape", "test-bad-dtype"} <= names
    assert "test-bad-signature" not in names  # refused at load: no call needed to see it
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and path in lines[0] and "test-bad-signature" in lines[0] and "signature" in lines[0]

    # Output contracts are caught on the first call, in the worker: one error row each, with the reason.
    out = tmp_path / "run"
    sweep = attnbench("sweep", "--plugin", path, "--variants", "test-fine,test-bad-shape,test-bad-dtype",
                      "--seq-lens", "32", "--heads", "1", "--max-time", "0.05", "--rounds", "1", "--out", str(out))  # fmt: skip
    assert sweep.returncode == 0, sweep.stderr
    rows = pd.read_parquet(out / "results.parquet").set_index("variant")
    assert rows.loc["test-fine", "status"] == "ok"
    assert rows.loc["test-bad-shape", "status"] == "error"
    assert "contract broken: test-bad-shape returned shape (1, 1, 32, 63)" in rows.loc["test-bad-shape", "reason"]
    assert rows.loc["test-bad-dtype", "status"] == "error" and "torch.float64" in rows.loc["test-bad-dtype", "reason"]
    for name, needle in (("test-bad-shape", "shape"), ("test-bad-dtype", "float64")):
        check = attnbench("check", name, "--plugin", path)
        assert check.returncode == 1 and needle in check.stdout


def test_check_fails_a_variant_that_refuses_a_mask_it_declares_and_passes_one_that_serves_it():
    refuser = attnbench("check", "test-refuses-sliding", "--plugin", str(PLUGINS / "refuser.py"))
    assert refuser.returncode == 1, refuser.stdout
    assert "refuses every mask it declares (sliding): sliding windows are not implemented yet" in refuser.stdout

    from variants import unregister
    from variants.plugins import load_plugins

    load_plugins([str(PLUGINS / "refuser.py")])
    try:
        results = {r.name: r for r in check_variant("test-mask-keyword")}
        assert results["masks and GQA"].passed, results["masks and GQA"].detail
        assert all(r.passed is not False for r in results.values()), results
        older = {r.name: r for r in check_variant("test-causal-keyword")}  # causal=: through the registry's adapter
        assert older["exact"].passed and older["contract (causal)"].passed, older
        assert all(r.passed is not False for r in older.values()), older
    finally:
        for name in ("test-refuses-sliding", "test-causal-keyword", "test-mask-keyword"):
            unregister(name)


@pytest.fixture
def windowed_plugins():
    from variants import unregister
    from variants.plugins import load_plugins

    load_plugins([str(PLUGINS / "windowed.py")])
    yield
    for name in ("test-window-64", "test-window-off-by-one"):
        unregister(name)


def test_an_approximation_is_measured_against_its_declared_reference(windowed_plugins):
    from harness.measure.case import Case
    from harness.measure.measure_case import measure_case

    # check: past the 64-key window, the error against sliding:64 exposes an off-by-one window.
    right = {r.name: r for r in check_variant("test-window-64")}["accuracy"]
    wrong = {r.name: r for r in check_variant("test-window-off-by-one")}["accuracy"]
    assert right.passed and "against exact attention under sliding:64" in right.detail, right.detail
    assert right.detail.endswith("(tolerance 1e-05)")
    assert wrong.passed is False, wrong.detail
    assert wrong.detail.startswith("over its tolerance 1e-05 against exact attention under sliding:64: ")
    assert min(float(e.split()[0]) for e in wrong.detail.split(": ", 1)[1].split(", ")) > 1e-3, wrong.detail
    plain = {r.name: r for r in check_variant("linear-elu")}["accuracy"]
    assert plain.passed and "against exact attention: " in plain.detail and "N_q=1024 N_kv=1024" in plain.detail

    # A sweep's row: the error against the declared reference, which the row names.
    record = measure_case(Case("test-window-64", 256, heads=2, head_dim=16, threads=1), max_time_s=0.02, memory=False)
    assert record.status == "ok" and record.err_reference == "sliding:64" and record.rel_err < 1e-5


def test_reference_is_for_approximations_and_must_be_a_mask():
    from variants import register

    with pytest.raises(ValueError, match="reference= is for approximations"):
        register("test-ref-exact", family="t", exact=True, time="O(N^2 d)", memory="O(N^2)", reference="sliding:4")
    with pytest.raises(ValueError, match="unknown mask 'band:4'"):
        register("test-ref-bad", family="t", exact=False, time="O(N^2 d)", memory="O(N^2)", reference="band:4")
