"""The composite models mixture-vae / switching-vae (models.mixture): construction, validation,
registry, and enhancement of real (small, untrained) A-VAE/AV-VAE pairs through custom_enhance."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models.checkpoint import build_model, save
from models.enhancement.batch import EnhanceInput, make_batch, prepare_item
from models.enhancement.toy import synth_utterance
from models.mixture import (
    CompositeConfig, MixtureVAE, SwitchingVAE, build_composite, composite_dependencies, is_composite,
)
from models.registry import MODELS

LIP = 16


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    a = build_model("a-vae", {"latent_dim": 4, "hidden": 16})
    av = build_model("av-vae", {"latent_dim": 4, "hidden": 16, "lip_size": LIP, "fusion": "gated", "frontend_hidden": 32, "visual_dim": 16})
    return a.eval(), av.eval()


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    items = []
    for i, d in enumerate([0.7, 0.45]):
        x, lips = synth_utterance(rng, duration_s=d, lip_size=LIP)[:2]
        x = (x + 0.05 * rng.standard_normal(x.size)).astype(np.float32)
        items.append(prepare_item(EnhanceInput(f"utt{i}", x, lips, 25.0), i, need_lips=True))
    return make_batch(items)


def test_registered_and_flagged_as_composites():
    assert {"mixture-vae", "switching-vae"} <= set(MODELS.names())
    assert MODELS.get("mixture-vae") is MixtureVAE and MODELS.get("switching-vae") is SwitchingVAE
    assert is_composite("switching-vae") and not is_composite("a-vae")
    assert composite_dependencies({"audio": "a-vae", "visual": "av-vae/concat"}) == ("a-vae", "av-vae/concat")
    assert MixtureVAE.needs_training is False


def test_config_validation_names_the_problem():
    with pytest.raises(ValueError, match="unknown composite-model option"):
        CompositeConfig.from_dict({"audio": "a", "visual": "b", "prior": 0.5})
    with pytest.raises(ValueError, match="stay_prob"):
        CompositeConfig.from_dict({"stay_prob": 1.0})
    with pytest.raises(ValueError, match="prior_av"):
        CompositeConfig.from_dict({"prior_av": 0})


def test_components_must_be_audio_only_and_audio_visual(pair):
    a, av = pair
    with pytest.raises(ValueError, match="'audio' component must be audio-only"):
        MixtureVAE.from_models(av, av)
    with pytest.raises(ValueError, match="'visual' component must be audio-visual"):
        MixtureVAE.from_models(a, a)
    m = SwitchingVAE.from_models(a, av, stay_prob=0.9)
    sc = m.switch_config()
    assert sc.kind == "markov" and sc.stay_prob == 0.9
    assert MixtureVAE.from_models(a, av).switch_config().kind == "mixture"
    cs = m.cost_summary()
    assert cs["params"] == sum(p.numel() for p in a.parameters()) + sum(p.numel() for p in av.parameters())


def test_build_composite_resolves_labels_and_reports_missing_ones(pair):
    a, av = pair
    table = {"a-vae": a, "av-vae/gated": av}
    m = build_composite("mixture-vae", {"audio": "a-vae", "visual": "av-vae/gated", "prior_av": 0.3}, table.__getitem__)
    assert isinstance(m, MixtureVAE) and m.audio_model is a and m.av_model is av and m.config.prior_av == 0.3
    with pytest.raises(ValueError, match="cannot resolve its visual component 'av-vae/cross'"):
        build_composite("switching-vae", {"audio": "a-vae", "visual": "av-vae/cross"}, table.__getitem__)
    with pytest.raises(ValueError, match="must name other model entries"):
        MixtureVAE.from_config({"audio": "a-vae", "visual": "av-vae/gated"})


def test_from_checkpoints_round_trip(pair, tmp_path):
    a, av = pair
    pa, pv = save(a, tmp_path / "a"), save(av, tmp_path / "av")
    m = SwitchingVAE.from_checkpoints(pa, pv, stay_prob=0.97)
    assert m.config.audio == str(pa) and m.config.stay_prob == 0.97
    for p, q in zip(m.av_model.parameters(), av.parameters()):
        assert torch.equal(p, q)
    m2 = SwitchingVAE.from_config(m.config_dict())  # paths in the config: loadable
    assert m2.config == m.config


@pytest.mark.parametrize("cls", [MixtureVAE, SwitchingVAE])
@pytest.mark.parametrize("algorithm,params", [
    ("mcem", {"n_iter": 3, "n_steps": 4, "burn_in": 2, "final_steps": 4, "final_burn_in": 2}),
    ("ldem", {"n_iter": 3, "n_chains": 3}),
])
def test_custom_enhance_returns_estimates_and_reliability_traces(pair, batch, cls, algorithm, params):
    m = cls.from_models(*pair)
    outs = m.custom_enhance(batch, algorithm, params, rank=4, seed=0)
    assert [o.item_id for o in outs] == batch.item_ids
    for o, it in zip(outs, batch.items):
        assert o.estimate.shape == (it.n_samples,) and np.all(np.isfinite(o.estimate))
        w = o.traces["weights_decoder"]
        assert w.shape == (it.n_frames, 2) and np.allclose(w.sum(1), 1.0, atol=1e-5)
        assert np.all((w >= 0) & (w <= 1))
        assert o.traces["cost"].shape == (3,) and np.all(np.isfinite(o.traces["cost"]))
        assert ("acceptance" in o.traces) == (algorithm == "mcem")
        assert ("switch_transition" in o.traces) == (cls is SwitchingVAE)
        assert o.traces["av_component_weights_decoder"].shape == (it.n_frames, 2)  # the gated AV model's own weights
    print(f"{cls.name}/{algorithm}: mean P(AV) per utterance {[float(o.traces['weights_decoder'][:, 1].mean()) for o in outs]}")


def test_custom_enhance_rejects_unsupported_algorithms_and_params(pair, batch):
    m = MixtureVAE.from_models(*pair)
    with pytest.raises(KeyError, match="no switching E-step.*ldem, mcem"):
        m.custom_enhance(batch, "vem", None)
    with pytest.raises(ValueError, match="unknown parameter"):
        m.custom_enhance(batch, "mcem", {"n_iterations": 3})


def test_custom_enhance_is_batch_invariant(pair, batch):
    """Same item alone or in a batch: same estimate (the real models in float32)."""
    m = MixtureVAE.from_models(*pair)
    params = {"n_iter": 2, "n_steps": 3, "burn_in": 1, "final_steps": 3, "final_burn_in": 1}
    both = m.custom_enhance(batch, "mcem", params, rank=4, seed=1)
    alone = m.custom_enhance(make_batch([batch.items[1]]), "mcem", params, rank=4, seed=1)
    np.testing.assert_allclose(both[1].estimate, alone[0].estimate, atol=1e-5)
    np.testing.assert_allclose(both[1].traces["weights_decoder"], alone[0].traces["weights_decoder"], atol=1e-5)


def test_public_enhance_delegates_to_the_composite_and_isolates_bad_items(pair):
    from models.enhancement.api import enhance

    rng = np.random.default_rng(3)
    x, lips = synth_utterance(rng, duration_s=0.6, lip_size=LIP)[:2]
    x = (x + 0.05 * rng.standard_normal(x.size)).astype(np.float32)
    corr = np.zeros(len(lips), np.float32)
    corr[len(lips) // 2:] = 1.0
    good = EnhanceInput("good", x, lips, 25.0, corruption=corr)
    short = EnhanceInput("short", x[:100], lips[:1], 25.0)
    m = SwitchingVAE.from_models(*pair)
    outs = enhance(m, "ldem", [good, short], params={"n_iter": 2, "n_chains": 2}, nmf_rank=4, progress=False)
    assert outs[0].error is None and outs[0].estimate.shape == x.shape
    T = outs[0].traces["weights_decoder"].shape[0]
    assert outs[0].traces["corruption_stft"].shape == (T,)
    print("error for the too-short item:", outs[1].error)
    assert outs[1].estimate is None and outs[1].error and "short" in outs[1].error  # the item id is named


def test_av_cvae_as_the_visual_component_uses_its_visual_prior(pair, batch):
    """An AV-CVAE (the registered ``av-cvae``: ``av-vae`` with ``visual_prior: true``, here with
    another latent size than the audio component) as the visual component: the component's prior
    is p(z | v), not N(0, I), and its frame evidence (the Laplace score) is computed with it."""
    from models.enhancement.nmf import init_nmf, noise_var
    from models.enhancement.switching import Component, component_from_model, laplace_evidence

    torch.manual_seed(1)
    cvae = build_model("av-cvae", {"latent_dim": 6, "hidden": 16, "lip_size": LIP, "fusion": "concat", "frontend_hidden": 32,
                                   "visual_dim": 16}).eval()
    assert cvae.uses_visual_prior and cvae.latent_dim != pair[0].latent_dim
    m = MixtureVAE.from_models(pair[0], cvae, visual="av-cvae")
    P, mask = batch.power, batch.mask
    comp = component_from_model(m.av_model, P, batch.lips, mask, "visual")
    with torch.no_grad():
        ref_mu, ref_lv = cvae.prior(cvae.visual_features(batch.lips, mask), mask)
    # on real frames (padding: N(0, I), as in every EM context)
    assert torch.equal(comp.prior_mu[mask], ref_mu[mask]) and torch.equal(comp.prior_logvar[mask], ref_lv[mask])
    assert float(comp.prior_logvar[mask].abs().max()) > 1e-3  # really not the standard normal
    st = init_nmf(batch.item_ids, batch.n_frames, P.shape[-1], 4)
    WH, g = noise_var(st.W, st.H), torch.ones(P.shape[:2])
    ev = laplace_evidence(comp, comp.z_init, P, WH, g, mask)
    std = Component("std", comp.decode, torch.zeros_like(comp.prior_mu), torch.zeros_like(comp.prior_logvar), comp.z_init)
    ev_std = laplace_evidence(std, comp.z_init, P, WH, g, mask)
    assert bool(torch.isfinite(ev).all()) and not torch.allclose(ev[mask], ev_std[mask])
    outs = m.custom_enhance(batch, "mcem", {"n_iter": 2, "n_steps": 4, "burn_in": 2, "final_steps": 4, "final_burn_in": 2},
                            rank=4, seed=0)
    for o, it in zip(outs, batch.items):
        assert np.all(np.isfinite(o.estimate)) and o.traces["weights_decoder"].shape == (it.n_frames, 2)


def test_evidence_option_reaches_the_switch(pair):
    assert MixtureVAE.from_models(*pair).switch_config().evidence == "laplace"
    assert SwitchingVAE.from_models(*pair, evidence="log_joint").switch_config().evidence == "log_joint"
    with pytest.raises(ValueError, match="evidence"):
        CompositeConfig.from_dict({"evidence": "exact"})


def test_newton_steps_option_reaches_the_switch_and_changes_the_evidence(pair, batch):
    """``newton_steps`` (Gauss-Newton steps of the Laplace mode) goes from the composite's options
    to the switch; 0 scores at the samples' mean, which gives a different (cheaper) evidence."""
    assert MixtureVAE.from_models(*pair).switch_config().newton_steps == 2
    m0 = MixtureVAE.from_models(*pair, newton_steps=0)
    assert m0.switch_config().newton_steps == 0
    with pytest.raises(ValueError, match="newton_steps"):
        CompositeConfig.from_dict({"newton_steps": -1})
    out = {}
    for n in (0, 2):
        model = MixtureVAE.from_models(*pair, newton_steps=n)
        res = model.custom_enhance(batch, "ldem", {"n_iter": 3, "n_chains": 2}, rank=4, seed=0)
        out[n] = res[0].traces["weights_decoder"]
    assert not np.array_equal(out[0], out[2])


