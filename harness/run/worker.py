"""A measurement worker process: cases in on stdin, records out, one JSON line each.

A request is ``{"case": {...}, "max_time_s": S, "round": R, "rounds": K, "references": DIR}`` (answered
with a record; rounds after the first are timing only, `harness.measure.rounds`; DIR, where the float64
references are shared, `harness.measure.reference_cache`),
``{"map": VARIANT}`` (answered with its attention map, `harness.measure.attention_map`) or
``{"check": VARIANT, "which": CHECK, "device": D}`` (answered with one
`harness.verify.checks.CheckResult`).

    python -m harness.run.worker [--plugin P]... [--memory-limit BYTES]

Started by the runner through `harness.run.client.Worker` (forked from `harness.run.forkserver`, or run as a
module), one per variant and round, and replaced after any failure, so a
crashing or hanging kernel takes down only this process. The protocol has the
original stdout to itself: fd 1 is pointed at stderr first, so whatever a
variant prints cannot corrupt a record. Under ``--memory-limit`` the address
space is capped, so an oversized allocation fails inside this process (and is
recorded as ``oom``) instead of waking the kernel's OOM killer.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import resource
import sys

from .reaper import die_with_parent


def _limit_address_space(extra_bytes: int) -> None:
    """Cap the address space at what is mapped now plus ``extra_bytes``."""
    with open("/proc/self/status") as status:
        vm_size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = vm_size + extra_bytes
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.run.worker")
    parser.add_argument("--plugin", action="append", default=[])
    parser.add_argument("--memory-limit", type=int, default=0, help="bytes beyond the current mapping; 0: none")
    parser.add_argument("--allocator", choices=("pinned", "system"), default="pinned")
    args = parser.parse_args(argv)

    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints from variants go to the log, not into the protocol
    sys.stdout = sys.stderr
    faulthandler.enable()  # a segfault leaves a Python traceback in the log
    die_with_parent()  # no worker outlives the process that started it

    from dataclasses import asdict

    from variants.masks import parse_mask
    from variants.plugins import load_plugins

    from ..measure.allocator import pin_allocator
    from ..measure.attention_map import attention_map
    from ..measure.case import Case
    from ..measure.measure_case import measure_case
    from ..verify.checks import run_check

    if args.allocator == "pinned":
        pin_allocator()
    state = torch_state()  # before any plugin: a plugin's import changes nothing for later requests either
    load_plugins(args.plugin, probe=False)  # a plugin that ends this process at import is this worker's crash
    if args.memory_limit:
        _limit_address_space(args.memory_limit)
    protocol.write(json.dumps({"ready": os.getpid()}) + "\n")

    for line in sys.stdin:
        request = json.loads(line)
        restore_torch_state(state)  # what a variant changed globally (default dtype, grad mode) reaches no other
        if "map" in request:  # an attention map for the report (harness.measure.attention_map)
            reply = attention_map(request["map"], mask=parse_mask(request.get("mask")), inputs=request.get("inputs"))
        elif "check" in request:  # one contract check (harness.verify.checks)
            reply = asdict(run_check(request["check"], request["which"], device=request["device"]))
        else:
            case, timing_only = Case(**request["case"]), request.get("round", 0) > 0
            reply = measure_case(case, max_time_s=request["max_time_s"], timing_only=timing_only,
                                 rounds=request.get("rounds", 1), references=request.get("references")).to_dict()  # fmt: skip
        protocol.write(json.dumps(reply) + "\n")
    return 0


def torch_state() -> tuple:
    """The process-wide torch settings a variant could change for every later call: (default dtype, grad mode,
    intra-op threads, deterministic algorithms)."""
    import torch

    deterministic = torch.are_deterministic_algorithms_enabled()
    return torch.get_default_dtype(), torch.is_grad_enabled(), torch.get_num_threads(), deterministic


def restore_torch_state(state: tuple) -> None:
    """Put back what `torch_state` recorded, touching only what changed: ``use_deterministic_algorithms``
    costs 0.2 s a call here even when nothing changes, which over a sweep's requests added 2 s to a 5 s sweep."""
    import torch

    if torch_state() == state:
        return
    dtype, grad, threads, deterministic = state
    torch.set_default_dtype(dtype)
    torch.set_grad_enabled(grad)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    if torch.are_deterministic_algorithms_enabled() != deterministic:
        torch.use_deterministic_algorithms(deterministic)


if __name__ == "__main__":
    sys.exit(main())
