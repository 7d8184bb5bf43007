"""The CUDA path: what the parent learns without a context, device indices, the timer's device, env facts.

The CPU-side tests run everywhere; the ones that need a GPU skip without one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.measure.case import Case
from harness.measure.ceilings import cache_key
from harness.measure.device import DeviceError, check_device
from harness.measure.env import capture_env
from harness.measure.gpu import facts, isolated
from harness.measure.measure_case import measure_case
from harness.run.folder import RunError
from harness.run.runner import run_sweep
from harness.run.sweep import Sweep

ROOT = Path(__file__).resolve().parent.parent
CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device")


def test_the_gpu_probe_answers_from_a_throwaway_process():
    probed = isolated("harness.measure.gpu", "facts")
    assert probed == {**facts(), "devices": probed["devices"]}  # free memory moves between reads
    assert set(facts()["tf32"]) == {"matmul", "cudnn", "float32_matmul_precision"}
    with pytest.raises(RuntimeError, match=r"the GPU probe \(harness.measure.gpu bogus\) failed: usage:"):
        isolated("harness.measure.gpu", "bogus")
    # The calibration a CUDA sweep's parent runs this way, here for the CPU (cached once measured).
    assert isolated("harness.measure.ceilings", "cpu")["matmul_gflops"]["float32"] > 0


def test_a_device_may_be_named_with_its_index():
    for name, needle in (("cuda:x", "unknown device 'cuda:x'"), ("cpu:1", "unknown device"), ("gpu", "use cpu, cuda or cuda:N")):
        with pytest.raises(DeviceError, match=needle):
            check_device(name)
    if CUDA:
        assert check_device("cuda:0") == "cuda:0"
        with pytest.raises(DeviceError, match="CUDA device"):
            check_device(f"cuda:{torch.cuda.device_count()}")
    else:
        with pytest.raises(DeviceError, match="cuda:0 is not available"):
            check_device("cuda:0")


def test_a_gpus_ceilings_are_cached_whatever_the_hosts_threads():
    assert cache_key("cuda", "NVIDIA H100", 2) == cache_key("cuda", "NVIDIA H100", 16)
    assert cache_key("cpu", "AMD EPYC", 2) != cache_key("cpu", "AMD EPYC", 16)


def test_rows_name_their_timer_and_env_its_tf32_and_gpu_facts():
    record = measure_case(Case("sdpa", 64, heads=1, head_dim=16, threads=1), max_time_s=0.02, memory=False)
    assert record.status == "ok" and record.timer == "perf_counter_ns"
    env = capture_env()
    assert env["tf32"]["float32_matmul_precision"] == torch.get_float32_matmul_precision()
    assert (env["gpu"] is None) == (not CUDA)


def test_ray_refuses_an_indexed_gpu_before_anything_is_written(tmp_path):
    with pytest.raises(RunError, match="name the device cuda, not cuda:N"):
        run_sweep(Sweep(variants=("sdpa",), devices=("cuda:1",), seq_lens=(64,)), tmp_path / "run", executor="ray")
    assert not (tmp_path / "run").exists()


@needs_cuda
def test_a_cuda_sweep_leaves_its_parent_without_a_cuda_context(tmp_path):
    # A fresh process: this one may have initialised CUDA in another test.
    script = (
        "import json, torch; from harness import build_sweep, run_sweep; "
        f"run_sweep(build_sweep(variants='sdpa,naive', devices='cuda', seq_lens='128,256', heads='2'), {str(tmp_path / 'run')!r},"
        " progress=False); print(json.dumps(torch.cuda.is_initialized()))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "false"  # calibration, budget and names came from probes
    env = json.loads((tmp_path / "run" / "env.json").read_text())
    assert env["gpu"]["devices"] and env["ceilings"]["cuda"]["matmul_gflops"]["float32"] > 0
    import pandas as pd

    rows = pd.read_parquet(tmp_path / "run" / "results.parquet")
    assert (rows["status"] == "ok").all() and (rows["timer"] == "cuda_event").all()
    assert set(rows["device_name"]) == {env["gpu"]["devices"][0]["name"]}


@pytest.mark.skipif(not CUDA or torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_the_timer_times_the_cases_device_not_the_current_one():
    from harness.measure.timing import time_callable

    cycles = 10_000_000  # ~5 ms at 2 GHz, on cuda:1 only; events on cuda:0's stream would see nothing

    def sleep_on_1():
        with torch.cuda.device(1):
            torch.cuda._sleep(cycles)

    measured = time_callable(sleep_on_1, "cuda:1", max_time_s=0.5)
    assert measured.median > 1e-3


def test_a_call_the_host_cannot_feed_fast_enough_is_flagged_launch_bound():
    from harness.measure.cuda_timing import launch_bound_warning

    assert launch_bound_warning([5e-3] * 5, [20e-6] * 5) == ()  # a deep queue: the device is the bottleneck
    [warning] = launch_bound_warning([110e-6] * 5, [100e-6] * 5)  # each kernel done before the next is queued
    assert warning.startswith("launch-bound: 110 us on the device per call against 100 us for the host")


def test_cuda_graphs_are_asked_for_cuda_cases_only():
    from harness.measure.parsers import SweepError
    from harness.measure.timing import time_callable
    from harness.run.sweep import build_sweep

    with pytest.raises(ValueError, match="true only on a CUDA device"):
        Case("sdpa", 64, cuda_graphs=True)
    with pytest.raises(ValueError, match="cpu is not a CUDA device"):
        time_callable(lambda: None, "cpu", graphs=True)
    with pytest.raises(SweepError, match="--cuda-graphs times CUDA graph replays; this sweep's devices are cpu"):
        build_sweep(cuda_graphs=True)
    with pytest.raises(SweepError, match="--cuda-graphs: expected true or false"):
        build_sweep(cuda_graphs="maybe")
    # Off, the case's id is the one older runs recorded; on, it is another case.
    assert Case("sdpa", 64, threads=1).case_id == Case("sdpa", 64, threads=1, cuda_graphs=False).case_id == "fd2fc99ed19a2c8b"
    if CUDA:
        assert Case("sdpa", 64, device="cuda", cuda_graphs=True).case_id != Case("sdpa", 64, device="cuda").case_id


@needs_cuda
def test_graph_replays_time_the_kernels_without_the_launch_gaps():
    from harness.measure.timing import time_callable

    a = torch.randn(4096, 4096, device="cuda")
    big = time_callable(lambda: a @ a, "cuda", max_time_s=0.3), time_callable(lambda: a @ a, "cuda", graphs=True, max_time_s=0.3)
    assert [m.clock for m in big] == ["cuda_event", "cuda_graph"]
    assert 0.8 < big[1].median / big[0].median < 1.25  # one long kernel: no gaps to remove

    x = torch.zeros(256, device="cuda")

    def many_tiny_kernels():
        for _ in range(200):
            x.add_(1)

    events = time_callable(many_tiny_kernels, "cuda", max_time_s=0.3, replay_launch_bound=False)
    graph = time_callable(many_tiny_kernels, "cuda", graphs=True, max_time_s=0.3)
    assert events.clock == "cuda_event" and any(w.startswith("launch-bound") for w in events.warnings)
    assert graph.clock == "cuda_graph" and not any(w.startswith("launch-bound") for w in graph.warnings)
    assert graph.median < events.median / 2  # 200 launches from Python against one graph launch
    replayed = time_callable(many_tiny_kernels, "cuda", max_time_s=0.3)  # by default: re-timed as replays, and says so
    assert replayed.clock == "cuda_graph" and replayed.warnings[0].startswith("timed as CUDA graph replays")


@needs_cuda
def test_a_call_no_graph_can_hold_is_timed_with_events_and_says_why():
    from harness.measure.timing import time_callable

    x = torch.ones(1024, device="cuda")
    m = time_callable(lambda: (x * 2).sum().item(), "cuda", graphs=True, max_time_s=0.1)  # .item() syncs the host
    assert m.clock == "cuda_event" and any(w.startswith("no CUDA graph (") for w in m.warnings)
    assert time_callable(lambda: x * 2, "cuda", graphs=True, max_time_s=0.1).clock == "cuda_graph"  # CUDA still works


@needs_cuda
@pytest.mark.parametrize("mode", ["fwd", "fwd_bwd"])
def test_a_case_asking_for_graphs_gets_them_and_its_row_says_so(mode):
    case = Case("sdpa", 1024, device="cuda", dtype="bfloat16", mode=mode, heads=4, cuda_graphs=True)
    record = measure_case(case, max_time_s=0.1)
    assert record.status == "ok", record.reason
    assert record.timer == "cuda_graph" and record.cuda_graphs is True, record.warnings


def test_the_driver_version_is_read_from_the_kernel_module(tmp_path, monkeypatch):
    from harness.measure import gpu

    # The first line of /proc/driver/nvidia/version in the formats of NVIDIA's open and proprietary kernel modules.
    for line, version in (
        ("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  (dvs-builder@U22)", "580.159.04"),
        ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023", "535.104.05"),
    ):
        (tmp_path / "version").write_text(line + "\nGCC version:  gcc version 12.3.0\n")
        monkeypatch.setattr(gpu, "DRIVER_FILE", tmp_path / "version")
        assert gpu.driver_version() == version
    monkeypatch.setattr(gpu, "DRIVER_FILE", tmp_path / "absent")
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi either: nothing to report, not a guess
    assert gpu.driver_version() is None


@needs_cuda
def test_a_call_that_copies_from_pageable_memory_is_never_called_launch_bound():
    from harness.measure.timing import time_callable

    host = torch.ones(4096)  # pageable: each copy makes the host wait for the stream
    m = time_callable(lambda: host.to("cuda") * 2, "cuda", max_time_s=0.1)
    assert m.clock == "cuda_event" and not any(w.startswith("launch-bound") for w in m.warnings), m.warnings


@needs_cuda
@pytest.mark.parametrize(("variant", "mode", "mask"), [("sdpa", "decode", "causal"), ("naive", "decode", "causal"),
                                                       ("sdpa", "fwd", "sliding:256"), ("sdpa", "fwd", "docs:4")])  # fmt: skip
def test_masked_calls_make_no_host_copy_so_a_graph_holds_them(variant, mode, mask):
    # The H200 run's first pass: each of these copied a mask's rows from the host every call (host-synchronizing).
    case = Case(variant, 1024, device="cuda", dtype="bfloat16", mode=mode, mask=mask, heads=4, cuda_graphs=True)
    record = measure_case(case, max_time_s=0.1)
    assert record.status == "ok" and record.timer == "cuda_graph", (record.reason, record.warnings)


def test_the_empty_rows_of_a_mask_are_decided_on_the_host_once():
    from variants.common import _empty_rows
    from variants.masks import Mask

    assert _empty_rows(Mask("causal-br"), 1, 1024, torch.device("cpu")) is None  # decode: every query sees keys
    empty = _empty_rows(Mask("causal-br"), 4, 2, torch.device("cpu"))  # 4 queries, 2 keys: the first two see none
    assert empty.tolist() == [True, True, False, False]
    assert _empty_rows(Mask("causal-br"), 4, 2, torch.device("cpu")) is empty  # made once
