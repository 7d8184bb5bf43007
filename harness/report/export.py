"""A harness run as a pytest-benchmark JSON document.

``pytest-benchmark compare``, its ``--benchmark-compare`` and the tools built
on its storage read this format; exporting a run lets them read harness runs
too. Statistics are computed by pytest-benchmark's own `Stats` from the run's
raw samples, so every field means what pytest-benchmark users expect (its
quartiles use a different interpolation from the harness's; medians agree).
"""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone

import pandas as pd
import pytest_benchmark
from pytest_benchmark.stats import Stats


def _benchmark(row: dict) -> dict:
    stats = Stats()
    for sample in row["time_samples_s"]:
        stats.update(float(sample))
    shape = "full" if row["mask"] == "none" else str(row["mask"])  # "full", "causal", "sliding:256", ...
    if row.get("score_mod", "none") != "none":
        shape += f"-{row['score_mod']}"
    if int(row["heads_kv"]) != int(row["heads"]):
        shape += f"-kv{int(row['heads_kv'])}"
    if int(row["q_len"]) != int(row["seq_len"]):
        shape += f"-q{int(row['q_len'])}"
    params = {"seq_len": int(row["seq_len"]), "dtype": row["dtype"], "mode": row["mode"],
              "device": row["device"], "batch": int(row["batch"]), "heads": int(row["heads"]),
              "head_dim": int(row["head_dim"]), "mask": row["mask"], "score_mod": row.get("score_mod", "none"),
              "heads_kv": int(row["heads_kv"]), "q_len": int(row["q_len"])}  # fmt: skip
    param = f"{row['device']}-{row['dtype']}-{row['mode']}-{shape}-N{int(row['seq_len'])}"
    return {
        "group": f"{row['device']} {row['dtype']} {row['mode']} {shape}",
        "name": f"{row['variant']}[{param}]",
        "fullname": f"attnbench::{row['variant']}[{param}]",
        "params": params,
        "param": param,
        "extra_info": {
            "case_id": row["case_id"],
            "run_id": row["run_id"],
            "variant": row["variant"],
            "block_size": int(row["block_size"]),
            "peak_mem_bytes": None if pd.isna(row["peak_mem_bytes"]) else int(row["peak_mem_bytes"]),
            "gflops_per_s": None if pd.isna(row["gflops_per_s"]) else float(row["gflops_per_s"]),
            "rel_err": None if pd.isna(row["rel_err"]) else float(row["rel_err"]),
        },
        "options": {"timer": "perf_counter_ns" if row["device"] == "cpu" else "cuda_event", "min_rounds": 5},
        "stats": {**stats.as_dict(), "data": list(stats.data), "iterations": int(row["block_size"])},
    }


def to_pytest_benchmark(frame: pd.DataFrame, env: dict) -> dict:
    """The JSON document: machine_info, commit_info, one benchmark per ``ok`` case."""
    ok = frame[frame["status"] == "ok"]
    commit = env.get("git_commit") or ""
    return {
        "machine_info": {
            "node": platform.node(),
            "processor": env.get("cpu"),
            "machine": platform.machine(),
            "python_implementation": platform.python_implementation(),
            "python_version": env.get("python"),
            "release": platform.release(),
            "system": platform.system(),
            "cpu": {"brand_raw": env.get("cpu"), "count": env.get("cpu_count")},
            "torch": env.get("torch"),
            # env.json's "gpu" facts (older runs: a "gpus" list of names)
            "gpus": [d["name"] for d in (env.get("gpu") or {}).get("devices", [])] or env.get("gpus", []),
        },
        "commit_info": {"id": commit.removesuffix("-dirty"), "dirty": commit.endswith("-dirty"), "project": "attnbench"},
        "benchmarks": [_benchmark(row) for row in ok.to_dict("records")],
        "datetime": datetime.now(timezone.utc).isoformat(),
        "version": pytest_benchmark.__version__,
    }


def write_pytest_benchmark(frame: pd.DataFrame, env: dict, path) -> int:
    """Write the document to ``path``; returns the number of benchmarks."""
    document = to_pytest_benchmark(frame, env)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2)
    return len(document["benchmarks"])
