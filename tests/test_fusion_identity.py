"""Every fusion starts as the audio-only model, bit for bit, reports the shared visual-weight
definition (``docs/fusion_weights.md``), and lets the gradient open its visual path.

* An AV-VAE initialised from an A-VAE (:meth:`models.vae.AVVAE.init_from_avae`) gives the A-VAE's
  encoder mean / log-variance and decoder log-variance exactly (``torch.equal``), with a visual
  weight of exactly 0 (every fusion except the controls, which are exempt by design).
* On constructed parameters, ``w_v`` is 0 with the visual path off, 1 with the audio path off,
  and 0.5 with equal contributions.
* From the identity start, one Adam step on a loss that needs the video moves the visual weight
  off 0.
"""
from __future__ import annotations

import math
from typing import Callable

import pytest
import torch

from models.fusion import build_fusion
from models.fusion.base import Fusion
from models.registry import FUSIONS
from models.vae import AVAE, AVVAE

from fusion_helpers import SMALL, own_options

NAMES = FUSIONS.names()
F, H, L, LIP, DV = 33, 16, 4, 16, 12

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _is_control(name: str) -> bool:
    return FUSIONS.get(name).control is not None


def _avae(temporal: str) -> AVAE:
    torch.manual_seed(3)
    m = AVAE(n_freq=F, hidden=H, latent_dim=L, temporal=temporal)
    g = torch.Generator().manual_seed(4)
    m.set_input_stats(torch.randn(F, generator=g), torch.rand(F, generator=g) + 0.5)
    m.init_output_bias(torch.randn(F, generator=g))
    return m.eval()


def _inputs(B: int = 2, T: int = 10):
    g = torch.Generator().manual_seed(5)
    power = torch.rand(B, T, F, generator=g) + 1e-3
    lips = torch.rand(B, T, LIP, LIP, generator=g)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 7:] = False
    return power, lips, mask


@pytest.mark.parametrize("temporal", ["none", "conv"])
@pytest.mark.parametrize("name", NAMES)
def test_av_vae_from_avae_is_the_avae_bit_for_bit(name, temporal):
    if _is_control(name):
        pytest.skip(f"{name} is a control ({FUSIONS.get(name).control}): its weight is fixed by design")
    avae = _avae(temporal)
    torch.manual_seed(6)
    m = AVVAE(n_freq=F, hidden=H, latent_dim=L, lip_size=LIP, visual_dim=DV, frontend_hidden=32, temporal=temporal,
              fusion=name, fusion_params=own_options(name, SMALL)).eval()
    copied = m.init_from_avae(avae)
    assert sum("audio identity" in c for c in copied) == 2, copied
    power, lips, mask = _inputs()
    with torch.no_grad():
        v = m.visual_features(lips, mask)
        mu_a, lv_a = avae.encode(power, None, mask)
        mu, lv = m.encode(power, v, mask)
        assert torch.equal(mu, mu_a) and torch.equal(lv, lv_a)
        z = mu_a + torch.randn(mu_a.shape, generator=torch.Generator().manual_seed(7))
        assert torch.equal(m.decode(z, v, mask), avae.decode(z, None, mask))
        zs = torch.randn((3,) + mu_a.shape, generator=torch.Generator().manual_seed(8))  # latent samples
        assert torch.equal(m.decode(zs, v, mask), avae.decode(zs, None, mask))
        sides = {"encoder": m.encode(power, v, mask, return_weights=True).weights,
                 "decoder": m.decode(zs, v, mask, return_weights=True).weights}
        assert all(w is not None for w in sides.values())
        for side, w in sides.items():
            assert torch.equal(w[..., 1], torch.zeros_like(w[..., 1])), side
            assert torch.equal(w[..., 0], torch.ones_like(w[..., 0])), side


