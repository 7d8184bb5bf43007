"""The canary: a fixed reference kernel timed beside every round, so a round knows the machine's speed.

A VM's host can slow every vCPU at once (another guest's load, a frequency
change, a noisy memory neighbour) without this process ever waiting on a run
queue: the scheduler probe of `harness.measure.interference` cannot see it,
and the round's time is simply slower. The canary can. It is the same work
in every round of every case — a (256 x 256) @ (256 x 256) matmul in
float32, 33.6 MFLOP a call, compute-bound, on the case's device and threads
— timed by the harness's own timer for about 10 ms. Its time, against the
sweep's usual canary time, is the round's speed index (1.0: as usual; 0.8:
the machine ran 20 % slower). Measured on a 2-core VM: within one quiet
process the canary's blocks spread by 2-4 % (IQR/median); a process whose
sdpa median read 18 % slow had a canary 14 % slow.

Rounds whose canary moved beyond `SLOW_TOLERANCE` are re-taken, then marked
(`harness.measure.rounds`).
"""

from __future__ import annotations

import torch

from .timing import time_callable

CANARY_SIZE = 256
CANARY_FLOPS = 2 * CANARY_SIZE**3
CANARY_MAX_TIME_S = 0.02
CANARY_MIN_TIME_S = 0.008


def canary_time(device: str = "cpu") -> float:
    """Seconds per call of the canary matmul on ``device`` (this process's threads), median of ~10 ms of blocks."""
    gen = torch.Generator().manual_seed(0)
    # float32 by name: a plugin may have changed the process's default dtype, and a float64 canary runs 2x slow
    a, b = (torch.randn(CANARY_SIZE, CANARY_SIZE, generator=gen, dtype=torch.float32).to(device) for _ in range(2))
    return time_callable(
        lambda: torch.mm(a, b), device, max_time_s=CANARY_MAX_TIME_S, min_time_s=CANARY_MIN_TIME_S, replay_launch_bound=False
    ).median  # a GPU's is launch-bound, and only recorded (rounds)
