"""Bad input: one clear line on stderr, exit status 2, no traceback, nothing written."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
from conftest import run_attnbench

from harness.cli import main

ROOT = Path(__file__).resolve().parent.parent


def attnbench(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return run_attnbench(*args, cwd=cwd, env={"PATH": "/usr/bin:/bin"}, timeout=120)  # a bare environment


def in_process(capsys, *args: str) -> subprocess.CompletedProcess:
    """``attnbench ARGS`` through `harness.cli.main` in this process: input errors need no fresh interpreter.

    An exception main() does not turn into one line escapes and fails the test, as a traceback would.
    """
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["attnbench", *args], code, out, err)


def snapshot(path: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()} if path.exists() else {}


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "error" in lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


BAD_SWEEPS = [
    (["--variants", "sdap"], ["unknown variant 'sdap'", "sdpa"]),
    (["--seq-lens", "0"], ["--seq-lens", "'0'"]),
    (["--seq-lens", "-5"], ["--seq-lens", "'-5'"]),
    (["--seq-lens", "abc"], ["--seq-lens", "'abc'"]),
    (["--seq-lens", "128:64:x2"], ["stop 64 is below start 128"]),
    (["--dtype", "float8"], ["unknown dtype 'float8'"]),
    (["--device", "tpu"], ["unknown device 'tpu'"]),
    (["--threads", "0"], ["--threads", "'0'"]),
    (["--mode", "backward"], ["unknown mode 'backward'"]),
    (["--causal", "maybe"], ["--causal", "'maybe'"]),
    (["--preset", "huge"], ["unknown preset 'huge'"]),
    (["--seed", "99999999999999999999999"], ["--seed", "too large"]),
    (["--seed=²"], ["--seed", "'²'"]),
    (["--seed", "-1"], ["--seed", "'-1'"]),
    (["--threads", "99999999999999"], ["--threads", "99999999999999"]),
    (["--threads", "4096"], ["--threads 4096", "CPUs"]),
    (["--timeout", "inf"], ["--timeout", "'inf'"]),
    (["--timeout", "0"], ["--timeout", "'0'"]),
    (["--timeout", "0.5"], ["--timeout 0.5: at least 2 s"]),
    (["--model", "gpt-17"], ["--model: unknown model 'gpt-17'; built in: llama-3-8b"]),
    (["--model", "no/such/config.json"], ["--model: cannot read no/such/config.json"]),
    (["--max-time", "nan"], ["--max-time", "'nan'"]),
    (["--seq-lens", "99999999999999999999"], ["--seq-lens", "up to"]),
    (["--heads", "2.5"], ["--heads", "'2.5'"]),
    (["--mask", "bogus"], ["--mask", "unknown mask 'bogus'"]),
    (["--mask", "sliding:0"], ["--mask", "sliding:W takes a positive integer W"]),
    (["--mask", "document:0"], ["--mask", "document:K takes a positive integer K"]),
    (["--mask", "prefix:-1"], ["--mask", "prefix:P takes a positive integer P"]),
    (["--heads", "8", "--kv-heads", "3"], ["--kv-heads 3 does not divide --heads 8"]),
    (["--mode", "decode", "--q-len", "200", "--seq-lens", "64,128"], ["--q-len 200 is larger than N=64"]),
    (["--causal", "true", "--mask", "sliding:4"], ["--causal and --mask together"]),
]


@pytest.mark.parametrize("flags, needles", BAD_SWEEPS, ids=lambda x: " ".join(x) if isinstance(x, list) else None)
def test_bad_sweep_flags(tmp_path, capsys, flags, needles):
    out = tmp_path / "run"
    assert_one_line_error(in_process(capsys, "sweep", *flags, "--out", str(out)), *needles)
    assert not out.exists(), "nothing written"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_unavailable_device(tmp_path):
    out = tmp_path / "run"
    assert_one_line_error(attnbench("sweep", "--device", "cuda", "--out", str(out)), "cuda is not available")
    assert not out.exists()


def test_malformed_toml(tmp_path, capsys):
    config = tmp_path / "sweep.toml"
    config.write_text("seq_lens = [128, 256\n")
    assert_one_line_error(in_process(capsys, "sweep", "--config", str(config), "--out", str(tmp_path / "run")), "malformed TOML")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "text, needle",
    [('variants = [["naive"]]\n', "expected variant names"), ("variants = 5\n", "expected variant names"),
     ('dtypes = [1]\n', "unknown dtype 1"), ("seed = 1.5\n", "--seed"), ("timeout_s = 1e999\n", "--timeout"),
     ("max_seq_len = 3\n", "max_seq_len"), ("grids = 3\n", "grids must be a list of tables"),
     ('[[grids]]\nthreads = 1\n', "unknown grid key 'threads'"), ('[[grids]]\nmasks = ["sliding:0"]\n', "--mask")],
)  # fmt: skip
def test_wrong_types_in_toml(tmp_path, capsys, text, needle):
    config = tmp_path / "sweep.toml"
    config.write_text(text)
    assert_one_line_error(in_process(capsys, "sweep", "--config", str(config), "--out", str(tmp_path / "run")), needle)
    assert not (tmp_path / "run").exists()


def test_toml_that_is_not_utf8(tmp_path, capsys):
    config = tmp_path / "sweep.toml"
    config.write_bytes(b'variants = ["na\xefve"]\n\xff\xfe')
    assert_one_line_error(in_process(capsys, "sweep", "--config", str(config), "--out", str(tmp_path / "run")), "not UTF-8")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A finished one-case run (sdpa, N=32), swept once for the tests that only read it or must leave it as it is."""
    run = tmp_path_factory.mktemp("tiny") / "run"
    done = attnbench("sweep", "--variants", "sdpa", "--seq-lens", "32", "--heads", "1", "--max-time", "0.05", "--out", str(run))
    assert done.returncode == 0, done.stderr
    return run


