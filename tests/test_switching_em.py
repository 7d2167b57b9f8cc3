"""The switching EM (models.enhancement.switching) on small synthetic problems.

Figures (switch posteriors, AUC, costs) are printed; the assertions are behavioural (ordering,
monotonicity, equality with brute force / one-by-one runs), not constants of a run.
"""
from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from switching_toys import ToyAudioVAE, ToyAVVAE, make_problem, make_templates, rescaled_component  # noqa: E402

from benchmark.seeding import derive_seed  # noqa: E402
from models.enhancement.ldem import LDEMConfig  # noqa: E402
from models.enhancement.mcem import MCEMConfig  # noqa: E402
from models.enhancement.nmf import NMFState, init_nmf, is_cost, m_step  # noqa: E402
from models.enhancement.switch_posterior import (  # noqa: E402
    SwitchConfig, SwitchParams, forward_backward, mixture_posterior, switch_posterior,
)
from models.enhancement.switching import (  # noqa: E402
    Component, component_from_model, emission_scores, gaussian_entropy, laplace_evidence,
    log_prior_density, particle_weights, posterior_precision, run_switching_em,
)

DT = torch.float64
MCEM_SMALL = MCEMConfig(n_iter=15, n_steps=10, burn_in=5, final_steps=20, final_burn_in=10, tol=None)
LDEM_SMALL = LDEMConfig(n_iter=15, n_chains=5, lr=0.01, n_steps=5, tol=None)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _auc(score: torch.Tensor, label: torch.Tensor) -> float:
    """ROC AUC by pairwise comparison (ties count one half)."""
    pos, neg = score[label], score[~label]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).to(DT) + 0.5 * (diff == 0).to(DT)).mean())


# -- forward-backward and the mixture posterior ---------------------------------------------
def _brute_force(log_emit, log_init, log_trans):
    T, K = log_emit.shape
    post = torch.zeros(T, K, dtype=DT)
    pair = torch.zeros(T - 1, K, K, dtype=DT)
    lps = []
    paths = list(itertools.product(range(K), repeat=T))
    for path in paths:
        lp = log_init[path[0]] + log_emit[0, path[0]]
        for t in range(1, T):
            lp = lp + log_trans[path[t - 1], path[t]] + log_emit[t, path[t]]
        lps.append(lp)
    lps = torch.stack(lps)
    log_z = torch.logsumexp(lps, 0)
    w = torch.exp(lps - log_z)
    for path, wi in zip(paths, w):
        for t in range(T):
            post[t, path[t]] += wi
        for t in range(1, T):
            pair[t - 1, path[t - 1], path[t]] += wi
    return post, pair, log_z


def test_forward_backward_matches_brute_force_and_ignores_padding():
    g = torch.Generator().manual_seed(0)
    T, K = 6, 2
    log_emit = 3 * torch.randn(1, T, K, generator=g, dtype=DT)
    log_init = torch.log(torch.tensor([[0.3, 0.7]], dtype=DT))
    A = torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=DT)
    post, pair, lz = forward_backward(log_emit, log_init, A.log()[None], torch.ones(1, T, dtype=torch.bool))
    bp, bpair, blz = _brute_force(log_emit[0], log_init[0], A.log())
    assert torch.allclose(post[0], bp, atol=1e-10)
    assert torch.allclose(pair[0], bpair, atol=1e-10)
    assert torch.allclose(lz[0], blz, atol=1e-10)
    # the same utterance padded with 3 frames of garbage emissions, batched with another one
    pad = torch.cat([log_emit, 50 * torch.randn(1, 3, K, generator=g, dtype=DT)], 1)
    other = torch.randn(1, T + 3, K, generator=g, dtype=DT)
    mask = torch.tensor([[True] * T + [False] * 3, [True] * (T + 3)])
    post2, pair2, lz2 = forward_backward(torch.cat([pad, other]), log_init.expand(2, K), A.log().expand(2, K, K), mask)
    assert torch.allclose(post2[0, :T], bp, atol=1e-10) and float(post2[0, T:].abs().sum()) == 0.0
    assert torch.allclose(pair2[0, : T - 1], bpair, atol=1e-10)
    assert torch.allclose(lz2[0], blz, atol=1e-10)


