"""The command line as a user runs it: a real subprocess, exit codes, stderr lines."""

from __future__ import annotations

import json

import pytest
from conftest import run_attnbench as attnbench


def test_list_table_names_every_variant_and_availability():
    result = attnbench("list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["name", "family", "exact"]
    names = [line.split()[0] for line in lines[1:]]
    assert {"naive", "sdpa", "chunked-online", "linear-elu", "performer-256", "xformers"} <= set(names)
    assert all(("yes" in line) or ("no:" in line) for line in lines[1:])


def test_list_json():
    result = attnbench("list", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) >= 9
    naive = next(r for r in rows if r["name"] == "naive")
    assert naive["exact"] is True and naive["memory"] == "O(N^2)" and naive["available"] is True
    performer = next(r for r in rows if r["name"] == "performer-64")
    assert performer["params"] == {"features": 64} and performer["exact"] is False


def test_list_pattern():
    rows = json.loads(attnbench("list", "sdpa-*h", "--json").stdout)
    assert [r["name"] for r in rows] == ["sdpa-flash", "sdpa-math"]


@pytest.mark.parametrize("args", [["list", "nosuch*"], ["list", "--jsn"]])  # more: tests/test_cli_errors.py
def test_bad_input_is_one_line_and_exit_2(args):
    result = attnbench(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert len([line for line in result.stderr.splitlines() if "error" in line]) == 1
