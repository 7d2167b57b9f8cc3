"""Reliability-aware fusions learn where the information is (small synthetic regression task).

A latent ``s`` (8-d) per frame must be predicted from the fused features. Case "useless video":
clean audio features ``A s + 0.1 n`` and pure-noise video. Case "informative video": very noisy
audio ``A s + 3 n`` and clean video ``V s + 0.1 n``. The learned mean visual weight (the shared
definition of ``docs/fusion_weights.md``) must be low in the first case and high in the second,
for every registered fusion except the controls, both from the audio-identity start the AV
models use (the visual path starts exactly closed and must be opened by training) and from a
random initialisation (slow).
"""
from __future__ import annotations

import pytest
import torch

from models.fusion import build_fusion
from models.registry import FUSIONS

D, S = 16, 8
LEARNING = [n for n in FUSIONS.names() if FUSIONS.get(n).control is None]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _train(name: str, case: str, identity: bool, steps: int = 200, seed: int = 0) -> float:
    torch.manual_seed(seed)
    A = torch.randn(S, D) / S ** 0.5
    V = torch.randn(S, D) / S ** 0.5
    f = build_fusion(name, audio_dim=D, visual_dim=D, out_dim=D)
    if identity:
        assert f.init_audio_identity()
    head = torch.nn.Linear(D, S)
    opt = torch.optim.Adam(list(f.parameters()) + list(head.parameters()), lr=1e-2)
    mask = torch.ones(4, 32, dtype=torch.bool)

    def batch():
        s = torch.randn(4, 32, S)
        if case == "useless":
            return s, s @ A + 0.1 * torch.randn(4, 32, D), torch.randn(4, 32, D)
        return s, s @ A + 3.0 * torch.randn(4, 32, D), s @ V + 0.1 * torch.randn(4, 32, D)

    for _ in range(steps):
        s, a, v = batch()
        loss = (head(f(a, v, mask).fused) - s).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    s, a, v = batch()
    with torch.no_grad():
        return float(f(a, v, mask).weights[..., 1].mean())


@pytest.mark.parametrize("start", ["audio-identity", pytest.param("random", marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", LEARNING)
def test_weights_follow_the_informative_stream(name, start):
    useless = _train(name, "useless", start == "audio-identity")
    informative = _train(name, "informative", start == "audio-identity")
    print(f"{name} ({start}): visual weight with noise video {useless:.3f}, "
          f"with informative video + noisy audio {informative:.3f}")
    assert useless < 0.45, f"{name} should put weight on audio when the video is noise (visual weight {useless:.3f})"
    assert informative > 0.6, f"{name} should move weight to video when audio is noisy (visual weight {informative:.3f})"
    assert informative - useless > 0.3
