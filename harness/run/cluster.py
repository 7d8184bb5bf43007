"""The Ray executor: a sweep's cases across a Ray cluster, one timed case per device, nothing lost with a node.

A timed case owns its device. Each CPU node gets one `NodeSlot` actor that
reserves the node's whole CPU count, so no other case of ours runs beside a
timing; each GPU gets its own actor (``num_gpus=1``: Ray sets its
``CUDA_VISIBLE_DEVICES``). An actor runs the local executor's `WorkerSlot`
on its node -- the same isolated worker process, timeout, address-space cap,
memory budget (read on that node) and crash/timeout/oom rows; there is no
second measurement path. The driver hands each idle actor the next case
(preferring the variant its worker already has loaded), and yields records as
they come back; only the driver writes ``cases.jsonl`` (`harness.run.runner`).

Plugin files travel as their source with each actor (written to a temporary
folder on the node and loaded by path): the worker is a plain subprocess, not
a Ray worker, so a ``runtime_env`` would not reach it. Plugin modules and
attnbench itself must be installed on every node, as for any Ray job.

A node lost mid-case (its actor dies) costs that actor; the case is retried
once on another node of its device, then recorded ``crash`` with reason
"node lost". Ray is optional: ``pip install -e '.[ray]'``.
"""

from __future__ import annotations

import importlib.util
import logging
import socket
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..measure.case import Case
from ..measure.measure_case import record_for
from .budget import device_budget
from .executor import Skip, Started, WorkerSlot, stamp, utc_now
from .folder import RunError

CONNECT_TIMEOUT_S = 5.0


class NodeSlot:
    """One device's worth of a node (the whole CPU, or one GPU): a `WorkerSlot` there, one case at a time."""

    def __init__(self, plugin_files: dict[str, str], plugin_modules: list[str]) -> None:
        import ray

        self.dir = Path(tempfile.mkdtemp(prefix="attnbench-node-"))
        paths = []
        for index, (name, source) in enumerate(plugin_files.items()):
            (self.dir / str(index)).mkdir()
            path = self.dir / str(index) / name
            path.write_text(source)
            paths.append(str(path))
        self.node = ray.get_runtime_context().get_node_id()
        self.budgets: dict[str, int] = {}
        self.slot = WorkerSlot(paths + plugin_modules, self.dir / "worker.log", self.budgets)

    def measure(self, case: dict, max_time_s: float, timeout_s: float, round_index: int = 0, rounds: int = 1) -> dict:
        began = utc_now()
        case = Case(**case)
        if case.device not in self.budgets:  # this node's memory, read once
            self.budgets[case.device] = device_budget(case.device)
        return stamp(self.slot.measure(case, max_time_s, timeout_s, round_index, rounds), self.node, began)

    def new_round(self) -> None:
        self.slot.new_round()

    def close(self) -> None:
        self.slot.close()


def _ray():
    if importlib.util.find_spec("ray") is None:
        raise RunError("--executor ray needs Ray, which is not installed: pip install -e '.[ray]'")
    import ray

    return ray


