"""Every registered variant, tested from the registry: a new variant needs no new test.

The assertions are `harness.verify.checks`'s, the same `attnbench check NAME` runs:
exact variants against float64 attention on the same inputs; approximations
well-formed, deterministic per seed and differentiable.
"""

from __future__ import annotations

import pytest
import torch
from conftest import DEVICES, make_qkv, rel_err, runnable

from harness.measure.reference import reference_attention
from harness.verify.checks import check_backward, check_contract, check_deterministic, gradient_error
from harness.verify.yardstick import GRAD_TOLERANCE, TOLERANCE, exact_error
from variants import Unsupported, get_variant, list_variants
from variants.linear import linear_attention
from variants.masks import CAUSAL, NONE


def grid(names: list[str]) -> list:
    """Names for the wide grids below. A compiled variant compiles anew for each dtype, mask and
    shape class (seconds each), so its share of them is opt-in (-m slow); tests/test_compiled.py
    and the masks check cover it in the default run."""
    return [pytest.param(n, marks=pytest.mark.slow) if get_variant(n).family == "compiled" else n for n in names]


ALL = list_variants()
EXACT = [n for n in ALL if get_variant(n).exact]
EXACT_GRAD = [n for n in EXACT if get_variant(n).backward]

# (N_q, N_kv, D, D_v): square, ragged lengths, and a value head dim unlike q's.
SHAPES = [(7, 7, 16, 16), (33, 70, 16, 16), (70, 33, 16, 16), (40, 40, 16, 8)]


def passed_or_skip(result):
    if result.passed is None:
        pytest.skip(result.detail)
    assert result.passed, result.detail


def error_or_skip(fn, **kwargs):
    """``fn(**kwargs)``; a case the variant refuses skips with its reason, unless it declares what was asked
    (device, dtype, the causal mask) and runs the same shape unmasked: refusing what it declares fails."""
    try:
        return fn(**kwargs)
    except Unsupported as exc:
        spec, dtype = kwargs["spec"], str(kwargs.get("dtype", torch.float32)).removeprefix("torch.")
        declared = kwargs["device"].split(":")[0] in spec.devices and dtype in spec.dtypes
        if declared and kwargs.get("causal") and "causal" in spec.masks:
            try:
                fn(**{**kwargs, "causal": False})
            except Unsupported:
                pass  # the shape itself is beyond it: a limit of shapes, which no declaration covers
            else:
                pytest.fail(f"{spec.name} refuses the causal mask it declares: {exc}")
        pytest.skip(str(exc))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mask", [NONE, CAUSAL], ids=["full", "causal"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "q{}-kv{}-d{}-dv{}".format(*s))
@pytest.mark.parametrize("name", grid(ALL))
def test_well_formed_and_inputs_untouched(name, shape, mask, device):
    n_q, n_kv, d, d_v = shape
    spec = runnable(name, device)
    passed_or_skip(check_contract(spec, n_q=n_q, n_kv=n_kv, d=d, d_v=d_v, mask=mask, device=device))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("mask", [NONE, CAUSAL], ids=["full", "causal"])
@pytest.mark.parametrize("n", [1, 7, 257, 1024])
@pytest.mark.parametrize("name", grid(EXACT))
def test_exact_matches_float64(name, n, mask, dtype, device):
    # Input scale 2 gives peaked attention (logit std ~4), which exercises the
    # running-max rescaling that unit-scale, nearly uniform attention would not.
    spec = runnable(name, device)
    err = error_or_skip(exact_error, spec=spec, n_q=n, mask=mask, dtype=dtype, device=device, seed=n)
    assert err <= TOLERANCE[dtype]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mask", [NONE, CAUSAL], ids=["full", "causal"])