def test_composites_run_through_run_em(pair, batch):
    """The mixture/switching VAEs use the one EM loop: run_em with the SwitchingEM algorithm and
    the composite model (one context per component) gives custom_enhance's results bit for bit,
    with the loop's traces (cost, n_iter, decoder passes of both components)."""
    from models.enhancement.em import EMContext, run_em
    from models.enhancement.mcem import MCEMConfig
    from models.enhancement.switching import SwitchingEM

    params = {"n_iter": 2, "n_steps": 3, "burn_in": 1, "final_steps": 3, "final_burn_in": 1}
    for cls in (MixtureVAE, SwitchingVAE):
        m = cls.from_models(*pair)
        ctx = EMContext(m, batch, algorithm="x", seed=0)
        assert set(ctx.components) == {"audio", "visual"} and ctx.enc_mu is None
        assert ctx.components["visual"].vfeat is not None and ctx.components["audio"].vfeat is None
        ours = run_em(SwitchingEM(MCEMConfig(**params), m.switch_config(), name=f"{m.name}/mcem"), m, batch, rank=4, seed=3)
        ref = m.custom_enhance(batch, "mcem", params, rank=4, seed=3)
        for a, b in zip(ours, ref):
            assert a.item_id == b.item_id and np.array_equal(a.estimate, b.estimate)
            assert set(a.traces) == set(b.traces) and int(a.traces["n_iter"]) == 2
            assert int(a.traces["decoder_calls"]) > 0 and np.array_equal(a.traces["cost"], b.traces["cost"])


