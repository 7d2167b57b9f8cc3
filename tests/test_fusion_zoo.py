"""Fusion modules: configs, shapes, masks, weights, gradient flow, costs (every registered fusion)."""
from __future__ import annotations

import dataclasses
import logging

import pytest
import torch

from models.fusion import FusionConfig, build_fusion, describe_costs
from models.fusion.base import ContextConfig, Fusion, fusion_config_class
from models.registry import FUSIONS

NAMES = FUSIONS.names()
DA, DV, D = 12, 10, 14
SMALL = {"window": 3, "heads": 2, "head_dim": 4}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _has(name: str, option: str) -> bool:
    return option in {f.name for f in dataclasses.fields(fusion_config_class(name))}


def _fusion(name: str, temporal: str = "none", seed: int = 0) -> Fusion:
    torch.manual_seed(seed)
    opts = {k: v for k, v in {**SMALL, "temporal": temporal}.items() if _has(name, k)}
    return build_fusion(name, audio_dim=DA, visual_dim=DV, out_dim=D, **opts).eval()


def _name_temporal(kinds: tuple[str, ...]) -> list[tuple[str, str]]:
    """(fusion, temporal) pairs: every kind for fusions with a temporal context, "none" otherwise."""
    return [(n, t) for n in NAMES for t in kinds if t == "none" or _has(n, "temporal")]


def test_registry_and_config_classes():
    assert NAMES, "no fusion registered"
    for name in NAMES:
        cls = FUSIONS.get(name)
        assert issubclass(cls, Fusion) and cls.name == name
        assert fusion_config_class(name) is cls.config_class
        assert issubclass(cls.config_class, FusionConfig)
        f = build_fusion(name)
        assert isinstance(f.config, cls.config_class)
    with pytest.raises(KeyError, match="known: .*gated"):
        FUSIONS.get("gatd")
    with pytest.raises(KeyError):
        fusion_config_class("gatd")


@pytest.mark.parametrize("name", NAMES)
def test_config_rejects_unknown_keys_types_and_ranges(name):
    cfg = fusion_config_class(name)
    with pytest.raises(ValueError, match="unknown key 'out_dmi'; did you mean 'out_dim'"):
        cfg.from_dict({"out_dmi": 3})
    with pytest.raises(ValueError, match="'audio_dim'"):
        cfg.from_dict({"audio_dim": "12"})
    with pytest.raises(ValueError, match="'visual_dim'"):
        cfg.from_dict({"visual_dim": 0})
    if issubclass(cfg, ContextConfig):
        with pytest.raises(ValueError, match="'temporal'.*one of"):
            cfg.from_dict({"temporal": "lstm"})
        with pytest.raises(ValueError, match="'temporal_kernel'.*odd"):
            cfg.from_dict({"temporal_kernel": 4})
    else:  # a fusion without temporal context has no temporal option at all
        with pytest.raises(ValueError, match="unknown key 'temporal'"):
            cfg.from_dict({"temporal": "conv"})
    # a key of another fusion's config is unknown here
    own = {f.name for f in dataclasses.fields(cfg)}
    for other in NAMES:
        extra = sorted({f.name for f in dataclasses.fields(fusion_config_class(other))} - own)
        if extra:
            with pytest.raises(ValueError, match=f"unknown key '{extra[0]}'"):
                cfg.from_dict({extra[0]: getattr(fusion_config_class(other)(), extra[0])})
    assert cfg.from_dict({"out_dim": 3}).to_dict()["out_dim"] == 3


def test_from_options_inherits_only_what_the_fusion_has_and_tolerates_old_shared_keys(caplog):
    for name in NAMES:
        f = FUSIONS.get(name).from_options({"audio_dim": DA, "visual_dim": DV, "out_dim": D},
                                           inherited={"temporal": "conv", "temporal_kernel": 3})
        assert (f.context is not None) == _has(name, "temporal")
    gated = FUSIONS.get("gated")
    with caplog.at_level(logging.WARNING, logger="models.fusion.base"):
        f = gated.from_options({"window": 4, "prior_expert": True})  # keys of the old shared FusionConfig
    assert "ignoring option(s) ['prior_expert', 'window']" in caplog.text
    with pytest.raises(ValueError, match="unknown key 'windw'"):
        gated.from_options({"windw": 4})