def _reachable(address: str) -> None:
    """`RunError` unless something listens at HOST:PORT (Ray's own connect retries for minutes)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise RunError(f"--ray-address {address!r}: expected HOST:PORT (the head node's GCS address)")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise RunError(f"cannot reach a Ray cluster at {address}: {exc.strerror or exc}") from None


class RayExecutor:
    """Cases on the Ray cluster at ``address`` (None: a Ray instance started on this machine)."""

    def __init__(self, plugins: list[str], address: str | None) -> None:
        ray = self.ray = _ray()
        if address:
            _reachable(address)
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING, include_dashboard=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RunError(f"cannot join the Ray cluster at {address}: {str(exc).splitlines()[0]}") from None
        files = [p for p in plugins if p.endswith(".py") or "/" in p]
        sources = {Path(p).name: Path(p).read_text() for p in files}
        modules = [p for p in plugins if p not in files]
        self.slots = self._place(sources, modules)  # actor -> the device type it serves

    def _place(self, sources: dict[str, str], modules: list[str]) -> dict:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        actor = self.ray.remote(NodeSlot)
        slots = {}
        for node in self.ray.nodes():
            if not node["Alive"]:
                continue
            on_node = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
            resources = node["Resources"]
            for _ in range(int(resources.get("GPU", 0))):
                slots[actor.options(num_gpus=1, num_cpus=0, scheduling_strategy=on_node).remote(sources, modules)] = "cuda"
            if resources.get("CPU", 0) >= 1:
                whole = resources["CPU"]  # the node's whole CPU: no other case of ours lands beside a CPU timing
                slots[actor.options(num_cpus=whole, scheduling_strategy=on_node).remote(sources, modules)] = "cpu"
        return slots

    def run(
        self, cases: Iterable[Case], max_time_s: float, timeout_s: float, skip: Skip, started: Started,
        round_index: int = 0, rounds: int = 1,
    ) -> Iterator[tuple[Case, dict]]:  # fmt: skip
        ray = self.ray
        queue, idle, running, tries = deque(cases), list(self.slots), {}, {}
        last: dict = {}  # actor -> the (variant, device) its worker has loaded
        while queue or running:
            for slot in list(idle):
                case = _next_case(queue, self.slots[slot], last.get(slot))
                while case is not None and (reason := skip(case)):
                    yield case, stamp(record_for(case, "skipped", reason).to_dict(), "driver", utc_now())
                    case = _next_case(queue, self.slots[slot], last.get(slot))
                if case is None:
                    continue
                started(case)
                idle.remove(slot)
                last[slot] = (case.variant, case.device)
                ref = slot.measure.remote(case.to_dict(), max_time_s, timeout_s, round_index, rounds)
                running[ref] = (slot, case, utc_now())
            if not running:
                yield from self._unserved(queue)
                return
            [ref], _ = ray.wait(list(running), num_returns=1)
            slot, case, began = running.pop(ref)
            try:
                record = ray.get(ref)
            except ray.exceptions.RayActorError as exc:  # the node (or the actor's process) is gone
                del self.slots[slot]
                tries[case.case_id] = tries.get(case.case_id, 0) + 1
                if tries[case.case_id] < 2 and any(device == case.device for device in self.slots.values()):
                    queue.appendleft(case)  # once more, on another node
                    continue
                reason = f"node lost: {str(exc).splitlines()[0][:200]}"
                record = stamp(record_for(case, "crash", reason).to_dict(), "lost", began)
            except ray.exceptions.RayTaskError as exc:  # our slot code raised: a bug, recorded, the actor kept
                record = stamp(record_for(case, "crash", f"node error: {str(exc).splitlines()[0][:200]}").to_dict(),
                               "driver", began)  # fmt: skip
                idle.append(slot)
            else:
                idle.append(slot)
            yield case, record

    def new_round(self) -> None:
        """Each node's next round from fresh worker processes (a node that does not answer is left to `run`)."""
        for slot in list(self.slots):
            try:
                self.ray.get(slot.new_round.remote(), timeout=30)
            except Exception:  # noqa: BLE001 - a lost node is found, and recorded, by the next case sent to it
                pass

    def errand_server(self, threads: int, allocator: str) -> None:
        """The attention maps run on the driver, from a fork server of their own: the nodes' are theirs."""
        return None

    def _unserved(self, queue: deque) -> Iterator[tuple[Case, dict]]:
        """Cases no live node can take: every node of their device was lost, or the cluster has none."""
        if queue and not self.slots:
            raise RunError("every Ray node was lost; the finished cases are kept: finish with --resume")
        for case in queue:
            reason = f"no node of the Ray cluster serves device {case.device}"
            yield case, stamp(record_for(case, "unsupported", reason).to_dict(), "driver", utc_now())

    def close(self) -> None:
        """End every worker and leave the cluster; closing twice is harmless."""
        slots, self.slots = list(self.slots), {}
        for slot in slots:
            try:
                self.ray.get(slot.close.remote(), timeout=30)
            except Exception:  # a lost node has nothing to close
                pass
        if self.ray.is_initialized():
            self.ray.shutdown()


def _next_case(queue: deque, device: str, loaded: tuple | None) -> Case | None:
    """Take the next case for a slot of ``device``: the first of the variant its worker has loaded, else the first."""
    fallback = None
    for case in queue:
        if case.device.split(":")[0] != device:
            continue
        if loaded is None or (case.variant, case.device) == loaded:
            queue.remove(case)
            return case
        fallback = fallback or case
    if fallback is not None:
        queue.remove(fallback)
    return fallback