def test_mixture_posterior_is_markov_with_identical_rows():
    g = torch.Generator().manual_seed(1)
    log_emit = 2 * torch.randn(2, 9, 2, generator=g, dtype=DT)
    mask = torch.ones(2, 9, dtype=torch.bool)
    log_pi = torch.log(torch.tensor([[0.4, 0.6], [0.4, 0.6]], dtype=DT))
    p_mix, lz_mix = mixture_posterior(log_emit, log_pi, mask)
    p_fb, _, lz_fb = forward_backward(log_emit, log_pi, log_pi[:, None, :].expand(2, 2, 2), mask)
    assert torch.allclose(p_mix, p_fb, atol=1e-10) and torch.allclose(lz_mix, lz_fb, atol=1e-10)


# -- M-step monotonicity ----------------------------------------------------------------------
def _random_mstep_problem(seed: int = 0, B: int = 2, T: int = 30, F: int = 12, K: int = 3, P: int = 6):
    g = torch.Generator().manual_seed(seed)
    X2 = torch.rand(B, T, F, generator=g, dtype=DT) ** 3 * 5
    sig2 = torch.exp(torch.randn(P, B, T, F, generator=g, dtype=DT))
    raw = torch.rand(P, B, T, generator=g, dtype=DT)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 20:] = False
    wts = raw / raw.sum(0, keepdim=True) * mask
    st = init_nmf(["a", "b"], [T, 20], F, K, dtype=DT)
    return X2 * mask[..., None], sig2, wts, st, mask


def test_weighted_nmf_gain_updates_never_increase_the_expected_cost():
    """The responsibility-weighted M-step of nmf.m_step (the K-component EM) is MM: each of the
    W, H, g updates never increases the weighted cost of nmf.is_cost."""
    X2, sig2, wts, st, mask = _random_mstep_problem()
    prev = is_cost(X2, sig2, st, mask, weights=wts)
    worst = -float("inf")
    for _ in range(25):
        for part in ("W", "H", "g"):
            st = m_step(X2, sig2, st, mask, update=part, weights=wts)
            c = is_cost(X2, sig2, st, mask, weights=wts)
            worst = max(worst, float((c - prev).max()))
            assert bool((c <= prev + 1e-9 * prev.abs()).all()), f"{part} update increased the cost: {prev} -> {c}"
            prev = c
    print(f"weighted IS-NMF: 75 updates, largest per-step change {worst:.3e} (never positive)")


def test_uniform_weights_reproduce_the_mcem_m_step():
    X2, sig2, _, st, mask = _random_mstep_problem(seed=2)
    P = sig2.shape[0]
    wts = torch.full(sig2.shape[:3], 1.0 / P, dtype=DT) * mask
    new = m_step(X2, sig2, st, mask, weights=wts)
    ref = m_step(X2, sig2, NMFState(st.W, st.H, st.g), mask)
    assert torch.allclose(new.W, ref.W, rtol=1e-10) and torch.allclose(new.H[mask], ref.H[mask], rtol=1e-10)
    assert torch.allclose(new.g[mask], ref.g[mask], rtol=1e-10)
    torch.testing.assert_close(is_cost(X2, sig2, new, mask, weights=wts), is_cost(X2, sig2, new, mask), rtol=1e-12, atol=0)


@pytest.mark.parametrize("kind,learn", [("mixture", False), ("markov", False), ("mixture", True), ("markov", True)])
def test_free_energy_never_increases_with_fixed_samples(kind, learn):
    """With the latent samples held fixed, each EM round (q(m) update, then W, H, g and the
    switch parameters) cannot increase -log Z, the negative bound on log p(x) (exact EM in q(m))."""
    X2, sig2, _, st, mask = _random_mstep_problem(seed=3, P=6)
    n_per = [3, 3]
    sp = SwitchParams.from_config(SwitchConfig(kind=kind, prior_av=0.3, stay_prob=0.9), 2, "cpu", DT)
    W, H, g = st.W, st.H, st.g
    fes = []
    for _ in range(20):
        post, pair, lz = switch_posterior(emission_scores(X2, sig2, n_per, W, H, g), mask, sp)
        fes.append(-lz)
        nst = m_step(X2, sig2, NMFState(W, H, g), mask, weights=particle_weights(post, n_per))
        W, H, g = nst.W, nst.H, nst.g
        if learn:
            sp.update(post, pair, mask)
    fes = torch.stack(fes)
    print(f"{kind} (learn={learn}) -log Z: {fes[0].tolist()} -> {fes[-1].tolist()}")
    assert bool((fes[1:] <= fes[:-1] + 1e-9 * fes[:-1].abs()).all())
    assert bool((fes[-1] < fes[0]).all())


