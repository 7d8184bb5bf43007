"""Whether a row's achieved rate is possible on the machine that measured it. Pure: no torch.

A kernel cannot beat the machine's own best dense matmul by much: the calibrated ceiling
(`harness.measure.ceilings`) is that matmul's GFLOP/s for the dtype. A row above IMPOSSIBLE_FACTOR x
the ceiling did not do the work its FLOP count says (a cached or skipped computation the output
checks missed, or a wrong work model), so it is an ``error`` and out of every finding. The factor is
wide on purpose: ceilings are cached per machine and this VM's fp32 ceiling read 182 and 436 GFLOP/s
on two days (2.4x), while the cheat this guards against read 2181 against 70 (31x). Decode rows are
not judged: they are bandwidth-bound, and a cache-resident KV legitimately beats the DRAM copy rate.
"""

from __future__ import annotations

IMPOSSIBLE_FACTOR = 3.0


def impossible(record: dict, ceilings: dict) -> str | None:
    """Why ``record``'s GFLOP/s cannot be, against ``ceilings`` (env.json's, by device), or None."""
    rate, device = record.get("gflops_per_s"), str(record.get("device", "")).split(":")[0]
    ceiling = (ceilings.get(device) or ceilings.get(record.get("device")) or {}).get("matmul_gflops", {}).get(record.get("dtype"))
    if record.get("status") != "ok" or record.get("mode") == "decode" or not rate or not ceiling:
        return None
    if rate <= IMPOSSIBLE_FACTOR * ceiling:
        return None
    return (f"impossible: {rate:.0f} GFLOP/s is {rate / ceiling:.0f}x the {ceiling:.0f} GFLOP/s this machine's best "
            f"{record.get('dtype')} matmul reaches (beyond {IMPOSSIBLE_FACTOR:g}x: the work was not done)")  # fmt: skip
