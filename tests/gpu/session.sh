#!/usr/bin/env bash
# A lent GPU machine's session, in one call (its device time is short and each start costs minutes):
#   1. the CUDA tests (the suite's cuda-parametrized cases and tests/test_cuda_path.py),
#   2. the reference GPU sweep (the gpu preset) into results/reference-<gpu>/, resumable,
#   3. the measurement core's self-check on CUDA (timer against triton's do_bench, memory, ceilings).
# Runs under the machine's own python3 and torch; everything lands in $OUT (logs, the run folder as a tarball).
# Usage: bash tests/gpu/session.sh [SWEEP_SECONDS]   (a second call with the run folder carried resumes it)
set -uo pipefail
out="${OUT:-/tmp/gpu-session}"; mkdir -p "$out"
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
sweep_s="${1:-170}"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.version.cuda, torch.cuda.get_device_name())" | tee -a "$out/gpu.txt"
# "NVIDIA H200" -> h200, "NVIDIA H100 80GB HBM3" -> h100-80gb-hbm3
gpu="$(python3 -c "import torch; print(torch.cuda.get_device_name().lower().removeprefix('nvidia ').replace(' ', '-'))")"
run="results/reference-$gpu"

if [ ! -f "$run/cases.jsonl" ]; then
  # Correctness on CUDA in parallel (xdist); the timer tests alone, so no other process shares the GPU.
  timeout 150 python3 -m pytest -q -p no:cacheprovider -n 8 -k cuda tests/test_variants.py tests/test_layer.py \
    tests/test_registry.py tests/test_memory.py tests/test_cli_errors.py 2>&1 | tee "$out/pytest-cuda.log" | tail -25
  timeout 100 python3 -m pytest -q -p no:cacheprovider tests/test_cuda_path.py tests/test_timing.py -k "cuda or graph" 2>&1 \
    | tee "$out/pytest-cuda-path.log" | tail -25
fi

resume=(); [ -f "$run/sweep.json" ] && resume=(--resume)
timeout "$sweep_s" python3 -m harness.cli sweep --preset gpu --out "$run" "${resume[@]}" 2>&1 | tee "$out/sweep.log" | tail -40
tar czf "$out/run.tar.gz" "$run"

timeout 70 python3 -m harness.verify.selfcheck --device cuda 2>&1 | tee "$out/selfcheck.log" | tail -40