# -- the switch posterior on a problem where the answer is known ----------------------------
def _run_toy(kind, estep, corrupt, snr_db=5.0, seed=3, T=100, latent_posterior="conditional", evidence="laplace"):
    D = make_templates()
    X2, _, _, lips, cls = make_problem(D, T, seed=seed, corrupt=corrupt, snr_db=snr_db)
    mask = torch.ones(1, T, dtype=torch.bool)
    comps = [component_from_model(ToyAudioVAE(D), X2[None], None, mask, "audio"),
             component_from_model(ToyAVVAE(D), X2[None], lips[None], mask, "visual")]
    st = init_nmf([f"toy{seed}"], [T], D.shape[1], 4, dtype=DT)
    return run_switching_em(X2[None], mask, comps, SwitchConfig(kind=kind, latent_posterior=latent_posterior, evidence=evidence),
                            estep, [seed], st.W, st.H)


# -- the frame evidence of the conditional switch step (Laplace: log joint + entropy) ---------
def _one_dim_problem(scale: float, T: int = 5, F: int = 24, seed: int = 0):
    """A nonlinear 1-D latent model whose frame evidence is computed by quadrature; ``scale``
    rescales the latent (prior N(0, scale^2), decoder of z / scale): the same evidence."""
    g = torch.Generator().manual_seed(seed)
    m, U = torch.randn(F, generator=g, dtype=DT), 0.8 * torch.randn(1, F, generator=g, dtype=DT)
    WH = 0.5 * torch.ones(1, T, F, dtype=DT)
    var = torch.exp(m + torch.tanh(torch.randn(T, 1, generator=g, dtype=DT)) @ U)
    X2 = ((var + WH[0]) * -torch.log(torch.rand(T, F, generator=g, dtype=DT)))[None]  # |x|^2 ~ Vx Exp(1)
    zero = torch.zeros(1, T, 1, dtype=DT)
    comp = Component("c", decode=lambda z: m + torch.tanh(z / scale) @ U, prior_mu=zero,
                     prior_logvar=zero + 2 * torch.log(torch.tensor(scale, dtype=DT)), z_init=zero)
    grid = torch.linspace(-8 * scale, 8 * scale, 40001, dtype=DT)
    zz = grid[:, None, None, None].expand(-1, 1, T, 1)
    Vx = torch.exp(comp.decode(zz)) + WH
    lj = -(Vx.log() + X2 / Vx).sum(-1) + log_prior_density(comp, zz)  # [N, 1, T] log joint on the grid
    exact = torch.logsumexp(lj, 0) + torch.log(grid[1] - grid[0])
    post = torch.softmax(lj, 0)
    mean = (post * grid[:, None, None]).sum(0)[..., None]  # posterior mean [1, T, 1]
    return comp, X2, WH, exact, (post * lj).sum(0), mean