def test_bad_output_paths_of_export_report_and_calibrate(tiny_run, tmp_path, capsys):
    run = str(tiny_run)
    assert_one_line_error(in_process(capsys, "export", run, "--out", "/nonexistent/dir/x.json"), "no such directory")
    assert_one_line_error(in_process(capsys, "export", run, "--out", str(tmp_path)), "is a directory")
    existing = tmp_path / "existing.html"
    existing.write_text("keep me")
    assert_one_line_error(in_process(capsys, "report", run, "--out", str(existing)), "is a file")
    assert existing.read_text() == "keep me"
    assert_one_line_error(in_process(capsys, "calibrate", "--threads", "99999999999"), "--threads", "99999999999")
    report = in_process(capsys, "report", run, "--baseline", "sdap", "--out", str(tmp_path / "r"))
    assert_one_line_error(report, "--baseline sdap: no such variant", "they hold sdpa")


def test_compare_of_runs_with_no_case_in_common(tiny_run, tmp_path):
    other = tmp_path / "other"
    done = attnbench("sweep", "--variants", "sdpa", "--seq-lens", "64", "--heads", "1", "--max-time", "0.05", "--out", str(other))
    assert done.returncode == 0, done.stderr
    assert_one_line_error(attnbench("compare", str(tiny_run), str(other)), "nothing to compare")


def test_unknown_toml_key(tmp_path, capsys):
    config = tmp_path / "sweep.toml"
    config.write_text('seq_lens = [128]\ncolour = "red"\n')
    assert_one_line_error(
        in_process(capsys, "sweep", "--config", str(config), "--out", str(tmp_path / "run")), "unknown key 'colour'"
    )


def test_bad_value_in_toml(tmp_path, capsys):
    config = tmp_path / "sweep.toml"
    config.write_text('seq_lens = "128:64:x2"\n')
    assert_one_line_error(in_process(capsys, "sweep", "--config", str(config), "--out", str(tmp_path / "run")), "below start")


def test_out_dir_that_is_a_file(tmp_path):
    out = tmp_path / "file"
    out.write_text("not a directory")
    result = attnbench("sweep", "--variants", "sdpa", "--seq-lens", "32", "--out", str(out))
    assert_one_line_error(result, "is a file")
    assert out.read_text() == "not a directory"


def test_resume_of_another_sweeps_directory(tiny_run):
    out = tiny_run
    before = snapshot(out)
    again = attnbench("sweep", "--variants", "sdpa", "--seq-lens", "64", "--out", str(out), "--resume")
    assert_one_line_error(again, "other settings", "--seq-lens [32] -> [64]", "--max-time 0.05 -> 1.0")
    assert snapshot(out) == before, "nothing written"
    fresh = attnbench("sweep", "--variants", "sdpa", "--seq-lens", "32", "--heads", "1", "--out", str(out))
    assert_one_line_error(fresh, "already holds a sweep", "--resume")
    assert snapshot(out) == before


@pytest.mark.parametrize("resume", [[], ["--resume"]])
def test_a_folder_of_results_without_their_cases_is_never_overwritten(tiny_run, tmp_path, capsys, resume):
    out = tmp_path / "copied"
    out.mkdir()
    for name in ("results.parquet", "results.csv", "env.json"):  # what a user copies to keep a run
        (out / name).write_bytes((tiny_run / name).read_bytes())
    before = snapshot(out)
    result = in_process(capsys, "sweep", "--variants", "sdpa", "--seq-lens", "32", "--out", str(out), *resume)
    assert_one_line_error(result, "holds results.parquet, results.csv, env.json but no cases.jsonl", "another --out")
    assert {k: v for k, v in snapshot(out).items() if not k.endswith(".lock")} == before  # the lock it took aside


def test_unknown_command_and_flag():
    assert_one_line_error(attnbench("frobnicate"), "invalid choice")
    assert_one_line_error(attnbench("sweep", "--frobnicate"), "unrecognized arguments")
