"""A case measured in rounds: the row's time and its uncertainty come from the spread *between* rounds.

On the machines benchmarks run on, a kernel's time moves more between
minutes and processes than between the blocks of one measurement (a 2-core
VM: sdpa at N=512 from 3.5 to 6.7 ms; each round's own IQR 1-7 %). One
measurement's interval says how well that process knew its median, not what
a rerun will read. So each case is measured in rounds, each in a worker
process of its own at another time of the sweep (`harness.run.runner`); each
record a worker returns is one round (`harness.measure.measure_case`), and
`add_round` folds the next into it.

Speed. Beside every round the canary (`harness.measure.canary`, the same
matmul in every round) is timed. The VM's speed is what moves: over one
quick-preset sweep on the 2-core VM the canary ranged 171-325 µs, and each
case's round medians followed it (correlation 0.85-0.99 for most cases). A
round's time is therefore read at the run's reference speed: its median
times ``canary_ref_s / canary`` (the reference: the run's 10th-percentile
canary, the machine at full speed). Measured on that sweep, this cut the
spread between rounds (standard deviation of log time, median over cases)
from 0.15 to 0.09. ``time_unadjusted_s`` keeps the time as measured. A round
whose canary ran more than ``SLOW_LIMIT`` times the reference (the machine
was contended, not merely slower) or that the scheduler probe found
contended is ``disturbed``: left out while any calm round remains, and re-taken.
A disturbed round is read as measured: past SLOW_LIMIT its canary timed
preemption, not speed. A row all of whose rounds were disturbed is
``contended``, whether or not its worker saw the wait.

Only CPU rounds are read against the canary. On a GPU its matmul (12 µs on an
H200) is launch-bound: it times the host's launches, which jittered 3-5 %
between the rounds of the first H200 run while the kernels' round medians
agreed within 0.5 %; read against it, every row moved by that jitter and the
pooled spread put ±7 % on rows that reproduce to ±0.5 %. A GPU's own speed is
watched where it moves: its SM clock, a throttled block dropped
(`harness.measure.cuda_timing`).

Uncertainty. ``time_median_s`` is the geometric mean of the used rounds'
adjusted medians, ``time_ci_low_s``/``time_ci_high_s`` its 95 % interval from
Student's t on their logs. Three rounds give a t with 2 degrees of freedom
(a 4.3 multiplier), so the variance is moderated (Smyth 2004, as in limma):
the machine's between-round variance, pooled over every case of the run, is
a prior worth ``PRIOR_DOF`` degrees of freedom, combined with the case's own.
A case noisier than the machine keeps most of its own variance; a quiet one
is not credited with luck. Rounds of one sweep lie within minutes of each
other; a rerun does not, and reads differently by more than the rounds'
spread predicts: three back-to-back runs of a 20-case sweep on the 2-core VM
(`harness.bench.reprocheck`) differed by a run-level standard deviation of about
3.5 %, 1.6 times the rounds' own standard error, which no single run can
measure. So the standard error of a row's time adds a run-level variance
assumed equal to the rounds' (``RUN_LEVEL``): the interval covers what
another run would read, not only what more rounds of this one would (on
those runs: a rerun inside it 88 % of the time, against 72 % without).
``time_log_se`` and ``time_log_dof`` are on the row for
`harness.analyze.compare`. The within-round columns
(``time_iqr_s`` ... ``time_mean_s``) pool the used rounds' samples, each
adjusted like its round; ``time_samples_s`` keeps every sample as measured.

Pure functions over records (dicts): no torch, no clocks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .stats import quantile, summarize

SLOW_LIMIT = 1.3  # a round whose canary ran over 1.3 x the reference: contended, left out and re-taken
REFERENCE_QUANTILE = 0.1  # the reference canary: the run's 10th percentile, the machine at full speed
PRIOR_DOF = 4  # the pooled between-round variance counts as four degrees of freedom of each case's
RUN_LEVEL = 1.0  # the variance between whole runs that rounds cannot see, as a multiple of the rounds' s^2/n
DISAGREE = 1.5  # a case whose rounds spread over 1.5 x the machine's typical spread gets more rounds ...
EXTRA_ROUNDS = 2  # ... up to this many beyond the sweep's rounds
# Two-sided 95 % quantiles of Student's t by degrees of freedom (1..30); beyond, the normal's 1.96 plus a correction.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip


def t975(dof: float) -> float:
    """The 97.5 % quantile of Student's t with ``dof`` >= 1 degrees of freedom (linear between integers)."""
    if dof >= len(_T975):
        return 1.96 + 2.4 / dof
    low = max(1, math.floor(dof))
    high = min(low + 1, len(_T975))
    return _T975[low - 1] + (_T975[high - 1] - _T975[low - 1]) * (dof - low)


