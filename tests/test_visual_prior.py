"""The visual prior p(z | v) (AV-CVAE) in every EM algorithm, and its reliability trace.

* With p(z | v) = N(0, I) (an AV-CVAE whose prior heads are zero), every algorithm gives exactly
  what the same network without a visual prior (``av-vae``) gives.
* Shifting the prior mean pulls each algorithm's E-step latents towards it (same random draws
  otherwise): MCEM through the MH target, PEEM and LDEM through the gradient of the prior term,
  VEM through its KL against p(z | v).
* The prior's precision is recorded as ``weights_prior`` and used by the reliability summaries.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.enhancement.api import EnhanceInput, enhance, make_algorithm
from models.enhancement.batch import make_batch, prepare_item
from models.enhancement.em import EMContext
from models.enhancement.nmf import init_nmf
from models.enhancement.toy import ToyVAE, synth_utterance
from models.vae import AVCVAE, AVVAE, prior_visual_weight

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = {
    "mcem": {"n_iter": 3, "n_steps": 6, "burn_in": 3, "final_steps": 6, "final_burn_in": 3},
    "ldem": {"n_iter": 4, "n_chains": 3},
    "peem": {"n_iter": 3, "n_steps": 3},
    "vem": {"n_iter": 4},
}
ALGORITHMS = sorted(FAST)
LIP = 8
TINY = {"hidden": 16, "latent_dim": 4, "lip_size": LIP, "visual_dim": 8, "frontend_hidden": 16}


def _inputs(n: int = 2, seed: int = 7) -> list[EnhanceInput]:
    out = []
    for i in range(n):
        x, lips, fps = synth_utterance(np.random.default_rng(seed + i), 0.8 + 0.2 * i, lip_size=LIP)
        noise = np.random.default_rng(seed + 40 + i).standard_normal(x.size).astype(np.float32)
        noise *= np.sqrt(np.sum(x ** 2) / np.sum(noise ** 2))
        corr = np.zeros(len(lips), np.float32)
        corr[len(lips) // 2:] = 1.0
        out.append(EnhanceInput(f"c0/u{i}", (x + noise).astype(np.float32), lips, fps, clean=x, noise=noise, corruption=corr))
    return out


def _pair() -> tuple[AVCVAE, AVVAE]:
    """An AV-CVAE with p(z|v) = N(0, I) (zero prior heads) and an av-vae with the same other weights."""
    torch.manual_seed(0)
    cvae = AVCVAE(fusion="concat", **TINY).eval()
    with torch.no_grad():
        for head in (cvae.prior_mu, cvae.prior_lv):
            head.weight.zero_()
            head.bias.zero_()
    vae = AVVAE(fusion="concat", **TINY).eval()
    missing, unexpected = vae.load_state_dict(cvae.state_dict(), strict=False)
    assert not missing and all(k.startswith("prior_") for k in unexpected)
    return cvae, vae


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_standard_normal_visual_prior_is_the_plain_path(algorithm):
    cvae, vae = _pair()
    inputs = _inputs()
    a = enhance(cvae, algorithm, inputs, params=FAST[algorithm], progress=False)
    b = enhance(vae, algorithm, inputs, params=FAST[algorithm], progress=False)
    for oa, ob in zip(a, b):
        assert oa.error is None and ob.error is None
        np.testing.assert_array_equal(oa.estimate, ob.estimate)
        np.testing.assert_array_equal(oa.traces["cost"], ob.traces["cost"])
        # the reliability trace: a prior as broad as N(0, I) has precision share 1/2
        assert "weights_prior" in oa.traces and "weights_prior" not in ob.traces
        w = oa.traces["weights_prior"]
        assert w.shape == (len(oa.traces["gain_g"]), 2)
        np.testing.assert_allclose(w, 0.5)


class _ShiftedPrior(ToyVAE):
    """Toy frame-wise VAE whose prior is N(shift, var I) on every frame (a stand-in visual prior)."""

    uses_visual_prior = True

    def __init__(self, shift: float, var: float) -> None:
        torch.manual_seed(3)
        super().__init__(latent_dim=4, hidden=32)
        self.shift, self.var = shift, var

    def prior(self, vfeat, mask):
        B, T = mask.shape
        mu = torch.full((B, T, self.latent_dim), self.shift)
        return mu, torch.full_like(mu, math.log(self.var))


def _e_step_latents(model, algorithm: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents after one E-step (same seed, NMF init and inputs for every model), and the mask."""
    items = [prepare_item(inp, i) for i, inp in enumerate(_inputs())]
    batch = make_batch(items)
    algo = make_algorithm(algorithm, FAST[algorithm])
    ctx = EMContext(model, batch, algorithm=algorithm, seed=0)
    st = init_nmf(batch.pair_ids, batch.n_frames, ctx.F, 10, seed=0, dtype=ctx.P.dtype)
    algo.init(ctx)
    algo.e_step(ctx, st, 0)
    z = algo.m if algorithm == "vem" else algo.z
    if z.dim() == 4:  # LDEM chains
        z = z.mean(0)
    return z.detach(), batch.mask


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_shifted_prior_mean_pulls_the_e_step(algorithm):
    base, mask = _e_step_latents(_ShiftedPrior(0.0, 0.25), algorithm)
    up, _ = _e_step_latents(_ShiftedPrior(2.0, 0.25), algorithm)
    down, _ = _e_step_latents(_ShiftedPrior(-2.0, 0.25), algorithm)
    d_up = (up - base)[mask].mean()
    d_down = (down - base)[mask].mean()
    assert d_up > 1e-3 and d_down < -1e-3, (float(d_up), float(d_down))


def test_prior_visual_weight_mapping():
    lv = torch.log(torch.tensor([[1.0, 1.0], [0.25, 0.25], [4.0, 4.0], [1.0, 1 / 3]]))
    w = prior_visual_weight(lv)
    np.testing.assert_allclose(w[:, 1].numpy(), [0.5, 0.8, 0.2, 2 / 3], rtol=1e-6)
    np.testing.assert_allclose(w.sum(-1).numpy(), 1.0, rtol=1e-6)


def test_weights_prior_trace_and_summaries(tmp_path):
    """A model with a visual prior gets ``weights_prior`` = its precision share; the scoring
    summaries and the report diagnostics read it first (it is the AV-CVAE's reliability trace)."""
    from benchmark.report.diagnostics import visual_weight
    from benchmark.runner.stages import weight_summaries

    out = enhance(_ShiftedPrior(0.0, 0.25), "peem", _inputs(1), params=FAST["peem"], progress=False)[0]
    np.testing.assert_allclose(out.traces["weights_prior"][:, 1], 0.8, rtol=1e-6)
    T = 8
    w = np.stack([np.full(T, 0.3), np.r_[np.full(4, 0.7), np.full(4, 0.6)]], -1).astype(np.float32)
    path = tmp_path / "u.npz"
    np.savez(path, weights_prior=w, corruption_stft=np.r_[np.zeros(4), np.ones(4)].astype(np.float32))
    s = weight_summaries(path)
    assert s["visual_weight_mean"] == pytest.approx(0.65)
    assert s["visual_weight_auc"] == pytest.approx(1.0)
    np.testing.assert_allclose(visual_weight({"weights_prior": w}), w[:, 1])
    # the prior's trace comes before the fusion weights of the same model; without it, the decoder's
    np.testing.assert_allclose(visual_weight({"weights_prior": w, "weights_decoder": 1 - w}), w[:, 1])
    np.testing.assert_allclose(visual_weight({"weights_encoder": w, "weights_decoder": 1 - w}), 1 - w[:, 1])
