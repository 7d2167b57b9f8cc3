"""Fusion modules: shapes, masks, weights, gradient flow, costs (every registered fusion)."""
from __future__ import annotations

import pytest
import torch

from models.fusion import FusionConfig, build_fusion, describe_costs
from models.registry import FUSIONS

EXPECTED = {"concat", "gated", "modality-attention", "cross-attention", "uncertainty", "dynamic-stream-weighting"}
DA, DV, D = 12, 10, 14


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _fusion(name: str, temporal: str = "none", seed: int = 0):
    torch.manual_seed(seed)
    return build_fusion(name, audio_dim=DA, visual_dim=DV, out_dim=D, temporal=temporal, window=3, heads=2, head_dim=4).eval()


def test_registry_has_all_fusions():
    assert EXPECTED <= set(FUSIONS.names())
    with pytest.raises(KeyError, match="known: .*gated"):
        FUSIONS.get("gatd")


@pytest.mark.parametrize("temporal", ["none", "conv", "gru"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shapes_weights_and_masks(name, temporal):
    f = _fusion(name, temporal)
    g = torch.Generator().manual_seed(1)
    B, T, T1 = 3, 11, 6
    a, v = torch.randn(B, T, DA, generator=g), torch.randn(B, T, DV, generator=g)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, T1:] = False
    out = f(a, v, mask)
    assert out.fused.shape == (B, T, D)
    assert torch.isfinite(out.fused).all()
    if name == "concat":
        assert out.weights is None
    else:
        w = out.weights
        assert w.shape == (B, T, 2)
        assert (w >= 0).all() and (w <= 1).all()
        assert torch.allclose(w.sum(-1), torch.ones(B, T), atol=1e-5)
    # padding frames do not change real frames: item 1 alone (length T1) == its rows in the batch,
    # whatever garbage sits in the padding
    a2, v2 = a.clone(), v.clone()
    a2[1, T1:] = 1e3 * torch.randn(T - T1, DA, generator=g)
    v2[1, T1:] = -1e3
    out2 = f(a2, v2, mask)
    alone = f(a[1:2, :T1], v[1:2, :T1], torch.ones(1, T1, dtype=torch.bool))
    assert torch.allclose(out2.fused[1, :T1], alone.fused[0], atol=1e-5)
    assert torch.allclose(out2.fused[0], out.fused[0], atol=1e-6)
    if out.weights is not None:
        assert torch.allclose(out2.weights[1, :T1], alone.weights[0], atol=1e-5)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_gradient_flows_to_both_streams(name):
    f = _fusion(name, "conv").train()
    a = torch.randn(2, 7, DA, requires_grad=True)
    v = torch.randn(2, 7, DV, requires_grad=True)
    out = f(a, v, torch.ones(2, 7, dtype=torch.bool))
    (out.fused.pow(2).sum()).backward()
    assert a.grad is not None and a.grad.abs().sum() > 0
    assert v.grad is not None and v.grad.abs().sum() > 0
    # every parameter that should learn gets a gradient
    dead = [n for n, p in f.named_parameters() if p.grad is None]
    assert not dead, dead


def test_cross_attention_is_windowed_and_keeps_maps():
    f = _fusion("cross-attention")
    T = 20
    a, v = torch.randn(1, T, DA), torch.randn(1, T, DV)
    m = torch.ones(1, T, dtype=torch.bool)
    out = f(a, v, m)
    assert out.extras["attention"].shape == (1, T, 7)  # 2 * window + 1
    # a visual change far outside the window leaves frame 0 untouched
    v2 = v.clone()
    v2[0, 10:] += 5.0
    assert torch.allclose(f(a, v2, m).fused[0, :6], out.fused[0, :6], atol=1e-6)
    assert not torch.allclose(f(a, v2, m).fused[0, 10], out.fused[0, 10])


def test_costs_reported_for_every_fusion():
    costs = describe_costs()
    assert EXPECTED <= set(costs)
    for name in EXPECTED:
        c = _fusion(name).cost_per_frame()
        assert c["params"] == sum(p.numel() for p in _fusion(name).parameters()) > 0
        assert c["macs"] > 0
    # concat: exactly one (DA + DV) x D linear layer
    assert _fusion("concat").cost_per_frame()["macs"] == (DA + DV) * D


def test_unknown_option_is_an_error():
    with pytest.raises(ValueError, match="unknown fusion option"):
        FusionConfig.from_dict({"windw": 3})
    with pytest.raises(ValueError, match="temporal"):
        FusionConfig.from_dict({"temporal": "lstm"})


@pytest.mark.parametrize("temporal", ["none", "conv"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_forward_samples_matches_forward(name, temporal):
    f = _fusion(name, temporal)
    N, B, T = 3, 2, 9
    a, v = torch.randn(N, B, T, DA), torch.randn(B, T, DV)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[0, 6:] = False
    out = f.forward_samples(a, v, mask)
    assert out.fused.shape == (N, B, T, D)
    for n in range(N):
        ref = f(a[n], v, mask)
        assert torch.allclose(out.fused[n][mask], ref.fused[mask], atol=1e-5)
        if ref.weights is not None:
            assert torch.allclose(out.weights[n][mask], ref.weights[mask], atol=1e-5)
