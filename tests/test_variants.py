"""Every registered variant, tested from the registry: a new variant needs no new test.

Exact variants are compared with float64 attention on the same inputs;
approximations must be well-formed, deterministic per seed and differentiable.
"""

from __future__ import annotations

import pytest
import torch

from conftest import DEVICES, call_or_skip, make_qkv, rel_err, runnable
from harness.reference import reference_attention
from variants import Unsupported, get_variant, list_variants
from variants.linear import linear_attention

ALL = list_variants()
EXACT = [n for n in ALL if get_variant(n).exact]
EXACT_GRAD = [n for n in EXACT if get_variant(n).backward]
TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 2e-2}

# (N_q, N_kv, D, D_v): square, ragged lengths, and a value head dim unlike q's.
SHAPES = [(7, 7, 16, 16), (33, 70, 16, 16), (70, 33, 16, 16), (40, 40, 16, 8)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "q{}-kv{}-d{}-dv{}".format(*s))
@pytest.mark.parametrize("name", ALL)
def test_well_formed_and_inputs_untouched(name, shape, causal, device):
    spec = runnable(name, device)
    n_q, n_kv, d, d_v = shape
    q, k, v = make_qkv(n_q, n_kv, d=d, d_v=d_v, device=device)
    before = [t.clone() for t in (q, k, v)]
    versions = [t._version for t in (q, k, v)]
    out = call_or_skip(spec, q, k, v, causal=causal)
    assert out.shape == (1, 4, n_q, d_v)
    assert out.dtype == q.dtype and out.device == q.device
    assert torch.isfinite(out).all()
    for t, b, ver in zip((q, k, v), before, versions):
        assert torch.equal(t, b) and t._version == ver, "variant modified its input"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("n", [1, 7, 257, 1024])
@pytest.mark.parametrize("name", EXACT)
def test_exact_matches_float64(name, n, causal, dtype, device):
    spec = runnable(name, device)
    # Input scale 2 gives peaked attention (logit std ~4), which exercises the
    # running-max rescaling that unit-scale, nearly uniform attention would not.
    q, k, v = make_qkv(n, d=64, dtype=dtype, device=device, seed=n, scale=2.0)
    out = call_or_skip(spec, q, k, v, causal=causal)
    assert rel_err(out, reference_attention(q, k, v, causal=causal)) <= TOLERANCE[dtype]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("shape", SHAPES[1:], ids=lambda s: "q{}-kv{}-d{}-dv{}".format(*s))
@pytest.mark.parametrize("name", EXACT)
def test_exact_ragged_shapes_and_scale(name, shape, causal, device):
    spec = runnable(name, device)
    n_q, n_kv, d, d_v = shape
    q, k, v = make_qkv(n_q, n_kv, d=d, d_v=d_v, device=device, seed=3)
    out = call_or_skip(spec, q, k, v, causal=causal, scale=0.3)
    assert rel_err(out, reference_attention(q, k, v, causal=causal, scale=0.3)) <= 1e-5


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("lengths", [(257, 257), (65, 130), (130, 65)], ids=lambda s: "q{}-kv{}".format(*s))
@pytest.mark.parametrize("name", EXACT_GRAD)
def test_exact_gradients_match_float64(name, lengths, causal, device):
    spec = runnable(name, device)
    q, k, v = make_qkv(*lengths, d=32, device=device, seed=5, scale=1.5)
    grad_out = make_qkv(lengths[0], d=32, device=device, seed=6)[0]
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    out = call_or_skip(spec, *leaves, causal=causal)
    grads = torch.autograd.grad(out, leaves, grad_out)

    exact = [t.detach().double().requires_grad_() for t in (q, k, v)]
    ref = reference_attention(*exact, causal=causal)
    ref_grads = torch.autograd.grad(ref, exact, grad_out.double())
    for which, g, r in zip("qkv", grads, ref_grads):
        assert g.shape == r.shape
        assert rel_err(g, r) <= 1e-4, f"d{which}"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("name", [n for n in ALL if get_variant(n).backward])
def test_backward_runs_and_is_finite(name, causal, device):
    spec = runnable(name, device)
    leaves = [t.requires_grad_() for t in make_qkv(100, d=32, device=device)]
    out = call_or_skip(spec, *leaves, causal=causal)
    out.square().sum().backward()
    for t in leaves:
        assert t.grad is not None and t.grad.shape == t.shape and torch.isfinite(t.grad).all()


@pytest.mark.parametrize("name", [n for n in ALL if get_variant(n).randomized])
def test_randomized_variants_are_seeded(name):
    spec = get_variant(name)
    q, k, v = make_qkv(128, d=32)
    assert torch.equal(spec(q, k, v, seed=3), spec(q, k, v, seed=3))
    assert not torch.equal(spec(q, k, v, seed=3), spec(q, k, v, seed=4))


def test_performer_error_falls_with_more_features():
    q, k, v = make_qkv(256, d=64, seed=11)
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
    assert "\n" not in str(info.value)


def test_sdpa_flash_refuses_mismatched_value_dim_with_torch_reason():
    q, k, v = make_qkv(16, d=32, d_v=16)
    with pytest.raises(Unsupported, match="same last dimension"):
        get_variant("sdpa-flash")(q, k, v)