def test_constant_control_starts_as_audio_only_only_at_weight_zero():
    torch.manual_seed(0)
    a, v = torch.randn(2, 5, H), torch.randn(2, 5, DV)
    mask = torch.ones(2, 5, dtype=torch.bool)
    assert not build_fusion("constant", audio_dim=H, visual_dim=DV, out_dim=H).init_audio_identity()
    f = build_fusion("constant", audio_dim=H, visual_dim=DV, out_dim=H, visual_weight=0.0)
    assert f.init_audio_identity()
    assert torch.equal(f(a, v, mask).fused, torch.tanh(a))


def test_constant_weight_zero_keeps_the_video_out_after_training():
    """The study's budget-matched audio-only control (``av-vae/video-off``): with visual weight 0
    the fused vector ignores the video for any weights (not only at the identity start), and no
    gradient reaches the visual projection, so training cannot open the path."""
    torch.manual_seed(1)
    f = build_fusion("constant", audio_dim=H, visual_dim=DV, out_dim=H, visual_weight=0.0)
    a, mask = torch.randn(2, 5, H), torch.ones(2, 5, dtype=torch.bool)
    out1 = f(a, torch.randn(2, 5, DV), mask).fused  # random (trained-like) W_a, not the identity
    out2 = f(a, torch.zeros(2, 5, DV), mask).fused  # a black video
    assert torch.equal(out1, out2) and not torch.equal(out1, torch.tanh(a))
    out1.square().sum().backward()
    assert f.proj_a.weight.grad.abs().sum() > 0
    assert f.proj_v.weight.grad is None or torch.count_nonzero(f.proj_v.weight.grad) == 0


# -- the visual-weight definition on constructed parameters ---------------------------------------
D = 6


def _set(lin: torch.nn.Linear, weight: torch.Tensor | float, bias: torch.Tensor | float = 0.0) -> None:
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(weight).expand_as(lin.weight))
        if lin.bias is not None:
            lin.bias.copy_(torch.as_tensor(bias).expand_as(lin.bias))


def _eye() -> torch.Tensor:
    return torch.eye(D)


def _concat(f: Fusion, case: str) -> None:
    wa, wv = {"visual_off": (_eye(), 0 * _eye()), "audio_off": (0 * _eye(), _eye()), "equal": (_eye(), _eye())}[case]
    _set(f.proj, torch.cat([wa, wv], 1))


def _gated(f: Fusion, case: str) -> None:
    _set(f.proj_a, _eye())
    _set(f.proj_v, _eye())
    _set(f.gate, 0.0, {"visual_off": 0.0, "audio_off": 1.0, "equal": 0.5}[case])


def _modality_attention(f: Fusion, case: str) -> None:
    _set(f.proj_a, _eye())
    _set(f.proj_v, _eye())
    _set(f.score[-1], 0.0, 0.0)  # alpha = (0.5, 0.5): rho alpha_v = 0, 1, 0.5
    with torch.no_grad():
        f.rho.fill_({"visual_off": 0.0, "audio_off": 2.0, "equal": 1.0}[case])


def _cross_attention(f: Fusion, case: str) -> None:
    # window 0: each frame attends to its own visual frame only, so the attention output is W_o W_v v
    _set(f.v, _eye())
    _set(f.proj_a, 0 * _eye() if case == "audio_off" else _eye())
    _set(f.o, 0 * _eye() if case == "visual_off" else 2 * _eye())  # the gate is 0.5: c_v = 0.5 * 2 v = v


def _uncertainty(f: Fusion, case: str) -> None:
    _set(f.mu_a, _eye())
    _set(f.mu_v, _eye())
    lim = f.config.logvar_clamp
    lv_a, prec_v = {"visual_off": (0.0, 0.0), "audio_off": (lim, math.exp(lim)), "equal": (0.0, 1.0)}[case]
    _set(f.lv_a, 0.0, lv_a)
    _set(f.prec_v, 0.0, prec_v)


def _dsw(f: Fusion, case: str) -> None:
    _set(f.proj, torch.cat([_eye(), _eye()], 1))
    r = {"visual_off": [1.0, 0.0], "audio_off": [0.0, 1.0], "equal": [1.0, 1.0]}[case]
    _set(f.scorer[-1], 0.0, torch.tensor(r))