@dataclass(frozen=True)
class Machine:
    """What the whole run says about the machine: the reference canary per (device, threads), and the
    between-round variance of log times pooled over its cases, with its degrees of freedom."""

    canary_ref_s: dict[tuple[str, int], float] = field(default_factory=dict)
    log_var: float = 0.0
    dof: int = 0

    def reference(self, record: dict) -> float | None:
        return self.canary_ref_s.get((record.get("device"), record.get("threads")))


def machine_of(records: Iterable[dict]) -> Machine:
    """The `Machine` of a run's records (each case's latest)."""
    records = [r for r in records if r.get("round_medians_s") and r.get("status") in ("ok", "contended")]
    canaries: dict[tuple[str, int], list[float]] = {}
    for r in records:
        canaries.setdefault((r["device"], r["threads"]), []).extend(c for c in r.get("round_canary_s") or [] if c)
    refs = {key: quantile(sorted(values), REFERENCE_QUANTILE) for key, values in canaries.items()
            if values and key[0] == "cpu"}  # fmt: skip
    partial = Machine(refs)
    squares, dof = 0.0, 0
    for r in records:
        logs = [math.log(v) for v in adjusted_medians(r, partial.reference(r), used_rounds(r, partial.reference(r)))]
        if len(logs) >= 2:
            mean = math.fsum(logs) / len(logs)
            squares += math.fsum((x - mean) ** 2 for x in logs)
            dof += len(logs) - 1
    return Machine(refs, squares / dof if dof else 0.0, dof)


def summarize_run(records: Iterable[dict]) -> Machine:
    """Each of a run's records (each case's latest) summarized against the run's `Machine` (in place); returns it."""
    records = list(records)
    machine = machine_of(records)
    for record in records:
        summarize_rounds(record, machine)
    return machine


def disturbed(record: dict, reference: float | None) -> list[bool]:
    """Per round: contended (as the worker found it), or its canary ran past SLOW_LIMIT x ``reference``."""
    contended = record.get("round_contended") or []
    canaries = record.get("round_canary_s") or []
    return [
        bool(i < len(contended) and contended[i])
        or bool(reference and i < len(canaries) and canaries[i] and canaries[i] > SLOW_LIMIT * reference)
        for i in range(len(record.get("round_medians_s") or []))
    ]


def used_rounds(record: dict, reference: float | None) -> list[int]:
    """Indices of the rounds the row's statistics come from: the undisturbed ones, or all when every one was.

    A disturbed round never joins a calm one: its canary factor can be 1/90 (a round run beside a test
    suite), and one such round would widen the machine's pooled variance for every case of the run."""
    flags = disturbed(record, reference)
    calm = [i for i, bad in enumerate(flags) if not bad]
    return calm or list(range(len(flags)))


def _factor(record: dict, index: int, reference: float | None) -> float:
    """What round ``index``'s times are multiplied by to read them at the reference speed: 1 without a canary,
    and 1 for a canary past SLOW_LIMIT. Such a canary timed preemption, not speed: beside a CPU hog its 0.2 ms
    matmul read 16 ms (a scheduler slice) while the case's timer, which drops preempted blocks, read the kernel
    right; scaled by it, naive at N=512 read 0.36 ms instead of 2.3."""
    canaries = record.get("round_canary_s") or []
    canary = canaries[index] if index < len(canaries) else None
    if not (reference and canary) or canary > SLOW_LIMIT * reference:
        return 1.0
    return reference / canary


def adjusted_medians(record: dict, reference: float | None, use: Sequence[int]) -> list[float]:
    medians = record["round_medians_s"]
    return [medians[i] * _factor(record, i, reference) for i in use if medians[i] and medians[i] > 0]


def split_samples(record: dict) -> list[list[float]]:
    """Each round's samples, from the row's ``time_samples_s`` and ``round_samples`` (counts per round)."""
    samples, counts = list(record.get("time_samples_s") or []), record.get("round_samples") or []
    if not counts:
        return [samples]
    out, at = [], 0
    for count in counts:
        out.append(samples[at : at + count])
        at += count
    return out