@pytest.mark.parametrize("name,temporal", _name_temporal(("none", "conv", "gru")))
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
    w = out.weights
    assert w.shape == (B, T, 2)
    assert (w >= 0).all() and (w <= 1).all()
    assert torch.allclose(w.sum(-1), torch.ones(B, T), atol=1e-6)
    # padding frames do not change real frames: item 1 alone (length T1) == its rows in the batch,
    # whatever garbage sits in the padding
    a2, v2 = a.clone(), v.clone()
    a2[1, T1:] = 1e3 * torch.randn(T - T1, DA, generator=g)
    v2[1, T1:] = -1e3
    out2 = f(a2, v2, mask)
    alone = f(a[1:2, :T1], v[1:2, :T1], torch.ones(1, T1, dtype=torch.bool))
    assert torch.allclose(out2.fused[1, :T1], alone.fused[0], atol=1e-5)
    assert torch.allclose(out2.fused[0], out.fused[0], atol=1e-6)
    assert torch.allclose(out2.weights[1, :T1], alone.weights[0], atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_level_is_accepted_and_ignored_by_real_fusions(name):
    f = _fusion(name, "conv" if _has(name, "temporal") else "none")
    a, v = torch.randn(2, 7, DA), torch.randn(2, 7, DV)
    mask = torch.ones(2, 7, dtype=torch.bool)
    level = torch.rand(2, 7)
    out = f(a, v, mask, level=level)
    samples = f.forward_samples(a.expand(3, 2, 7, DA), v, mask, level=level)
    assert samples.fused.shape == (3, 2, 7, D)
    if f.uses_level:
        pytest.skip("an oracle reads the level by design")
    ref = f(a, v, mask)
    assert torch.equal(out.fused, ref.fused) and torch.equal(out.weights, ref.weights)


@pytest.mark.parametrize("name", NAMES)
def test_gradient_flows_to_both_streams(name):
    f = _fusion(name, "conv" if _has(name, "temporal") else "none").train()
    a = torch.randn(2, 7, DA, requires_grad=True)
    v = torch.randn(2, 7, DV, requires_grad=True)
    out = f(a, v, torch.ones(2, 7, dtype=torch.bool))
    (out.fused.pow(2).sum()).backward()
    assert a.grad is not None and a.grad.abs().sum() > 0
    assert v.grad is not None and v.grad.abs().sum() > 0
    # every parameter that should learn gets a gradient
    dead = [n for n, p in f.named_parameters() if p.grad is None]
    assert not dead, dead


def test_cross_attention_is_windowed():
    f = _fusion("cross-attention")
    T = 20
    a, v = torch.randn(1, T, DA), torch.randn(1, T, DV)
    m = torch.ones(1, T, dtype=torch.bool)
    out = f(a, v, m)
    # a visual change far outside the window (3 frames) leaves frames 0..5 untouched
    v2 = v.clone()
    v2[0, 10:] += 5.0
    assert torch.allclose(f(a, v2, m).fused[0, :6], out.fused[0, :6], atol=1e-6)
    assert not torch.allclose(f(a, v2, m).fused[0, 10], out.fused[0, 10])


def test_costs_reported_for_every_fusion():
    costs = describe_costs()
    assert set(NAMES) <= set(costs)
    for name in NAMES:
        c = _fusion(name).cost_per_frame()
        assert c["params"] == sum(p.numel() for p in _fusion(name).parameters()) > 0
        assert c["macs"] > 0
    # concat: exactly one (DA + DV) x D linear map
    assert _fusion("concat").cost_per_frame()["macs"] == (DA + DV) * D


@pytest.mark.parametrize("name,temporal", _name_temporal(("none", "conv")))
def test_forward_samples_matches_forward(name, temporal):
    f = _fusion(name, temporal)
    N, B, T = 3, 2, 9
    a, v = torch.randn(N, B, T, DA), torch.randn(B, T, DV)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[0, 6:] = False
    out = f.forward_samples(a, v, mask)
    assert out.fused.shape == (N, B, T, D)
    assert out.weights.shape == (N, B, T, 2)
    for n in range(N):
        ref = f(a[n], v, mask)
        assert torch.allclose(out.fused[n][mask], ref.fused[mask], atol=1e-5)
        assert torch.allclose(out.weights[n][mask], ref.weights[mask], atol=1e-5)


def test_checkpoint_with_an_old_shared_fusion_option_still_loads(tmp_path, caplog):
    """A saved model config may carry an option of the former shared FusionConfig that its
    fusion does not use (e.g. ``window`` for ``gated``): it loads, with a warning."""
    from models.checkpoint import load, save
    from models.vae import AVVAE

    torch.manual_seed(0)
    m = AVVAE(n_freq=17, hidden=8, latent_dim=2, lip_size=8, visual_dim=6, frontend_hidden=8, fusion="gated",
              fusion_params={"window": 4, "temporal": "conv"}).eval()
    assert m.fusion_enc.context is not None
    save(m, tmp_path)
    with caplog.at_level(logging.WARNING, logger="models.fusion.base"):
        m2 = load(tmp_path)
    assert "ignoring option(s) ['window']" in caplog.text
    for k, v in m.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k]), k
