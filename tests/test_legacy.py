"""Run folders written before the mask replaced ``causal``: they load, report and resume as if written today."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import run_attnbench

from harness.measure.case import Case
from harness.measure.fields import CASE_FIELDS
from harness.run.folder import _setting_changes
from harness.run.legacy import upgrade_rows, upgrade_sweep
from harness.run.results import load_results, read_jsonl, to_frame
from harness.run.sweep import build_sweep

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_RUNS = ["reference-cpu", "reference-h200", "workloads-cpu"]


def _case_of(row: dict) -> Case:
    """The case a row records, built from its columns alone (as today's code would build it)."""
    fields = {f.case: row[f.case] for f in CASE_FIELDS if f.case in row and row[f.case] is not None}
    if fields.get("heads_kv") == fields["heads"]:
        del fields["heads_kv"]
    if fields.get("q_len") == fields["seq_len"] and row["mode"] != "decode":
        del fields["q_len"]
    return Case(**fields)


@pytest.mark.parametrize("run", REFERENCE_RUNS)
def test_every_recorded_case_keeps_its_id(run):
    """A resume finds what is recorded by case id: each row's id, recomputed from its columns, is the one recorded."""
    rows = upgrade_rows(to_frame(read_jsonl(ROOT / "results" / run / "cases.jsonl"))).to_dict("records")
    assert rows and "causal" not in rows[0]
    assert [_case_of(row).case_id for row in rows] == [row["case_id"] for row in rows]


def test_the_reference_cpu_run_reads_as_today():
    raw = read_jsonl(ROOT / "results/reference-cpu/cases.jsonl")
    assert "causal" in raw[0] and "mask" not in raw[0]  # written before the mask existed
    frame = load_results(ROOT / "results/reference-cpu")
    assert "causal" not in frame.columns
    by_flag = {(r["case_id"]): ("causal" if r["causal"] else "none") for r in raw}
    assert {row.case_id: row.mask for row in frame.itertuples()} == by_flag
    assert (frame["heads_kv"] == frame["heads"]).all() and (frame["q_len"] == frame["seq_len"]).all()


@pytest.mark.parametrize(("run", "preset", "older"), [("reference-cpu", "default", True), ("workloads-cpu", "workloads", False)])
def test_a_recorded_sweep_is_todays_preset(run, preset, older):
    stored = json.loads((ROOT / "results" / run / "sweep.json").read_text())["sweep"]
    assert ("causal" in stored) is older  # the older spelling, in a run from before masks
    assert "causal" not in upgrade_sweep(stored)
    assert _setting_changes(stored, build_sweep(preset, threads=str(stored["threads"]))) == []


def _as_written_before_masks(run_dir: Path) -> None:
    """Rewrite a run folder the way the version before masks wrote it: ``causal`` in rows and sweep.json."""
    lines = []
    for row in read_jsonl(run_dir / "cases.jsonl"):
        row["causal"] = row.pop("mask") == "causal"
        lines.append(json.dumps(row))
    (run_dir / "cases.jsonl").write_text("\n".join(lines) + "\n")
    stored = json.loads((run_dir / "sweep.json").read_text())
    stored["sweep"]["causal"] = [mask == "causal" for mask in stored["sweep"].pop("masks")]
    (run_dir / "sweep.json").write_text(json.dumps(stored))


def test_a_folder_written_before_masks_resumes_without_measuring_again(tmp_path):
    flags = ["--variants", "naive", "--seq-lens", "32,64", "--causal", "false,true", "--threads", "1", "--rounds", "1",
             "--max-time", "0.05"]  # fmt: skip
    done = run_attnbench("sweep", *flags, "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    _as_written_before_masks(tmp_path / "run")
    before = (tmp_path / "run" / "cases.jsonl").read_text()
    resumed = run_attnbench("sweep", *flags, "--resume", "--out", str(tmp_path / "run"))
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "run" / "cases.jsonl").read_text() == before  # nothing measured again
    assert sorted(load_results(tmp_path / "run")["mask"]) == ["causal", "causal", "none", "none"]
    report = run_attnbench("report", str(tmp_path / "run"), "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    shutil.rmtree(tmp_path / "report")
