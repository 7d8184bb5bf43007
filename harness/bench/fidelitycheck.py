"""Print what the fidelity columns cost a sweep over input families: their time against the whole case's.

    python -m harness.bench.fidelitycheck

For each case of the families reference sweep (`results/families-cpu`: seven approximations, six input
families, N = 1024; at 4096 there are no fidelity columns), in one process on the sweep's threads: the time of
the whole first-pass `measure_case` (accuracy, the fidelity columns, timing at its cap, memory and the trust
checks) and, on the same inputs, of `harness.measure.fidelity.measure_fidelity` alone. Later rounds time the
case again without them, so the last line sets the total against the committed sweep's 125 s. A benchmark,
not a test.
"""

from __future__ import annotations

import time

import torch

from variants import get_variant

from ..measure.allocator import pin_allocator
from ..measure.case import make_inputs
from ..measure.fidelity import measure_fidelity
from ..measure.measure_case import measure_case, reference_mask
from ..run.sweep import build_sweep, expand

VARIANTS = "linear-elu,performer-64,performer-256,nystrom-32,nystrom-64,linformer-128,linformer-256"
INPUTS = "gaussian,peaked:4,local:64,lowrank:8,clustered:8,trained"
SWEEP_WALL_S = 125.0  # the committed run's wall time (docs/reference-runs.md)


def main() -> int:
    pin_allocator()
    cases = expand(build_sweep("quick", variants=VARIANTS, seq_lens="1024", inputs=INPUTS))
    fidelity_s = case_s = 0.0
    shares: dict[str, list[float]] = {}
    for case in cases:
        started = time.perf_counter()
        measure_case(case, max_time_s=1.0 / 3, rounds=3)
        whole = time.perf_counter() - started
        torch.set_num_threads(case.threads)
        q, k, _ = make_inputs(case)
        spec = get_variant(case.variant)
        started = time.perf_counter()
        measure_fidelity(spec, q, k, mask=case.mask, score_mod=case.score_mod, seed=case.seed,
                         reference=reference_mask(spec, case))  # fmt: skip
        alone = time.perf_counter() - started
        fidelity_s, case_s = fidelity_s + alone, case_s + whole
        shares.setdefault(case.variant, []).append(alone / whole)
        print(f"{case.variant:>14} {case.inputs.spec:<12} fidelity {alone * 1e3:6.1f} ms, whole first pass {whole * 1e3:7.1f} ms")
    for variant, share in sorted(shares.items()):
        print(f"{variant}: fidelity {min(share):.0%}-{max(share):.0%} of its first pass")
    print(f"total: fidelity {fidelity_s:.1f} s over {len(cases)} cases (first passes {case_s:.1f} s); "
          f"{fidelity_s / SWEEP_WALL_S:.1%} of the committed sweep's {SWEEP_WALL_S:.0f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