def test_a_converged_utterance_leaves_the_batch_in_the_switching_em(pair, batch):
    """With tol, an utterance whose cost settles is finished and leaves the batch (as in run_em
    for a single model): fewer iterations and decoder passes than the other, and the same result
    as when it is enhanced alone."""
    m = SwitchingVAE.from_models(*pair)
    params = {"n_iter": 12, "n_steps": 3, "burn_in": 1, "final_steps": 3, "final_burn_in": 1, "tol": 7e-3}
    both = m.custom_enhance(batch, "mcem", params, rank=4, seed=0)
    n = [int(o.traces["n_iter"]) for o in both]
    calls = [int(o.traces["decoder_calls"]) for o in both]
    print(f"iterations {n}, decoder passes {calls}")
    first = int(np.argmin(n))
    assert n[first] < n[1 - first] and calls[first] < calls[1 - first]
    assert len(both[first].traces["cost"]) == n[first] and len(both[first].traces["free_energy"]) == n[first]
    alone = m.custom_enhance(make_batch([batch.items[first]]), "mcem", params, rank=4, seed=0)[0]
    assert int(alone.traces["n_iter"]) == n[first]
    np.testing.assert_allclose(both[first].estimate, alone.estimate, atol=1e-5)
    np.testing.assert_allclose(both[first].traces["switch_posterior"], alone.traces["switch_posterior"], atol=1e-5)