def test_laplace_precision_is_the_fisher_information_plus_the_prior_precision():
    g = torch.Generator().manual_seed(4)
    B, T, F, L = 2, 3, 10, 3
    m, U = torch.randn(F, generator=g, dtype=DT), torch.randn(L, F, generator=g, dtype=DT)
    plv = torch.randn(B, T, L, generator=g, dtype=DT)  # a visual prior p(z|v): per-frame variances
    comp = Component("lin", decode=lambda z: m + z @ U, prior_mu=torch.zeros(B, T, L, dtype=DT), prior_logvar=plv,
                     z_init=torch.zeros(B, T, L, dtype=DT))
    z = torch.randn(B, T, L, generator=g, dtype=DT)
    WH, gg = torch.rand(B, T, F, generator=g, dtype=DT) + 0.1, torch.rand(B, T, generator=g, dtype=DT) + 0.5
    lam, _, _ = posterior_precision(comp, z, WH, gg)
    gs = gg[..., None] * torch.exp(m + z @ U)
    a2 = (gs / (gs + WH)) ** 2
    ref = torch.einsum("if,btf,jf->btij", U, a2, U) + torch.diag_embed(torch.exp(-plv))
    assert torch.allclose(lam, ref, rtol=1e-5)
    ent = gaussian_entropy(lam)
    ref_ent = 0.5 * L * (1 + torch.log(torch.tensor(2 * torch.pi, dtype=DT))) - 0.5 * torch.logdet(ref)
    assert torch.allclose(ent, ref_ent, rtol=1e-5)


@pytest.mark.parametrize("scale", [1.0, 0.2, 5.0])
def test_laplace_evidence_matches_quadrature_where_the_log_joint_does_not(scale):
    """The frame evidence log p(x_t) by quadrature against the Laplace score (log joint +
    entropy) at the posterior mean and against the mean log joint (the former score): the
    Laplace score stays within a fraction of a nat at every latent scale, the log joint misses
    by the entropy, which moves with the scale."""
    comp, X2, WH, exact, mean_lj, mean = _one_dim_problem(scale)
    ones = torch.ones(1, X2.shape[1], dtype=DT)
    lap = laplace_evidence(comp, mean, X2, WH, ones, ones.bool())
    print(f"scale {scale}: exact {exact[0].tolist()}\n  laplace {lap[0].tolist()}\n  mean log joint {mean_lj[0].tolist()}")
    assert float((lap - exact).abs().max()) < 0.35
    assert float((mean_lj - exact).abs().min()) > 0.5
    if scale != 1.0:  # the old score's error is the entropy: it shifts by log(scale) per latent dimension
        _, _, _, exact1, mean_lj1, _ = _one_dim_problem(1.0)
        assert torch.allclose((mean_lj - exact) - (mean_lj1 - exact1), -torch.log(torch.tensor(scale, dtype=DT)).expand(1, 5), atol=1e-3)


def test_laplace_evidence_does_not_depend_on_the_scale_of_the_latent():
    D = make_templates()
    T = 20
    X2, _, _, _, _ = make_problem(D, T, seed=1)
    mask = torch.ones(1, T, dtype=torch.bool)
    base = component_from_model(ToyAudioVAE(D), X2[None], None, mask, "audio")
    z = torch.randn(1, T, 2, generator=torch.Generator().manual_seed(2), dtype=DT)
    WH, gg = torch.full((1, T, D.shape[1]), 2.0, dtype=DT), torch.ones(1, T, dtype=DT)
    ev = laplace_evidence(base, z, X2[None], WH, gg, mask)
    for s in (0.1, 10.0):
        other = rescaled_component(base, s, "rescaled")
        assert torch.allclose(laplace_evidence(other, s * z, X2[None], WH, gg, mask), ev, atol=1e-6)
        # the log joint alone differs by -L log s per frame
        assert torch.allclose(log_prior_density(other, s * z) - log_prior_density(base, z),
                              torch.full((1, T), -2 * float(torch.log(torch.tensor(s))), dtype=DT), atol=1e-9)


def _run_rescaled(scale, evidence, which="audio", kind="mixture", T=100, seed=3):
    """Switch posterior between a toy model and the same model with its latent rescaled by
    ``scale`` (exactly equally good, posteriors of different widths): P(m_t = rescaled)."""
    D = make_templates()
    X2, _, _, lips, _ = make_problem(D, T, seed=seed, snr_db=5.0)
    mask = torch.ones(1, T, dtype=torch.bool)
    base = (component_from_model(ToyAudioVAE(D), X2[None], None, mask, "audio") if which == "audio"
            else component_from_model(ToyAVVAE(D), X2[None], lips[None], mask, "visual"))
    st = init_nmf([f"toy{seed}"], [T], D.shape[1], 4, dtype=DT)
    r = run_switching_em(X2[None], mask, [base, rescaled_component(base, scale, "rescaled")],
                         SwitchConfig(kind=kind, evidence=evidence), MCEM_SMALL, [seed], st.W, st.H)
    return r.switch_post[0, :, 1]


