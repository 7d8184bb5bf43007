"""Case identity, validation and seeded inputs."""

from __future__ import annotations

import pytest
import torch

from harness.measure.case import Case, make_grad_output, make_inputs


def test_id_is_a_stable_content_hash():
    a = Case("sdpa", 1024, threads=2)
    assert a.case_id == Case("sdpa", 1024, threads=2).case_id
    assert len(a.case_id) == 16
    assert a.case_id != Case("sdpa", 1024, threads=2, mask="causal").case_id
    assert a.case_id != Case("sdpa", 1024, threads=1).case_id
    assert a.case_id != Case("sdpa", 1024, threads=2, seed=1).case_id


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"seq_len": 0}, "seq_len"),
        ({"seq_len": -5}, "seq_len"),
        ({"seq_len": 2.5}, "seq_len"),
        ({"seq_len": 8, "heads": 0}, "heads"),
        ({"seq_len": 8, "threads": 0}, "threads"),
        ({"seq_len": 8, "dtype": "float8"}, "dtype"),
        ({"seq_len": 8, "mode": "bwd"}, "mode"),
        ({"seq_len": 8, "device": "tpu"}, "device"),
        ({"seq_len": 8, "input_scale": 0}, "input_scale"),
    ],
)
def test_bad_fields_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=rf"^Case\.{field}\b"):
        Case("naive", **kwargs)


def test_inputs_are_seeded_shaped_and_typed():
    case = Case("naive", 33, batch=2, heads=3, head_dim=16, dtype="bfloat16", input_scale=2.0, seed=4)
    q, k, v = make_inputs(case)
    again = make_inputs(case)
    assert all(torch.equal(a, b) for a, b in zip((q, k, v), again))
    assert q.shape == k.shape == v.shape == (2, 3, 33, 16)
    assert q.dtype == torch.bfloat16
    assert not torch.equal(q, k)
    assert 1.5 < q.float().std().item() < 2.5  # input_scale applies
    other = make_inputs(Case("naive", 33, batch=2, heads=3, head_dim=16, dtype="bfloat16", input_scale=2.0, seed=5))
    assert not torch.equal(q, other[0])
    assert make_grad_output(case).shape == q.shape
