"""Tampered and damaged run folders: one line and exit 2 where a file cannot be read, never a traceback; a row
without a valid timing is an error, never starred, fitted, exported or called an improvement."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.cli import main

ROOT = Path(__file__).resolve().parent.parent
SWEEP = ["--variants", "sdpa", "--seq-lens", "32,64", "--heads", "1", "--max-time", "0.01", "--rounds", "1"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tampered") / "run"
    done = subprocess.run([sys.executable, "-m", "harness.cli", "sweep", *SWEEP, "--out", str(out)], capture_output=True,
                          text=True, timeout=300, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out


def attnbench(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))  # an exception main() does not turn into one line fails the test, as a traceback would
    out, err = capsys.readouterr()
    return code, out, err


def copy_of(run: Path, tmp_path: Path, *, tables: bool = True) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    if not tables:  # the tables are rebuilt from cases.jsonl
        (copy / "results.parquet").unlink()
        (copy / "results.csv").unlink()
    return copy


CASES_LINES = {
    "binary": (b"\xff\xfe\x00 not text\n", "is not valid JSON"),
    "a list": (b"[1, 2, 3]\n", "is a JSON list, not a record"),
    "no case_id": (b'{"variant": "sdpa"}\n', "has no case_id"),
}


@pytest.mark.parametrize("damage", CASES_LINES)
def test_a_damaged_line_of_cases_jsonl_is_one_line_for_every_reader(run, tmp_path, capsys, damage):
    line, needle = CASES_LINES[damage]
    copy = copy_of(run, tmp_path, tables=False)
    with open(copy / "cases.jsonl", "ab") as cases:
        cases.write(line)
    needle = f"line {len((copy / 'cases.jsonl').read_bytes().splitlines())} {needle}"
    for command in (["show", str(copy)], ["compare", str(run), str(copy)], ["sweep", *SWEEP, "--out", str(copy), "--resume"]):
        code, _, err = attnbench(capsys, *command)
        assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, (command, err)


@pytest.mark.parametrize("name", ["env.json", "sweep.json"])
def test_a_json_file_that_is_not_an_object_is_one_line(run, tmp_path, capsys, name):
    copy = copy_of(run, tmp_path)
    (copy / name).write_text("[1]")
    report, resume = ["report", str(copy), "--out", str(tmp_path / "report")], ["sweep", *SWEEP, "--out", str(copy), "--resume"]
    command = report if name == "env.json" else resume
    code, _, err = attnbench(capsys, *command)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "not the object it should hold" in err if name == "env.json" else "no readable sweep.json" in err


@pytest.mark.parametrize("time, samples", [(-1e-3, None), (float("nan"), [1e-5]), (2e-5, []), (2e-5, [float("nan")])])
def test_a_row_without_a_valid_timing_is_an_error_nobody_stars(run, tmp_path, capsys, time, samples):
    copy = copy_of(run, tmp_path)
    frame = pd.read_parquet(copy / "results.parquet")
    damaged = frame["seq_len"] == 32  # N=32 is damaged; N=64 is a sound ok row (whatever a busy machine made it)
    frame["status"] = "ok"
    frame["time_median_s"] = [time if bad else 2e-5 for bad in damaged]
    frame["time_samples_s"] = [samples if bad else [2e-5] * 5 for bad in damaged]
    frame.to_parquet(copy / "results.parquet", index=False)
    code, out, _ = attnbench(capsys, "show", str(copy))
    assert code == 0 and out.count("★") == 2 and re.search(r"│\s*error\s*│", out)  # N=64's star and the legend's
    code, out, _ = attnbench(capsys, "compare", str(run), str(copy))
    assert "not comparable" in out and "improvement" not in out.splitlines()[0]
    assert attnbench(capsys, "export", str(copy), "--out", str(tmp_path / "bench.json"))[0] == 0
    assert len(json.loads((tmp_path / "bench.json").read_text())["benchmarks"]) == 1
    if time < 0:  # one report is enough: what it draws is tested with the degenerate runs
        assert attnbench(capsys, "report", str(copy), "--out", str(tmp_path / "report"))[0] == 0


def test_a_field_of_mixed_types_no_table_knows_is_kept_on_resume(run, tmp_path, capsys):
    copy = copy_of(run, tmp_path, tables=False)
    records = [json.loads(line) for line in (copy / "cases.jsonl").read_text().splitlines()]
    cases = sorted({r["case_id"] for r in records})
    for record in records:  # what a plugin or a hand edit might add: an int for one case, text for the other
        record["extra"] = 1 if record["case_id"] == cases[0] else "two"
    (copy / "cases.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    code, _, err = attnbench(capsys, "sweep", *SWEEP, "--out", str(copy), "--resume")
    assert code == 0, err
    table = pd.read_parquet(copy / "results.parquet").set_index("case_id")
    assert table["extra"].to_dict() == {cases[0]: "1", cases[1]: '"two"'}  # as JSON text: parquet holds one type


def test_a_hand_edited_record_with_scalars_where_lists_belong_is_an_error_row(run, tmp_path, capsys):
    copy = copy_of(run, tmp_path, tables=False)
    records = [json.loads(line) for line in (copy / "cases.jsonl").read_text().splitlines()]
    for record in records:
        record["time_samples_s"], record["time_median_s"] = 5, [1e-5]  # a number for the list, a list for the number
    (copy / "cases.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    code, out, err = attnbench(capsys, "show", str(copy))
    assert code == 0 and "★" not in out.split("★ fastest")[0] and re.search(r"│\s*error\s*│", out), (out, err)
