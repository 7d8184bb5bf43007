"""The classic SelfAttention layer with every exact core."""

from __future__ import annotations

import pytest
import torch
from conftest import DEVICES, rel_err, runnable

from variants import Unsupported, get_variant, list_variants
from variants.layer import SelfAttention
from variants.masks import CAUSAL, NONE

EXACT = [n for n in list_variants() if get_variant(n).exact]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mask", [NONE, CAUSAL], ids=["full", "causal"])
@pytest.mark.parametrize("name", EXACT)
def test_every_exact_core_gives_the_same_layer_output(name, mask, device):
    runnable(name, device)
    torch.manual_seed(0)
    baseline = SelfAttention(48, 32, heads=2, variant="naive", mask=mask).to(device)
    layer = SelfAttention(48, 32, heads=2, variant=name, mask=mask).to(device)
    layer.load_state_dict(baseline.state_dict())
    x = torch.randn(3, 50, 48, device=device)
    try:
        out = layer(x)
    except Unsupported as exc:
        pytest.skip(f"{name}: {exc}")
    assert rel_err(out, baseline(x)) < 1e-5


def test_layer_shapes_value_dim_and_gradients():
    layer = SelfAttention(24, 16, d_v=8, heads=2, variant="chunked-online")
    x = torch.randn(2, 10, 24, requires_grad=True)
    out = layer(x)
    assert out.shape == (2, 10, 8)
    out.sum().backward()
    assert all(p.grad is not None for p in layer.parameters())


def test_layer_rejects_bad_configuration():
    with pytest.raises(KeyError, match="naive"):
        SelfAttention(8, 8, variant="naiv")
    with pytest.raises(ValueError, match="heads"):
        SelfAttention(8, 9, heads=2)
