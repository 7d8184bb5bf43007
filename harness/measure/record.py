"""`Record`: one row of the results table, and so the table's schema.

The field order is the column order (docs/results.md lists them); `COLUMNS`
is derived from it, so a new measurement is one new field here. A record
carries everything the later stages need -- identity, the variant's declared
complexity, statuses, statistics, raw samples -- so analysis and the report
never consult the variant registry. Pure data: no torch, no registry.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(kw_only=True)
class Record:
    """One case's results. Units are SI base units named in the column; ``params`` is
    the variant's parameters as canonical JSON; ``time_samples_s`` keeps every
    sample, for bootstrap confidence intervals and re-analysis."""

    # identity: the run, the variant as registered, the case (`harness.measure.case.Case`)
    run_id: str = ""
    variant: str
    family: str | None = None
    exact: bool | None = None
    declared_time: str | None = None  # the variant's declared classes, e.g. "O(N^2 d)"
    declared_memory: str | None = None
    device: str
    device_name: str | None = None
    dtype: str
    mode: str
    mask: str = "none"  # a variants.masks spec ("none", "causal", "sliding:256", ...)
    score_mod: str = "none"  # a variants.score_mods spec ("none", "alibi", "softcap:50", "rel-bias:32")
    batch: int
    heads: int
    heads_kv: int | None = None  # key/value heads (grouped-query attention); None in a Case: as many as heads
    seq_len: int  # N, the keys
    q_len: int | None = None  # queries; None in a Case: N
    model: str | None = None  # the model whose shapes these are (--model), if any
    inputs: str = "gaussian"  # the input family's spec (harness.measure.inputs)
    inputs_accuracy: float | None = None  # the trained family's model's accuracy on its recall task
    kv_layout: str = "contiguous"  # a decode case's KV cache: "contiguous" or "paged:P" (variants.paged)
    kv_lens: str = "equal"  # a decode batch's cache lengths: "equal", "drawn" or "a+b+..." (variants.kv_lens)
    scope: str = "attention"  # what is timed: the attention call, or a decoder layer around it (--scope layer)
    layer: str | None = None  # a layer case's MLP:hidden:ffn (variants.decoder.LayerShape)
    head_dim: int
    threads: int
    input_scale: float
    allocator: str | None = None  # "pinned" or "system" (harness.measure.allocator); None in runs from before it
    cuda_graphs: bool | None = None  # asked to time CUDA graph replays (``timer`` says whether it did); None: older runs
    energy: bool | None = None  # asked to measure energy per call (power_w, energy_j); None: older runs
    compile_mode: str = "default"  # how a compiled variant was compiled (variants.compiled.COMPILE_MODES)
    params: str = "{}"
    # outcome: "ok", "contended", "unsupported", "skipped", "oom", "timeout", "crash" or "error"
    status: str = "ok"
    reason: str = ""
    # time per call (harness.measure.timing, harness.measure.stats)
    time_median_s: float | None = None
    time_iqr_s: float | None = None
    time_p20_s: float | None = None
    time_p80_s: float | None = None
    time_min_s: float | None = None
    time_mean_s: float | None = None
    n_samples: int | None = None  # samples the statistics come from: those of the used (undisturbed) rounds
    block_size: int | None = None
    noisy: bool | None = None
    timer: str | None = None  # what timed the samples: "perf_counter_ns" (CPU blocks), "cuda_event" or "cuda_graph" (per call)
    compile_s: float | None = None  # wall time of the untimed first calls that ran torch.compile (compile + one run)
    # rounds (harness.measure.rounds): time_median_s is the geometric mean of the used rounds' medians, each
    # read at the run's reference speed (canary_ref_s over its canary); time_ci_*_s its 95 % interval across
    # rounds (one round: its own interval of the median)
    time_ci_low_s: float | None = None
    time_ci_high_s: float | None = None
    time_unadjusted_s: float | None = None  # the same mean of the rounds' medians as measured
    time_log_se: float | None = None  # standard error of log(time_median_s): the rounds', plus a run's own
    time_log_dof: float | None = None  # its degrees of freedom
    canary_ref_s: float | None = None  # the run's reference canary time on this device and thread count
    rounds: int | None = None  # rounds the time comes from
    round_medians_s: list[float] = field(default_factory=list)  # every round taken, in order, as measured
    round_canary_s: list[float | None] = field(default_factory=list)  # the canary's time beside each (harness.measure.canary)
    round_contended: list[bool] = field(default_factory=list)  # the scheduler probe found the round contended
    round_disturbed: list[bool] = field(default_factory=list)  # contended or canary slow: left out while a calm round remains
    round_samples: list[int] = field(default_factory=list)  # how many of time_samples_s each round contributed
    # what the machine did to the timing (harness.measure.interference)
    runqueue_wait_ratio: float | None = None
    cpu_utilization: float | None = None
    discarded_blocks: int | None = None
    load_avg: float | None = None
    steal_ratio: float | None = None
    # peak memory, work and error against float64
    peak_mem_bytes: int | None = None
    mem_method: str | None = None
    flops: float | None = None
    gflops_per_s: float | None = None
    bytes_moved: float | None = None  # the least traffic a kernel needs: q, k, v read once, the output written
    gbytes_per_s: float | None = None
    # the GPU, where NVML answers: the timed blocks' median SM clock (harness.measure.gpu_sensor); with --energy,
    # the mean power and energy per call over a window of back-to-back calls (harness.measure.energy)
    power_w: float | None = None
    sm_clock_mhz: float | None = None
    energy_j: float | None = None
    visible_pairs: int | None = None  # query-key pairs the mask leaves visible (per batch and head): the work model's count
    padding_fraction: float | None = None  # a padding variant's share of padded tokens (variants.packed)
    gqa_method: str | None = None  # "grouped" (K, V read as they are) or "expanded" (repeated to H heads), when H_kv < H
    rel_err: float | None = None
    err_reference: str | None = None  # the reference's mask when not the case's: the variant's declared reference=
    max_abs_err: float | None = None
    cosine: float | None = None
    err_rows: int | None = None
    attn_entropy: float | None = None  # mean entropy (nats) of the exact attention rows of the case's inputs
    attn_tv: float | None = None  # an approximation's implied attention against exact: mean total variation
    attn_recall: float | None = None  # the share of each row's exact top-8 keys in its implied top-8
    implied_entropy: float | None = None  # mean entropy (nats) of the implied rows, |A| normalized
    # where and when it ran (its latest round): the Ray node id (the host name on the local executor), the host,
    # UTC ISO 8601 times
    node: str | None = None
    host: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    # bookkeeping
    case_id: str
    seed: int
    backend: str | None = None
    n_outliers: int | None = None
    stop_reason: str | None = None
    warnings: list[str] = field(default_factory=list)
    time_samples_s: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


COLUMNS: list[str] = [f.name for f in fields(Record)]
MEASURED = ("ok", "contended")  # statuses whose row holds a timing
