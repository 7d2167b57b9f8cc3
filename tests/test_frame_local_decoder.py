"""``SpeechModel.frame_local_decoder`` is honest, and MCEM's shortcut that relies on it changes
nothing.

* For every registered fusion (with and without temporal context), the A-VAE, the AV-CVAE and
  the toy model: perturbing the latent of one frame changes the decoder output of other frames
  exactly when the model does *not* claim a frame-local decoder (random, non-identity weights, so
  a context path cannot hide behind the audio-identity start).
* MCEM with the kept variances carried along the accepted moves (frame-local decoders) gives
  the same estimates, traces and M-step inputs as decoding the kept states again.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models.enhancement.api import make_algorithm
from models.enhancement.batch import EnhanceInput, make_batch, prepare_item
from models.enhancement.em import run_em
from models.enhancement.toy import ToyVAE
from models.registry import FUSIONS
from models.vae import AVAE, AVCVAE, AVVAE

from fusion_helpers import SMALL, own_options

F, H, L, LIP, DV = 33, 16, 4, 16, 12

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _scramble(m: torch.nn.Module) -> torch.nn.Module:
    """Random weights everywhere (no identity start, no zero gate), so every path is live; small
    enough that no gate or softmax saturates (a saturated one would hide a coupling)."""
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    return m.eval()


LABELS = ["a-vae", "av-cvae", "toy"] + [f"av-vae/{n}/{t}" for n in FUSIONS.names() for t in ("none", "conv")]


def _model(label: str):
    torch.manual_seed(0)
    if label == "a-vae":
        return AVAE(n_freq=F, hidden=H, latent_dim=L)
    if label == "av-cvae":
        return AVCVAE(n_freq=F, hidden=H, latent_dim=L, lip_size=LIP, visual_dim=DV, frontend_hidden=32, fusion="concat")
    if label == "toy":
        return ToyVAE(n_freq=F, latent_dim=L, hidden=H)
    _, name, temporal = label.split("/")
    return AVVAE(n_freq=F, hidden=H, latent_dim=L, lip_size=LIP, visual_dim=DV, frontend_hidden=32,
                 temporal=temporal, fusion=name, fusion_params=own_options(name, SMALL))


@pytest.mark.parametrize("label", LABELS)
def test_frame_local_decoder_claim_matches_the_decoder(label):
    m = _scramble(_model(label))
    B, T = 2, 9
    mask = torch.ones(B, T, dtype=torch.bool)
    lips = torch.rand(B, T, LIP, LIP, generator=torch.Generator().manual_seed(1))
    level = torch.rand(B, T, generator=torch.Generator().manual_seed(2))
    kw = {"level": level} if getattr(m, "uses_level", False) else {}
    with torch.no_grad():
        v = m.visual_features(lips, mask) if m.is_audio_visual else None
    z = torch.randn(B, T, L, generator=torch.Generator().manual_seed(3)).requires_grad_(True)
    d = m.decode(z, v, mask, **kw)
    others = torch.ones(T, dtype=torch.bool)
    others[4] = False
    # the gradient of the other frames' outputs with respect to frame 4's latent
    (grad,) = torch.autograd.grad(d[:, others].sum(), z, allow_unused=True)
    coupled = grad is not None and bool(grad[:, 4].abs().max() > 0)
    assert coupled == (not m.frame_local_decoder), (label, m.frame_local_decoder)
    if m.frame_local_decoder:  # and the values: moving frame 4 leaves every other frame as it was
        with torch.no_grad():
            zp = z.detach().clone()
            zp[:, 4] += 1.0
            d0, dp = m.decode(z.detach(), v, mask, **kw), m.decode(zp, v, mask, **kw)
        assert not torch.equal(d0[:, 4], dp[:, 4]) and torch.equal(d0[:, others], dp[:, others])


def _items(n: int = 3):
    g = torch.Generator().manual_seed(5)
    items = []
    for i in range(n):
        n_samples = 16000 * 2 // (i + 1) + 1000 * i
        speech = torch.randn(n_samples, generator=g).numpy().astype(np.float32) * 0.1
        noise = torch.randn(n_samples, generator=g).numpy().astype(np.float32) * 0.05
        items.append(prepare_item(EnhanceInput(f"u{i}", speech + noise, None, 0.0), i))
    return items


def test_mcem_carried_variances_equal_decoding_the_kept_states(monkeypatch):
    """The same chains, M-steps and estimates whether the kept variances follow the accepted moves
    or are decoded again (the toy decoder is frame-local; the second run turns the claim off)."""
    torch.manual_seed(0)
    model = ToyVAE(n_freq=513, latent_dim=L, hidden=H).eval()
    batch = make_batch(_items(), "cpu")
    cfg = dict(n_iter=6, n_steps=8, burn_in=5, final_steps=10, final_burn_in=7, tol=None)
    fast = run_em(make_algorithm("mcem", cfg), model, batch, seed=3)
    monkeypatch.setattr(ToyVAE, "frame_local_decoder", False)
    slow = run_em(make_algorithm("mcem", cfg), model, batch, seed=3)
    for a, b in zip(fast, slow):
        np.testing.assert_array_equal(a.estimate, b.estimate)
        np.testing.assert_array_equal(a.traces["cost"], b.traces["cost"])
        np.testing.assert_array_equal(a.traces["acceptance"], b.traces["acceptance"])
        # one decoder pass per chain at the end of the burn-in instead of one over the kept states:
        # the same count here; the saving is the size of that pass (1 state instead of 3)
        assert a.traces["decoder_calls"] == b.traces["decoder_calls"]