def summarize_rounds(record: dict, machine: Machine) -> dict:
    """``record`` with its time columns computed from its rounds and the run's ``machine`` (module docstring)."""
    if not record.get("round_medians_s") or record.get("status") not in ("ok", "contended"):
        return record
    reference = machine.reference(record)
    use = used_rounds(record, reference)
    values = adjusted_medians(record, reference, use)
    rounds = split_samples(record)
    pooled = [x * _factor(record, i, reference) for i in use if i < len(rounds) for x in rounds[i]]
    s = summarize(pooled or values)
    logs = [math.log(v) for v in values]
    mean = math.fsum(logs) / len(logs)
    own_dof = len(logs) - 1
    own_var = math.fsum((x - mean) ** 2 for x in logs) / own_dof if own_dof else 0.0
    prior_dof = min(PRIOR_DOF, machine.dof)
    dof = own_dof + prior_dof
    center = math.exp(mean)
    if dof:
        sd = math.sqrt((own_dof * own_var + prior_dof * machine.log_var) / dof)
        se = sd * math.sqrt((1 + RUN_LEVEL) / len(logs))  # the rounds' standard error, and a run's own
        low, high = math.exp(mean - t975(dof) * se), math.exp(mean + t975(dof) * se)
    else:  # one round and nothing known of the machine: that round's own interval of its median
        se, low, high = math.nan, s.ci_low, s.ci_high
    raw = [record["round_medians_s"][i] for i in use]
    record.update(
        time_median_s=center, time_ci_low_s=low, time_ci_high_s=high, time_log_se=se, time_log_dof=dof,
        time_unadjusted_s=math.exp(math.fsum(math.log(v) for v in raw) / len(raw)), canary_ref_s=reference,
        rounds=len(use), round_disturbed=disturbed(record, reference),
        time_iqr_s=s.iqr, time_p20_s=s.p20, time_p80_s=s.p80, time_min_s=s.min, time_mean_s=s.mean,
        n_samples=s.n, n_outliers=s.outliers, noisy=s.noisy,
    )  # fmt: skip
    if record["status"] == "contended" and not all(record["round_disturbed"]):
        record.update(status="ok", reason="")  # a calm round after contended ones: the case has a timing
    elif record["status"] == "ok" and all(record["round_disturbed"]):  # the worker saw no wait; the canary did
        record.update(status="contended", reason=f"contended: every round disturbed (a canary past {SLOW_LIMIT:g}x "
                      "the run's reference: the machine was busy or slowed)")  # fmt: skip
    for rate, work in (("gflops_per_s", "flops"), ("gbytes_per_s", "bytes_moved")):
        if record.get(work) and center > 0:
            record[rate] = record[work] / center / 1e9
    return record


def add_round(record: dict, timing: dict, machine: Machine) -> dict:
    """``record`` with one more round (``timing``: a timing-only record from the worker) folded in.

    A round that failed (an error, a crash) makes the case fail with that reason: a variant that is right
    once and wrong later is wrong.
    """
    if timing["status"] not in ("ok", "contended"):
        n = len(record.get("round_medians_s") or []) + 1
        record.update(status=timing["status"], reason=f"round {n}: {timing['reason']}")
        return record
    if timing.get("timer") and record.get("timer") and timing["timer"] != record["timer"]:  # a call near the
        # launch-bound line, replayed as a graph in one round and not another: two clocks, not one time
        note = f"a round timed by {timing['timer']} (the row's: {record['timer']}) was left out"
        record["warnings"] = list(record.get("warnings") or []) + ([note] if note not in (record.get("warnings") or []) else [])
        return record
    record["round_medians_s"] = list(record["round_medians_s"]) + list(timing["round_medians_s"])
    record["round_canary_s"] = list(record.get("round_canary_s") or []) + list(timing.get("round_canary_s") or [None])
    record["round_contended"] = list(record.get("round_contended") or []) + [timing["status"] == "contended"]
    record["round_samples"] = list(record.get("round_samples") or []) + [len(timing["time_samples_s"])]
    record["time_samples_s"] = list(record.get("time_samples_s") or []) + list(timing["time_samples_s"])
    record["discarded_blocks"] = (record.get("discarded_blocks") or 0) + (timing.get("discarded_blocks") or 0)
    record["warnings"] = list(record.get("warnings") or []) + [w for w in timing.get("warnings") or [] if "IQR" not in w]
    return summarize_rounds(record, machine)


def wants_round(record: dict, rounds: int, machine: Machine) -> bool:
    """Whether the case needs another round: fewer than ``rounds`` calm ones, or rounds that disagree (their
    spread over DISAGREE x the machine's), while under ``rounds + EXTRA_ROUNDS`` taken. A case as noisy as
    the machine gets no more: its interval is as narrow as this machine allows at this many rounds, and
    rounds spent there would buy little (Kalibera & Jones: repeat where the variance is)."""
    if record.get("status") not in ("ok", "contended") or not record.get("round_medians_s"):
        return False
    taken = len(record["round_medians_s"])
    if taken >= rounds + EXTRA_ROUNDS:
        return False
    reference = machine.reference(record)
    use = used_rounds(record, reference)
    if sum(1 for bad in disturbed(record, reference) if not bad) < rounds:
        return True
    logs = [math.log(v) for v in adjusted_medians(record, reference, use)]
    if len(logs) < 2 or not machine.log_var:
        return False
    mean = math.fsum(logs) / len(logs)
    own_var = math.fsum((x - mean) ** 2 for x in logs) / (len(logs) - 1)
    return own_var > DISAGREE**2 * machine.log_var