#: how to switch each fusion's visual path off, its audio path off, or make them equal
CONSTRUCTIONS: dict[str, Callable[[Fusion, str], None]] = {
    "concat": _concat, "gated": _gated, "modality-attention": _modality_attention,
    "cross-attention": _cross_attention, "uncertainty": _uncertainty, "dynamic-stream-weighting": _dsw,
}
OPTIONS = {"cross-attention": {"window": 0, "heads": 2, "head_dim": D // 2}, "uncertainty": {"logvar_clamp": 40.0}}


@pytest.mark.parametrize("case,expected", [("visual_off", 0.0), ("audio_off", 1.0), ("equal", 0.5)])
@pytest.mark.parametrize("name", NAMES)
def test_visual_weight_definition_on_constructed_parameters(name, case, expected):
    if _is_control(name):
        pytest.skip("controls have their own weight test")
    assert name in CONSTRUCTIONS, f"add a weight-definition construction for the new fusion {name!r}"
    torch.manual_seed(0)
    f = build_fusion(name, audio_dim=D, visual_dim=D, out_dim=D, **OPTIONS.get(name, {})).eval()
    CONSTRUCTIONS[name](f, case)
    x = 0.5 * torch.randn(2, 7, D)
    out = f(x, x.clone(), torch.ones(2, 7, dtype=torch.bool))  # equal inputs: equal streams
    w = out.weights
    assert torch.equal(w.sum(-1), torch.ones(2, 7))
    assert torch.allclose(w[..., 1], torch.full((2, 7), expected), atol=1e-6), w[..., 1]
    if case == "visual_off":
        assert torch.equal(w[..., 1], torch.zeros(2, 7))  # exactly 0, not merely small


@pytest.mark.parametrize("c", [0.0, 0.3, 1.0])
def test_constant_control_weight_is_exact_and_is_the_contribution_share(c):
    torch.manual_seed(0)
    f = build_fusion("constant", audio_dim=D, visual_dim=D + 2, out_dim=D, visual_weight=c)
    a, v = torch.randn(3, 8, D), torch.randn(3, 8, D + 2)
    out = f(a, v, torch.ones(3, 8, dtype=torch.bool))
    assert torch.equal(out.weights, torch.tensor([1 - c, c]).expand(3, 8, 2))
    h_a, h_v = torch.tanh(f.proj_a(a)), torch.tanh(f.proj_v(v))
    c_v = out.fused - (1 - c) * h_a  # the visual contribution
    share = c_v.norm(dim=-1) / ((1 - c) * h_a.norm(dim=-1) + c_v.norm(dim=-1))
    assert torch.allclose(share, torch.full_like(share, c), atol=1e-5)


# -- gradients open the visual path ---------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_one_step_on_a_loss_that_needs_video_opens_the_visual_path(name):
    if _is_control(name):
        pytest.skip("a control's weight does not learn")
    torch.manual_seed(0)
    f = build_fusion(name, audio_dim=H, visual_dim=DV, out_dim=H, **own_options(name, SMALL))
    assert f.init_audio_identity()
    g = torch.Generator().manual_seed(1)
    a, v = torch.randn(4, 16, H, generator=g), torch.randn(4, 16, DV, generator=g)
    mask = torch.ones(4, 16, dtype=torch.bool)
    target = torch.tanh(a) + 0.5 * torch.tanh(v @ torch.randn(DV, H, generator=g))  # needs the video
    out = f(a, v, mask)
    assert torch.equal(out.fused, torch.tanh(a)) and torch.equal(out.weights[..., 1], torch.zeros(4, 16))
    opt = torch.optim.Adam(f.parameters(), lr=1e-2)
    (out.fused - target).pow(2).mean().backward()
    opt.step()
    with torch.no_grad():
        w = f(a, v, mask).weights[..., 1]
    assert float(w.max()) > 1e-3, f"{name}: the visual weight stayed at {float(w.max())} after one step"
