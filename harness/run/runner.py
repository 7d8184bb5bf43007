"""Run a sweep: cases to worker processes, records to an append-only JSONL.

Each variant's cases go to one worker process (`harness.run.worker`),
replaced after any failure. A case gets ``timeout_s`` of wall time; past it
the worker is killed and the case recorded as ``timeout``. A worker that dies
mid-case (a segfault, an abort) gives a ``crash`` row naming the signal and
the last line it logged. After a timeout, an ``oom``, a crash or a budget
skip, the same configuration at larger N is recorded as ``skipped`` without
running: it would only fail slower.

Each case is measured in rounds (`harness.measure.rounds`): a first pass
measures every case whole, later passes time it again in fresh workers.
Every finished round appends the case's updated record to ``cases.jsonl``
at once (fsynced; a case's last line is its row); re-running with
``resume=True`` runs only the cases and rounds not recorded.
"""

from __future__ import annotations

import shlex
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..measure.case import Case, configuration
from ..measure.interference import quiet_check
from ..measure.record import MEASURED
from ..measure.rounds import EXTRA_ROUNDS, Machine, add_round, machine_of, summarize_run, wants_round
from .budget import device_budget, measured_peaks, worker_memory_limit
from .cluster import RayExecutor
from .executor import LocalExecutor
from .folder import RunError, RunFailed, locked_run_dir, prepare_run_dir, write_env
from .isolated import write_attention_maps
from .progress import Progress
from .results import CASES_FILE, CSV_FILE, ENV_FILE, LOG_FILE, PARQUET_FILE, JsonlWriter, consolidate
from .sweep import Sweep, expand

__all__ = ["RunError", "RunFailed", "RunSummary", "run_sweep"]

FAILURES_THAT_STOP_GROWTH = ("timeout", "oom", "crash", "skipped")
ProgressCallback = Callable[[int, int, Case, "dict | None"], None]


@dataclass
class RunSummary:
    run_dir: Path
    counts: dict[str, int]  # cases per status, over the whole run folder
    noisy: int  # measured cases (ok or contended) whose IQR/median was over 10%
    total: int
    resumed: int  # cases already recorded when this invocation began
    wall_s: float  # this invocation's wall time
    timed_s: float  # this invocation's time inside timed calls: samples times block sizes
    busy: str | None = None  # the quiet check's finding, when the machine was busy
    paths: list[Path] = field(default_factory=list)


class GrowthStops:
    """Which configurations already failed, and at which N: larger N of the same one are skipped.

    Failures of a run being resumed count too: a resumed sweep skips what an
    uninterrupted one would have.
    """

    def __init__(self, cases: list[Case], recorded: list[dict]) -> None:
        self._failed_at: dict[tuple, tuple[int, str]] = {}
        by_id = {c.case_id: c for c in cases}
        for r in sorted(recorded, key=lambda r: r.get("seq_len", 0)):
            if r["case_id"] in by_id:
                self.note(by_id[r["case_id"]], r.get("status", ""))

    def note(self, case: Case, status: str) -> None:
        if status in FAILURES_THAT_STOP_GROWTH:
            self._failed_at.setdefault(configuration(case), (case.seq_len, status))

    def reason(self, case: Case) -> str | None:
        """Why to skip ``case``: a smaller N of its configuration failed; None to run it."""
        failed = self._failed_at.get(configuration(case))
        if failed is None or case.seq_len <= failed[0]:
            return None
        return f"not run: the same configuration was {failed[1]} at N={failed[0]}"