@pytest.mark.parametrize("shape", SHAPES[1:], ids=lambda s: "q{}-kv{}-d{}-dv{}".format(*s))
@pytest.mark.parametrize("name", grid(EXACT))
def test_exact_ragged_shapes_and_scale(name, shape, mask, device):
    n_q, n_kv, d, d_v = shape
    spec = runnable(name, device)
    err = error_or_skip(exact_error, spec=spec, n_q=n_q, n_kv=n_kv, d=d, d_v=d_v, mask=mask, device=device,
                        scale=0.3, input_scale=1.0, seed=3)  # fmt: skip
    assert err <= TOLERANCE[torch.float32]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mask", [NONE, CAUSAL], ids=["full", "causal"])
@pytest.mark.parametrize("lengths", [(257, 257), (65, 130), (130, 65)], ids=lambda s: "q{}-kv{}".format(*s))
@pytest.mark.parametrize("name", grid(EXACT_GRAD))
def test_exact_gradients_match_float64(name, lengths, mask, device):
    spec = runnable(name, device)
    errors = error_or_skip(gradient_error, spec=spec, n_q=lengths[0], n_kv=lengths[1], mask=mask, device=device)
    assert max(errors.values()) <= GRAD_TOLERANCE, errors


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", [n for n in ALL if get_variant(n).backward and not get_variant(n).exact])
def test_approximate_gradients_are_finite(name, device):
    passed_or_skip(check_backward(runnable(name, device), device=device))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ALL)
def test_deterministic(name, device):
    passed_or_skip(check_deterministic(runnable(name, device), device=device))


@pytest.mark.parametrize("name", [n for n in ALL if get_variant(n).randomized])
def test_randomized_variants_depend_on_the_seed(name):
    spec = get_variant(name)
    q, k, v = make_qkv(128)
    assert not torch.equal(spec(q, k, v, seed=3), spec(q, k, v, seed=4))


def test_performer_error_falls_with_more_features():
    q, k, v = make_qkv(256, d=64, heads=4, seed=11)
    ref = reference_attention(q, k, v)

    def mean_error(name):
        return sum(rel_err(get_variant(name)(q, k, v, seed=s), ref) for s in range(5)) / 5

    err64, err256 = mean_error("performer-64"), mean_error("performer-256")
    assert err256 < err64, (err64, err256)


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("lengths", [(100, 100), (37, 150), (150, 37), (1, 1)], ids=str)
def test_linear_core_matches_quadratic_form(lengths, causal):
    """The chunked prefix sums equal the O(N^2) definition sum_j phi_q·phi_k v_j / sum_j phi_q·phi_k."""
    n_q, n_kv = lengths
    q, k, v = make_qkv(n_q, n_kv, d=8, d_v=5, seed=2, dtype=torch.float64)
    phi_q, phi_k = q.exp(), k.exp()  # any positive features
    weights = phi_q @ phi_k.transpose(-1, -2)  # (B, H, N_q, N_kv)
    if causal:
        weights = weights.tril()
    expected = (weights @ v) / weights.sum(-1, keepdim=True)
    for chunk in (1, 16, 64):
        got = linear_attention(phi_q, phi_k, v, causal=causal, chunk=chunk)
        assert rel_err(got, expected) < 1e-12


def test_linear_elu_refuses_a_scale():
    q, k, v = make_qkv(8, d=8)
    with pytest.raises(Unsupported, match="scale"):
        get_variant("linear-elu")(q, k, v, scale=0.5)


def test_xformers_on_cpu_is_unsupported_with_xformers_reasons():
    pytest.importorskip("xformers")
    q, k, v = make_qkv(16, d=32)
    with pytest.raises(Unsupported, match="device=cpu") as info:
        get_variant("xformers")(q, k, v)
    assert "xformers cannot run this case" in str(info.value) and "\n" not in str(info.value)


def test_sdpa_flash_refuses_mismatched_value_dim_with_torch_reason():
    q, k, v = make_qkv(16, d=32, d_v=16)
    with pytest.raises(Unsupported, match="same last dimension"):
        get_variant("sdpa-flash")(q, k, v)