@pytest.mark.parametrize("which", ["audio", "av"])
def test_switch_is_unbiased_between_equally_good_components_of_different_widths(which):
    """The former score (log joint without the entropy) picks the narrower posterior on most
    frames; the Laplace evidence gives about one half (docs/switching_em.md 2a'')."""
    out = {}
    for scale in (0.3, 3.0):
        old = _run_rescaled(scale, "log_joint", which)
        new = _run_rescaled(scale, "laplace", which)
        out[scale] = (float(old.mean()), float(new.mean()))
        narrower_old = old.mean() if scale < 1 else 1 - old.mean()
        assert narrower_old > 0.75  # the bias being fixed
        assert abs(float(new.mean()) - 0.5) < 0.15
    print(f"{which}: mean P(rescaled) (log_joint, laplace) by scale {out}")


def test_laplace_switch_picks_the_clearly_better_component():
    """Same widths, one component explains the frames (AV toy with the true video) and the other
    does not (its video is noise): the switch picks the good one on nearly every frame."""
    D = make_templates()
    T = 100
    X2, _, _, lips, _ = make_problem(D, T, seed=4, snr_db=5.0)
    bad_lips = torch.rand(lips.shape, generator=torch.Generator().manual_seed(5), dtype=DT)
    mask = torch.ones(1, T, dtype=torch.bool)
    comps = [component_from_model(ToyAVVAE(D), X2[None], bad_lips[None], mask, "bad"),
             component_from_model(ToyAVVAE(D), X2[None], lips[None], mask, "good")]
    st = init_nmf(["toy4"], [T], D.shape[1], 4, dtype=DT)
    for estep in (MCEM_SMALL, LDEM_SMALL):
        p = run_switching_em(X2[None], mask, comps, SwitchConfig(), estep, [4], st.W, st.H).switch_post[0, :, 1]
        print(f"{type(estep).__name__}: mean P(good) {p.mean():.3f}, frames > 0.5: {(p > 0.5).double().mean():.2f}")
        assert float(p.mean()) > 0.8


