"""Sweep grids: masks, grouped heads and decode as dimensions, sub-grids, and resuming runs made before them."""

from __future__ import annotations

import json
from collections import Counter

from harness.run.folder import _setting_changes
from harness.run.sweep import build_sweep, expand


def test_masks_kv_heads_and_decode_are_grid_dimensions():
    sweep = build_sweep(variants="naive", seq_lens="64,128", masks="none,causal,sliding:16", heads="4", heads_kv="1,2",
                        modes="fwd,decode", threads="1")  # fmt: skip
    cases = expand(sweep)
    assert len(cases) == 3 * 2 * 2 * 2  # masks x kv heads x modes x N
    decode = [c for c in cases if c.mode == "decode"]
    assert {c.q_len for c in decode} == {1} and {c.q_len for c in cases if c.mode == "fwd"} == {None}
    assert Counter(c.mask.spec for c in decode) == {"none": 4, "causal-br": 4, "sliding:16": 4}  # decode's causal: bottom-right
    assert {c.heads_kv for c in cases} == {1, 2}


def test_subgrids_expand_to_their_union_and_flags_override_every_grid(tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text(
        'variants = ["naive", "sdpa"]\nthreads = 1\n'
        '[[grids]]\nmodes = ["decode"]\nseq_lens = [256, 512]\nbatch = [1, 4]\n'
        '[[grids]]\nmasks = ["sliding:32"]\nseq_lens = [128]\nvariants = ["sdpa"]\n'
    )
    cases = expand(build_sweep(config=config))
    assert Counter((c.variant, c.mode, c.mask.spec) for c in cases) == {
        ("naive", "decode", "none"): 4, ("sdpa", "decode", "none"): 4, ("sdpa", "fwd", "sliding:32"): 1,
    }  # fmt: skip
    assert [c.variant for c in cases] == sorted((c.variant for c in cases), key=["naive", "sdpa"].index)  # grouped
    flagged = expand(build_sweep(config=config, seq_lens="64"))
    assert {c.seq_len for c in flagged} == {64}  # the flag wins over both grids' seq_lens


def test_a_sweep_recorded_before_masks_grids_and_kv_heads_resumes_unchanged():
    sweep = build_sweep(variants="naive", seq_lens="64,128", causal="false,true", threads="1")
    stored = json.loads(json.dumps(sweep.to_dict()))
    for newer in ("masks", "heads_kv", "q_len", "grids"):
        del stored[newer]  # what a sweep.json written before them holds
    stored["causal"] = [False, True]
    assert _setting_changes(stored, sweep) == []
    assert _setting_changes(stored, build_sweep(variants="naive", seq_lens="64,128", masks="sliding:8", threads="1")) == [
        "--mask ['none', 'causal'] -> ['sliding:8']",
    ]


def test_the_older_causal_spelling_sweeps_causal_cases_from_flags_and_toml(tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text('variants = ["naive"]\nseq_lens = [64]\ncausal = [true]\nthreads = 1\n')
    for sweep in (build_sweep(config=config), build_sweep(variants="naive", seq_lens="64", causal="true", threads="1")):
        assert not hasattr(sweep, "causal")
        assert [case.mask.spec for case in expand(sweep)] == ["causal"]
