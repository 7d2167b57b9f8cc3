"""Slow end-to-end check of the composite models with quickly trained toy VAEs on synthetic audio
(models.enhancement.toy: a SYNTHETIC stand-in, not the research models).

The mixture picks, frame by frame, the component that explains the noisy frame better, so its
SI-SDR should not fall below the better of its two components run alone (same MCEM settings).
Figures are printed; run with ``pytest -m slow tests/test_switching_slow.py -s``.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models.enhancement.batch import EnhanceInput, make_batch, prepare_item
from models.enhancement.em import run_em
from models.enhancement.mcem import MCEM, MCEMConfig
from models.enhancement.toy import ToyVAE, synth_utterance, train_toy_vae
from models.mixture import MixtureVAE, SwitchingVAE
from models.spectral import lips_to_stft_rate, power_spectrogram


def _si_sdr(est: np.ndarray, ref: np.ndarray) -> float:
    a = np.dot(est, ref) / np.dot(ref, ref)
    e = a * ref
    return float(10 * np.log10(np.sum(e ** 2) / np.sum((est - e) ** 2)))


@pytest.mark.slow
def test_mixture_is_not_worse_than_its_best_component():
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    P, L = [], []
    for _ in range(16):
        x, lips, fps = synth_utterance(rng, 2.0, lip_size=16)
        p = power_spectrogram(torch.from_numpy(x / np.abs(x).max()))
        P.append(p)
        L.append(torch.from_numpy(lips_to_stft_rate(lips, p.shape[0], fps).astype(np.float32) / 255))
    torch.manual_seed(0)
    a = ToyVAE(latent_dim=8, hidden=64)
    torch.manual_seed(1)
    av = ToyVAE(latent_dim=8, hidden=64, visual=True)
    train_toy_vae(a, P, steps=400)
    train_toy_vae(av, P, L, steps=400)
    trng = np.random.default_rng(1)
    items, cleans = [], []
    for i in range(3):
        x, lips, fps = synth_utterance(trng, 2.0, lip_size=16)
        n = trng.standard_normal(x.size).astype(np.float32)
        n *= np.sqrt(np.mean(x ** 2) / np.mean(n ** 2))  # 0 dB white noise
        items.append(prepare_item(EnhanceInput(f"u{i}", x + n, lips, fps), i, need_lips=True))
        cleans.append(x)
    batch = make_batch(items)
    cfg = dict(n_iter=20, tol=None)
    res = {
        "a-only": run_em(MCEM(MCEMConfig(**cfg)), a, batch, rank=8),
        "av-only": run_em(MCEM(MCEMConfig(**cfg)), av, batch, rank=8),
        "mixture": MixtureVAE.from_models(a, av).custom_enhance(batch, "mcem", cfg, rank=8),
        "switching": SwitchingVAE.from_models(a, av).custom_enhance(batch, "mcem", cfg, rank=8),
    }
    sdr = {k: np.mean([_si_sdr(o.estimate, c) for o, c in zip(v, cleans)]) for k, v in res.items()}
    pav = {k: np.mean([o.traces["weights_decoder"][:, 1].mean() for o in res[k]]) for k in ("mixture", "switching")}
    print("mean SI-SDR (dB) at 0 dB white noise:", {k: round(float(v), 2) for k, v in sdr.items()}, "mean P(AV):", pav)
    best = max(sdr["a-only"], sdr["av-only"])
    assert sdr["mixture"] > best - 0.5
    assert sdr["switching"] > best - 0.5