def run_sweep(
    sweep: Sweep,
    out: str | Path,
    *,
    resume: bool = False,
    plugins: list[str] | None = None,
    progress: ProgressCallback | bool | None = True,
    strict: bool = False,
    executor: str = "local",
    ray_address: str | None = None,
) -> RunSummary:
    """Run every case of ``sweep`` not yet in ``out``; consolidate the table; return a summary.

    ``progress(done, total, case, record)`` is called before each case (record
    None) and after it (with the record); the default, True, draws the same
    progress as the command line on stderr; False or None: silent. Before the first case, a one-second
    quiet check (`harness.measure.interference.quiet_check`): a busy machine is
    one warning, or with ``strict`` a `RunError`. ``executor`` "local" runs the
    cases one at a time in worker processes here; "ray" on the Ray cluster at
    ``ray_address`` (`harness.run.cluster`), one timed case per node or GPU.
    """
    if executor not in ("local", "ray"):
        raise RunError(f"unknown executor {executor!r}; known: local, ray")
    if executor == "ray" and any(":" in device for device in sweep.devices):
        raise RunError("--executor ray gives each case a whole GPU of its node's choosing: name the device cuda, not cuda:N")
    plugins = list(plugins or [])
    progress = Progress() if progress is True else progress or None
    run_dir = Path(out)
    cases = expand(sweep)
    if not cases:
        raise RunError("the sweep has no cases (no variant available on the requested devices?)")
    began = time.monotonic()
    quiet = quiet_check(sweep.threads)
    if quiet["busy"] and strict:
        raise RunError(f"the machine is busy: {quiet['busy']} (--strict)")
    # Ray first: an unreachable cluster is one line before anything is written.
    cluster = RayExecutor(plugins, ray_address) if executor == "ray" else None
    try:
        with locked_run_dir(run_dir):
            recorded = prepare_run_dir(run_dir, cases, sweep, plugins, resume)
            if quiet["busy"]:
                warnings.warn(f"the machine is busy: {quiet['busy']}; contended cases will be marked", stacklevel=2)
            write_env(run_dir, sweep, quiet, resuming=bool(recorded),
                      executor=f"ray {ray_address or '(local instance)'}" if cluster else "local")  # fmt: skip
            budgets = {} if cluster else {device: device_budget(device) for device in sweep.devices}  # nodes read theirs
            runner = cluster or LocalExecutor(plugins, run_dir / LOG_FILE, budgets, measured_peaks(cases, recorded))
            try:
                timed_s = _run_cases(sweep, run_dir, cases, recorded, runner, progress)
                server = runner.errand_server(cases[0].threads, cases[0].allocator)
                frame = _finish(run_dir, cases, plugins, sweep.timeout_s, budgets, server)
            finally:
                runner.close()
    finally:
        if cluster:
            cluster.close()
    measured = frame[frame["status"].isin(MEASURED)]
    return RunSummary(
        run_dir=run_dir,
        counts={k: int(v) for k, v in frame["status"].value_counts().items()},
        noisy=int(measured["noisy"].fillna(False).astype(bool).sum()),
        total=len(cases),
        resumed=len({r["case_id"] for r in recorded}),
        wall_s=time.monotonic() - began,
        timed_s=timed_s,
        busy=quiet["busy"],
        paths=[run_dir / CASES_FILE, run_dir / PARQUET_FILE, run_dir / CSV_FILE, run_dir / ENV_FILE],
    )


