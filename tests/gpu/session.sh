#!/usr/bin/env bash
# A lent GPU machine's session, in one call (its device time is short and each start costs minutes):
#   1. what the machine is (GPU, driver, torch, NVML, xformers) and the CUDA tests, time-boxed;
#   2. the reference GPU sweep (the gpu preset, harness/run/presets.py) until the deadline, resumable;
#   3. the measurement core's self-check against triton's do_bench, if time is left.
# Runs under the machine's own python3 and torch. Wheels in .carry/ (nvidia-ml-py, xformers; `run`'s carry)
# are unpacked onto PYTHONPATH where the machine lacks them. Everything lands in $OUT (six files: `run` returns
# eight): the logs, and the run folder as a tarball refreshed every 20 s, so a call cut short still returns
# every finished round (each is a line of its cases.jsonl).
# Usage: bash tests/gpu/session.sh [SECONDS]   (default 540: the whole script's budget; a second call resumes)
#        Before the call, on the machine that sends the tree: `git describe --always --dirty --abbrev=40 >
#        .carry/commit` (the copy's .git may be older than its files; env.json then names the commit sent).
#        bash tests/gpu/session.sh --dry-run  (no GPU: the same steps on the CPU at tiny shapes, a rehearsal)
set -uo pipefail
out="${OUT:-/tmp/gpu-session}"; mkdir -p "$out"
export PYTHONUNBUFFERED=1
dry=0; budget=540
case "${1:-}" in --dry-run) dry=1; budget=400 ;; "") ;; *) budget="$1" ;; esac
deadline=$(( $(date +%s) + budget ))
left() { echo $(( deadline - $(date +%s) )); }
log() { echo "[session $(date +%T), $(left) s left] $*" | tee -a "$out/session.log"; }

# Carried wheels: unpacked where the module is missing (a pure-python nvidia-ml-py; xformers built on torch's stable ABI).
site=/tmp/attnbench-carry; mkdir -p "$site"
for wheel in .carry/*.whl; do
  [ -f "$wheel" ] || continue
  module="$(basename "$wheel" | sed -e 's/^nvidia_ml_py.*/pynvml/' -e 's/^xformers.*/xformers/')"
  python3 -c "import $module" 2>/dev/null || python3 -m zipfile -e "$wheel" "$site"
done
export PYTHONPATH="$PWD:$site"
[ -s .carry/commit ] && export ATTNBENCH_GIT_COMMIT="$(cat .carry/commit)"

{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
  python3 -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name())"
  python3 -c "import pynvml; pynvml.nvmlInit(); print('nvml', pynvml.nvmlSystemGetDriverVersion())"
  python3 -c "import xformers, xformers.ops; print('xformers', xformers.__version__)"
  python3 -m xformers.info 2>&1 | grep -i "memory_efficient\|flash\|cutlass\|build" | head -12
  git config core.fileMode false  # a copied tree may lose exec bits; content decides "-dirty"
  git status --porcelain --untracked-files=no | head -5
} > "$out/machine.txt" 2>&1
cat "$out/machine.txt"

if [ "$dry" = 1 ]; then
  gpu=dry-run-cpu
  shrink=(--device cpu --dtype float32 --seq-lens 256 --heads 2 --kv-heads 1 --head-dim 32 --batch 1 --max-time 0.05 --rounds 1)
else
  gpu="$(python3 -c "import torch; print(torch.cuda.get_device_name().lower().removeprefix('nvidia ').replace(' ', '-'))")"
  shrink=()
fi
run="/tmp/attnbench-gpu/reference-$gpu"  # outside the tree: the tree stays as committed, its commit clean

if [ ! -f "$run/cases.jsonl" ]; then
  log "CUDA tests"
  xdist=(); python3 -c "import xdist" 2>/dev/null && xdist=(-n 8)
  # The new CUDA paths first, in a box of their own: on 2026-11-30 a box that also held the whole of
  # test_cuda_path.py (a CUDA sweep with its calibration) ran out at 60 s before printing anything.
  timeout 45 python3 -m pytest -q -p no:cacheprovider tests/test_gpu_sensor.py tests/test_cuda_path.py \
    -k "nvml or clock or launch or graph or host_copy or pageable or energy" 2>&1 | tee "$out/pytest.log" | tail -15
  timeout 60 python3 -m pytest -q -p no:cacheprovider tests/test_cuda_path.py tests/test_timing.py \
    -k "cuda and not (nvml or clock or launch or graph or host_copy or pageable or energy)" 2>&1 | tee -a "$out/pytest.log" | tail -15
  timeout 60 python3 -m pytest -q -p no:cacheprovider "${xdist[@]}" -k cuda tests/test_variants.py tests/test_kv_lens.py \
    tests/test_memory.py 2>&1 | tee -a "$out/pytest.log" | tail -15
fi

resume=(); [ -f "$run/sweep.json" ] && resume=(--resume)
sweep_s=$(( $(left) - 40 )); [ "$sweep_s" -ge 30 ] || sweep_s=30  # timeout 0 would mean no limit
log "sweep for up to $sweep_s s into $run"
snapshot() {  # a name of its own per snapshot: the last one never writes over a loop's unfinished one
  local part="$out/run.tar.part.$BASHPID"
  [ -d "$run" ] || return 0
  if tar czf "$part" -C "$(dirname "$run")" "$(basename "$run")" 2>/dev/null; then mv "$part" "$out/run.tar.gz"; else rm -f "$part"; fi; }
( while sleep 20; do snapshot; done ) & snapshots=$!
timeout -s TERM "$sweep_s" python3 -m harness.cli sweep --preset gpu --out "$run" "${resume[@]}" "${shrink[@]}" \
  > "$out/sweep.log" 2>&1
log "sweep exit $? ($(grep -c . "$run/cases.jsonl" 2>/dev/null) records)"
kill "$snapshots"; wait "$snapshots" 2>/dev/null; snapshot
tail -25 "$out/sweep.log"

if [ "$(left)" -gt 45 ] && [ "$dry" = 0 ]; then
  log "self-check"
  timeout $(( $(left) - 10 )) python3 -m harness.bench.selfcheck --device cuda 2>&1 | tee -a "$out/pytest.log" | tail -30
fi
log "done"