@pytest.mark.parametrize("kind", ["mixture", "markov"])
@pytest.mark.parametrize("estep", [MCEM_SMALL, LDEM_SMALL], ids=["mcem", "ldem"])
def test_switch_posterior_follows_the_informativeness_of_the_video(kind, estep):
    T = 100
    clean = _run_toy(kind, estep, torch.zeros(T, dtype=torch.bool)).switch_post[0, :, 1]
    noise = _run_toy(kind, estep, torch.ones(T, dtype=torch.bool)).switch_post[0, :, 1]
    half = torch.zeros(T, dtype=torch.bool)
    half[T // 2:] = True
    mixed = _run_toy(kind, estep, half).switch_post[0, :, 1]
    auc = _auc(1 - mixed, half)  # low visual weight should flag the corrupted frames
    print(f"{kind}/{type(estep).__name__}: mean P(AV) clean video {clean.mean():.3f}, noise video {noise.mean():.3f}; "
          f"half corrupted: clean frames {mixed[~half].mean():.3f}, corrupted {mixed[half].mean():.3f}, AUC {auc:.3f}")
    assert clean.mean() > 0.5 > noise.mean()
    assert mixed[~half].mean() > mixed[half].mean() + 0.3
    assert auc > 0.8


def test_tempered_variant_also_follows_the_video():
    T = 100
    half = torch.zeros(T, dtype=torch.bool)
    half[T // 2:] = True
    p = _run_toy("mixture", MCEM_SMALL, half, latent_posterior="tempered").switch_post[0, :, 1]
    print(f"tempered mixture: clean frames {p[~half].mean():.3f}, corrupted {p[half].mean():.3f}")
    assert p[~half].mean() > p[half].mean() + 0.3


def test_markov_switch_is_smoother_than_the_mixture():
    T = 100
    half = torch.zeros(T, dtype=torch.bool)
    half[T // 2:] = True
    flips = {}
    for kind in ("mixture", "markov"):
        p = _run_toy(kind, MCEM_SMALL, half, snr_db=0.0).switch_post[0, :, 1]
        flips[kind] = int(((p[1:] > 0.5) != (p[:-1] > 0.5)).sum())
    print(f"hard-decision switches over {T} frames: {flips}")
    assert flips["markov"] <= flips["mixture"]


# -- traces, padding, determinism ------------------------------------------------------------
def test_cost_trace_is_recorded_and_decreases():
    T = 100
    r = _run_toy("mixture", MCEM_SMALL, torch.zeros(T, dtype=torch.bool))
    assert r.cost.shape == (1, MCEM_SMALL.n_iter) and r.free_energy.shape == (1, MCEM_SMALL.n_iter)
    assert bool(torch.isfinite(r.cost).all()) and bool(torch.isfinite(r.acceptance).all())
    print(f"cost {r.cost[0, 0]:.4f} -> {r.cost[0, -1]:.4f}; -log Z/bin {r.free_energy[0, 0]:.4f} -> "
          f"{r.free_energy[0, -1]:.4f}; MH acceptance {r.acceptance.mean():.3f}")
    assert r.cost[0, -1] < r.cost[0, 0] and r.free_energy[0, -1] < r.free_energy[0, 0]
    assert 0.0 < float(r.acceptance.mean()) <= 1.0


def test_tolerance_stops_each_utterance_on_its_own():
    cfg = MCEMConfig(n_iter=40, n_steps=6, burn_in=3, final_steps=6, final_burn_in=3, tol=5e-3)
    r = _run_toy("mixture", cfg, torch.zeros(100, dtype=torch.bool))
    n = int(torch.isfinite(r.cost[0]).sum())
    print(f"stopped after {n} of 40 iterations")
    assert 1 < n < 40 and bool(torch.isnan(r.cost[0, n:]).all())


def _batch_problem(lengths, kind, estep, seed0=10):
    D = make_templates()
    B, T = len(lengths), max(lengths)
    X2 = torch.zeros(B, T, D.shape[1], dtype=DT)
    lips = torch.zeros(B, T, 1, D.shape[0], dtype=DT)
    mask = torch.zeros(B, T, dtype=torch.bool)
    for b, n in enumerate(lengths):
        corrupt = torch.zeros(n, dtype=torch.bool)
        corrupt[n // 3: 2 * n // 3] = True
        x2, _, _, lp, _ = make_problem(D, n, seed=seed0 + b, corrupt=corrupt)
        X2[b, :n], lips[b, :n], mask[b, :n] = x2, lp, True
    return D, X2, lips, mask


def _run_batch(D, X2, lips, mask, ids, kind, estep):
    comps = [component_from_model(ToyAudioVAE(D), X2, None, mask, "audio"),
             component_from_model(ToyAVVAE(D), X2, lips, mask, "visual")]
    n = mask.sum(-1).tolist()
    st = init_nmf(ids, n, X2.shape[-1], 4, dtype=DT)
    seeds = [derive_seed("test", i) for i in ids]
    return run_switching_em(X2, mask, comps, SwitchConfig(kind=kind), estep, seeds, st.W, st.H)


@pytest.mark.parametrize("kind", ["mixture", "markov"])
@pytest.mark.parametrize("estep", [MCEMConfig(n_iter=6, n_steps=6, burn_in=3, final_steps=8, final_burn_in=4, tol=None),
                                   LDEMConfig(n_iter=6, n_chains=3, lr=0.01, n_steps=3, tol=None)], ids=["mcem", "ldem"])
def test_padding_and_batching_do_not_change_results(kind, estep):
    lengths = [57, 40, 23]
    D, X2, lips, mask = _batch_problem(lengths, kind, estep)
    ids = ["u0", "u1", "u2"]
    rb = _run_batch(D, X2, lips, mask, ids, kind, estep)
    for b, n in enumerate(lengths):
        r1 = _run_batch(D, X2[b:b + 1, :n], lips[b:b + 1, :n], mask[b:b + 1, :n], ids[b:b + 1], kind, estep)
        assert torch.allclose(rb.switch_post[b, :n], r1.switch_post[0], atol=1e-8)
        assert torch.allclose(rb.wiener_gain[b, :n], r1.wiener_gain[0], atol=1e-8)
        assert torch.allclose(rb.cost[b], r1.cost[0], rtol=1e-9)
        assert float(rb.switch_post[b, n:].abs().sum()) == 0.0 and float(rb.wiener_gain[b, n:].abs().sum()) == 0.0


def test_same_seed_same_result_other_seed_other_samples():
    lengths = [30, 20]
    D, X2, lips, mask = _batch_problem(lengths, "mixture", MCEM_SMALL)
    cfg = MCEMConfig(n_iter=4, n_steps=6, burn_in=3, final_steps=6, final_burn_in=3, tol=None)
    a = _run_batch(D, X2, lips, mask, ["x", "y"], "mixture", cfg)
    b = _run_batch(D, X2, lips, mask, ["x", "y"], "mixture", cfg)
    c = _run_batch(D, X2, lips, mask, ["x2", "y2"], "mixture", cfg)
    assert torch.equal(a.wiener_gain, b.wiener_gain) and torch.equal(a.cost, b.cost)
    assert not torch.equal(a.cost, c.cost)


# -- the shared samplers ------------------------------------------------------------------------
def test_shared_samplers_sample_a_gaussian_and_are_picked_by_the_config_class():
    from models.enhancement.samplers import Langevin, RandomWalkMH
    from models.enhancement.switching import sampler_for

    assert isinstance(sampler_for(MCEM_SMALL), RandomWalkMH) and sampler_for(MCEM_SMALL).proposal_var == MCEM_SMALL.proposal_var
    lg = sampler_for(LDEM_SMALL)
    assert isinstance(lg, Langevin) and (lg.lr, lg.n_steps, lg.eta) == (LDEM_SMALL.lr, LDEM_SMALL.n_steps, LDEM_SMALL.eta)
    with pytest.raises(TypeError, match="no switching E-step"):
        sampler_for(object())
    # target N(1, 0.25) on every frame: U = lik + 1/2 quad with lik = 0, quad = (z - 1)^2 / 0.25
    B, T = 2, 400
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 300:] = False
    gens = [torch.Generator().manual_seed(i) for i in range(B)]
    from models.enhancement.batch import per_item_randn

    lengths = [T, 300]
    randn = lambda lead, tail=(): per_item_randn(gens, lengths, T, leading=lead, tail=tail, dtype=DT)  # noqa: E731
    rand = lambda lead, tail=(): per_item_randn(gens, lengths, T, leading=lead, tail=tail, dtype=DT, uniform=True)  # noqa: E731
    energy = lambda z: (torch.zeros(z.shape[:-1], dtype=DT), ((z - 1.0) ** 2 / 0.25).sum(-1) * mask)  # noqa: E731
    z0 = torch.zeros(B, T, 1, dtype=DT)
    res = RandomWalkMH(0.3).run(z0, energy(z0), energy, mask, randn, rand, 60, 20)
    kept = res.kept[:, mask]  # [40, frames, 1]
    print(f"MH: mean {kept.mean():.3f}, var {kept.var():.3f} (target 1, 0.25)")
    assert abs(float(kept.mean()) - 1.0) < 0.05 and abs(float(kept.var()) - 0.25) < 0.05
    assert float(res.z[1, 300:].abs().sum()) == 0.0 and float(res.accepted[1, 300:].sum()) == 0.0  # padding never moves
    rate = RandomWalkMH.rate(res.accepted, mask, 60)
    assert rate.shape == (B,) and bool(((rate > 0.2) & (rate < 0.9)).all())
    grad = lambda z, s: 2 * 0.5 * (z - 1.0) / 0.25 * mask[..., None]  # noqa: E731
    zl = Langevin(0.01, 300, eta=0.0).run(torch.zeros(8, B, T, 1, dtype=DT), grad, randn)
    print(f"Langevin: mean {zl[:, mask].mean():.3f}, var {zl[:, mask].var():.3f}")
    assert abs(float(zl[:, mask].mean()) - 1.0) < 0.05 and abs(float(zl[:, mask].var()) - 0.25) < 0.05
    assert float(zl[:, 1, 300:].abs().sum()) == 0.0