def _run_cases(sweep, run_dir, cases, recorded, executor, progress) -> float:
    """Measure (or skip) every case not recorded, in rounds (`harness.measure.rounds`), appending each case's
    record as each of its rounds finishes (the last line of a case is its row, read against the whole run
    when the table is built: `harness.run.results.to_frame`); returns the time spent in timed calls.
    Only this process writes ``cases.jsonl``, whichever executor ran the cases.

    The first pass measures each case whole (accuracy, memory, a first timing), N ascending per variant so
    that a failure stops larger N. Every later pass is one more timing round of each case that wants one,
    in fresh worker processes, with the variants' order rotated, so the rounds of the variants compared
    with each other spread over the sweep alike and none always runs first or last.
    """
    latest = {r["case_id"]: r for r in recorded if "case_id" in r}  # a case's last line is its row
    stops = GrowthStops(cases, recorded)
    writer = JsonlWriter(run_dir / CASES_FILE)
    state = {"done": sum(len(r.get("round_medians_s") or [None]) for r in latest.values()), "timed_s": 0.0}
    total = state["done"] + _rounds_wanted(cases, latest, sweep.rounds, machine_of(latest.values()))
    cap = sweep.max_time_s / sweep.rounds  # --max-time is a case's timing budget over its rounds

    def started(case: Case) -> None:
        if progress:
            progress(state["done"], total, case, None)

    def write(record: dict) -> None:
        record["run_id"] = run_dir.name
        try:
            writer.write(record)
        except OSError as exc:
            raise RunFailed(
                f"cannot write {run_dir / CASES_FILE}: {exc.strerror}; the finished cases are kept, "
                f"finish with the same command and --resume --out {shlex.quote(str(run_dir))}"
            ) from None

    def keep(case: Case, record: dict, reply: dict) -> None:
        write(record)
        latest[case.case_id] = record
        stops.note(case, record["status"])
        state["done"] += 1
        if reply.get("status") in MEASURED and reply.get("time_samples_s"):
            state["timed_s"] += sum(reply["time_samples_s"]) * reply["block_size"]
        if progress:
            progress(state["done"], total, case, record)

    try:
        first = [c for c in cases if c.case_id not in latest]
        for case, record in executor.run(first, cap, sweep.timeout_s, stops.reason, started, 0, sweep.rounds):
            keep(case, record, record)
        for round_index in range(1, sweep.rounds + EXTRA_ROUNDS):
            machine = summarize_run(latest.values())
            wanted = [c for c in cases if wants_round(latest.get(c.case_id) or {}, sweep.rounds, machine)]
            if not wanted:
                break
            total = state["done"] + _rounds_wanted(cases, latest, sweep.rounds, machine)
            executor.new_round()
            order = _rotated(wanted, round_index)
            for case, reply in executor.run(order, cap, sweep.timeout_s, _never, started, round_index, sweep.rounds):
                record = add_round(latest[case.case_id], reply, machine)
                record.update({key: reply.get(key) for key in ("node", "host", "started_at", "ended_at")})  # this round's
                keep(case, record, reply)
    finally:
        writer.close()
        if hasattr(progress, "close"):  # a live display ends with the cases, however they end
            progress.close()
    return state["timed_s"]


def _never(case: Case) -> None:
    """Later rounds skip nothing: a case that reached them ran."""
    return None


def _rounds_wanted(cases: list[Case], latest: dict[str, dict], rounds: int, machine: Machine) -> int:
    """Rounds still to take, as far as is known now: all of an unrecorded case's, the missing ones of a measured one."""
    wanted = 0
    for case in cases:
        record = latest.get(case.case_id)
        if record is None:
            wanted += rounds
        elif wants_round(record, rounds, machine):
            wanted += max(1, rounds - len(record.get("round_medians_s") or []))
    return wanted


def _rotated(cases: list[Case], by: int) -> list[Case]:
    """``cases`` grouped by (device, variant) as given, the groups' order rotated ``by`` places."""
    groups: dict[tuple, list[Case]] = {}
    for case in cases:
        groups.setdefault((case.device, case.variant), []).append(case)
    ordered = list(groups.values())
    shift = by % len(ordered) if ordered else 0
    return [case for group in ordered[shift:] + ordered[:shift] for case in group]


def _finish(run_dir: Path, cases: list[Case], plugins: list[str], timeout_s: float, budgets: dict[str, int], server=None):
    """The attention maps (their workers forked from ``server``, the sweep's, when it has one here) and the
    consolidated table (parquet, CSV); returns the table."""
    try:
        write_attention_maps(run_dir, cases, plugins, timeout_s, worker_memory_limit("cpu", budgets.get("cpu")), server)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a torn line was already reported when resuming
            return consolidate(run_dir)
    except OSError as exc:
        raise RunFailed(
            f"cannot write {exc.filename or run_dir}: {exc.strerror}; every case is in {CASES_FILE}, "
            f"write the tables with the same command and --resume --out {shlex.quote(str(run_dir))}"
        ) from None
