"""One-off requests answered by a worker process: attention maps for the report, contract checks.

Run out of process for the same reason cases are: a variant that crashes,
hangs or kills its process costs the one answer it was asked for, which
records how it failed, and a fresh worker answers the rest.
"""

from __future__ import annotations

import json
from pathlib import Path

from variants import get_variant
from variants.plugins import plugins_for

from ..measure.case import Case
from ..verify.checks import checks_for
from .budget import worker_memory_limit
from .client import Worker, WorkerDied
from .files import write_text_atomic
from .forkserver import ForkServer
from .results import LOG_FILE, MAPS_FILE


class Errands:
    """One worker process, started on first use and replaced after it dies or overruns."""

    def __init__(
        self, plugins: list[str], log: Path, memory_limit: int, timeout: float, server: ForkServer | None = None
    ) -> None:
        self.plugins, self.log, self.memory_limit, self.timeout = plugins, log, memory_limit, timeout
        self.server = server  # forked from the sweep's own server when it has one (a second costs ~1 s to start)
        self.worker: Worker | None = None

    def ask(self, message: dict) -> dict:
        """The worker's reply, or {"status": "crash" or "timeout", "reason": how} when there is none."""
        try:
            self.worker = self.worker or Worker(self.plugins, 1, self.memory_limit, self.log, server=self.server)
            reply = self.worker.ask(message, self.timeout)
        except WorkerDied as died:
            self.worker = None
            return {"status": "crash", "reason": str(died)}
        if reply is None:  # the worker was killed
            self.worker = None
            return {"status": "timeout", "reason": f"no result within {self.timeout:g} s"}
        return reply

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()


def write_attention_maps(
    run_dir: Path, cases: list[Case], plugins: list[str], timeout: float, memory_limit: int = 0, server: ForkServer | None = None
) -> None:
    """``attention_maps.json``: exact softmax's and each swept variant's implied attention
    matrix (`harness.measure.attention_map`), computed on the CPU in a worker, non-causal and causal;
    and, for a sweep over input families, exact's and each approximation's on each family's inputs. The workers
    fork from ``server`` when given (the sweep's), else from one of their own."""
    groups: dict[tuple, list[str]] = {}  # one worker per plugin (and one for the built-ins): no plugin reaches another's
    for name in ["exact"] + sorted({c.variant for c in cases}):
        groups.setdefault(tuple(plugins_for([name], plugins)), []).append(name)
    families = sorted({c.inputs.spec for c in cases})
    families = families if families != ["gaussian"] else []  # one map per family, when the sweep has families
    maps: dict[str, dict] = {"non_causal": {}, "causal": {}, "families": {family: {} for family in families}}
    for own, names in groups.items():
        errands = Errands(list(own), run_dir / LOG_FILE, memory_limit, timeout, server)
        try:
            for name in names:
                for key, mask in (("non_causal", "none"), ("causal", "causal")):
                    maps[key][name] = errands.ask({"map": name, "mask": mask})
                for family in families if name == "exact" or not _exact(name) else ():
                    maps["families"][family][name] = errands.ask({"map": name, "mask": "none", "inputs": family})
        finally:
            errands.close()
    order = lambda name: (name != "exact", name)  # noqa: E731 - exact first, then by name, whichever worker drew it
    ordered = lambda by_name: {name: by_name[name] for name in sorted(by_name, key=order)}  # noqa: E731
    maps = {"non_causal": ordered(maps["non_causal"]), "causal": ordered(maps["causal"]),
            "families": {family: ordered(by_name) for family, by_name in maps["families"].items()}}  # fmt: skip
    write_text_atomic(run_dir / MAPS_FILE, json.dumps(maps))


def _exact(name: str) -> bool:
    """Whether a variant is exact (its family map would be exact attention's again); unknown ones are drawn."""
    try:
        return get_variant(name).exact
    except KeyError:
        return False


def run_checks(name: str, device: str, plugins: list[str], log: Path, timeout: float = 300.0) -> list[dict]:
    """`harness.verify.checks` on one variant, each check answered by a worker process.

    A variant that kills its process (``os._exit``, a segfault) or hangs fails
    the check it was in, as "could not run", and a fresh worker runs the rest:
    no result is hidden, and no exit status can pass by accident.
    """
    errands = Errands(plugins, log, worker_memory_limit("cpu"), timeout)
    results = []
    for check in checks_for(get_variant(name)):
        reply = errands.ask({"check": name, "which": check, "device": device})
        if "passed" not in reply:  # no answer: the check could not run, which fails it
            reply = {"name": check, "passed": False, "detail": f"could not run: {reply['reason']}"}
        results.append(reply)
    errands.close()
    return results
