"""Enhancement core: batching invariance, determinism, bad inputs, baselines, weight traces.

Uses the toy frame-wise VAE of :mod:`models.enhancement.toy` (quickly trained on synthetic
harmonic "speech"), so these tests do not depend on the real models or the corpus.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models.enhancement.api import EnhanceInput, enhance
from models.enhancement.batch import make_batch, pack_by_budget, prepare_item
from models.enhancement.em import EMAlgorithm, run_em
from models.enhancement.nmf import NMFState
from models.enhancement.registry import ALGORITHMS
from models.enhancement.toy import ToyVAE, synth_utterance, train_toy_vae
from models.spectral import STFTConfig, lips_to_stft_rate, power_spectrogram

FAST = {
    "mcem": {"n_iter": 6, "n_steps": 6, "burn_in": 3, "final_steps": 6, "final_burn_in": 3},
    "ldem": {"n_iter": 8},
    "peem": {"n_iter": 6, "n_steps": 3},
    "vem": {"n_iter": 8},
}
# the contract tests run over every registered EM algorithm (one without FAST settings: 6 iterations)
EM_ALGORITHMS = [n for n, cls in ALGORITHMS.items() if issubclass(cls, EMAlgorithm)]
FAST_DEFAULT = {"n_iter": 6}


def sisdr(est: np.ndarray, ref: np.ndarray) -> float:
    a = np.dot(est, ref) / np.dot(ref, ref)
    t = a * ref
    return float(10 * np.log10(np.sum(t ** 2) / np.sum((est - t) ** 2)))


@pytest.fixture(scope="module")
def toy_models():
    rng = np.random.default_rng(0)
    train = [synth_utterance(rng, 1.5) for _ in range(8)]
    P = [power_spectrogram(x / np.max(np.abs(x))) for x, _, _ in train]
    L = [torch.from_numpy(lips_to_stft_rate(l, p.shape[0], f).astype(np.float32) / 255) for (x, l, f), p in zip(train, P)]
    torch.manual_seed(0)
    a = ToyVAE(visual=False)
    train_toy_vae(a, P, None, steps=120)
    torch.manual_seed(1)
    av = ToyVAE(visual=True)
    train_toy_vae(av, P, L, steps=120)
    return a, av


def _inputs(n: int = 3, snr_db: float = 0.0, seed: int = 100, durations=(1.0, 1.6, 1.3)):
    out = []
    for i in range(n):
        x, lips, fps = synth_utterance(np.random.default_rng(seed + i), durations[i % len(durations)])
        noise = np.random.default_rng(seed + 50 + i).standard_normal(x.size).astype(np.float32)
        noise *= np.sqrt(np.sum(x ** 2) / np.sum(noise ** 2)) * 10 ** (-snr_db / 20)
        corr = np.zeros(len(lips), np.float32)
        corr[len(lips) // 2:] = 1.0
        out.append(EnhanceInput(f"c0/u{i}", (x + noise).astype(np.float32), lips, fps, clean=x, noise=noise, corruption=corr))
    return out


def test_pack_by_budget_respects_budget_and_covers_all():
    n = [50, 10, 30, 200, 30, 31]
    groups = pack_by_budget(n, 100)
    assert sorted(i for g in groups for i in g) == list(range(len(n)))
    for g in groups:
        assert len(g) == 1 or len(g) * max(n[i] for i in g) <= 100
    assert groups == pack_by_budget(n, 100)
    assert any(g == [3] for g in groups)  # longer than the budget: alone


@pytest.mark.parametrize("algorithm", EM_ALGORITHMS)
def test_batched_equals_one_by_one(toy_models, algorithm):
    _, av = toy_models
    inputs = _inputs()
    fast = FAST.get(algorithm, FAST_DEFAULT)
    batched = enhance(av, algorithm, inputs, params=fast, frame_budget=10_000, progress=False)
    single = enhance(av, algorithm, inputs, params=fast, frame_budget=1, progress=False)
    for b, s, inp in zip(batched, single, inputs):
        assert b.error is None and s.error is None
        assert b.estimate.shape == s.estimate.shape
        tol = 1e-4 * np.max(np.abs(s.estimate))
        close = np.isclose(b.estimate, s.estimate, rtol=1e-3, atol=tol)
        if algorithm == "mcem":
            # an MH accept/reject decision is discontinuous: a ~1e-7 float32 difference between a
            # batched and a single matmul can flip it for a frame; require near-identity instead
            assert close.mean() > 0.98, close.mean()
            assert abs(sisdr(b.estimate, inp.clean) - sisdr(s.estimate, inp.clean)) < 0.05
            np.testing.assert_allclose(b.traces["cost"], s.traces["cost"], rtol=1e-3)
        else:
            assert close.all(), (1 - close.mean())
            np.testing.assert_allclose(b.traces["cost"], s.traces["cost"], rtol=1e-4)


@pytest.mark.parametrize("algorithm", ["peem", "vem", "ldem"])
def test_converged_utterances_leave_the_batch(toy_models, algorithm):
    """With ``tol``, an utterance that converges is finished and leaves the batch: it gets the
    iterations and random draws it would get alone, so batched == one-by-one even when the
    utterances stop at different iterations."""
    _, av = toy_models
    inputs = _inputs(4)
    base = dict(FAST[algorithm], n_iter=12)
    free = enhance(av, algorithm, inputs, params=base, frame_budget=10_000, progress=False)
    steps = np.concatenate([np.abs(np.diff(o.traces["cost"])) for o in free])
    params = dict(base, tol=float(np.median(steps)))  # a tol that stops some utterances early, not all
    batched = enhance(av, algorithm, inputs, params=params, frame_budget=10_000, progress=False)
    single = enhance(av, algorithm, inputs, params=params, frame_budget=1, progress=False)
    n_iter = [int(b.traces["n_iter"]) for b in batched]
    assert len(set(n_iter)) > 1, n_iter  # the test must exercise a shrinking batch
    for b, s in zip(batched, single):
        assert b.error is None and s.error is None
        assert int(b.traces["n_iter"]) == int(s.traces["n_iter"])
        np.testing.assert_allclose(b.traces["cost"], s.traces["cost"], rtol=1e-4)
        np.testing.assert_allclose(b.estimate, s.estimate, rtol=1e-3, atol=1e-4 * np.max(np.abs(s.estimate)))


def test_vem_encoder_posterior_per_utterance_copies(toy_models):
    """The published VEM variant fine-tunes the encoder weights: each utterance of a batch has its
    own copy, so batching changes nothing, and the encoder does change (the decoder does not)."""
    _, av = toy_models
    inputs = _inputs()
    params = {"n_iter": 4, "posterior": "encoder"}
    before = {k: v.detach().clone() for k, v in av.state_dict().items()}
    batched = enhance(av, "vem", inputs, params=params, frame_budget=10_000, progress=False)
    single = enhance(av, "vem", inputs, params=params, frame_budget=1, progress=False)
    frozen = enhance(av, "vem", inputs, params=dict(params, lr=0.0), frame_budget=10_000, progress=False)
    for k, v in av.state_dict().items():  # the model itself is never modified
        assert torch.equal(v, before[k]), k
    for b, s, f in zip(batched, single, frozen):
        assert b.error is None and s.error is None
        np.testing.assert_allclose(b.estimate, s.estimate, rtol=1e-3, atol=1e-4 * np.max(np.abs(s.estimate)))
        assert not np.allclose(b.estimate, f.estimate)  # the fine-tuning moved q


def test_encoder_parameters_are_the_encoders(toy_models):
    from models.enhancement.batch import make_batch, prepare_item
    from models.enhancement.em import EMContext
    from models.enhancement.vem import encoder_parameters

    _, av = toy_models
    batch = make_batch([prepare_item(i, k, need_lips=True) for k, i in enumerate(_inputs(1))])
    names = set(encoder_parameters(av, EMContext(av, batch, algorithm="vem", seed=0)))
    # toy AV model: encoder enc*, gate_e*; decoder dec*, gate_d*; visual front-end vnet*
    assert {"enc.weight", "enc_mu.weight", "enc_v.weight"} <= names, names
    assert not any(n.startswith(("dec", "gate_d", "vnet")) for n in names), names


def test_deterministic_and_seed_dependent(toy_models):
    a, _ = toy_models
    inputs = _inputs(2)
    r1 = enhance(a, "mcem", inputs, params=FAST["mcem"], progress=False, seed=3)
    r2 = enhance(a, "mcem", inputs, params=FAST["mcem"], progress=False, seed=3)
    r3 = enhance(a, "mcem", inputs, params=FAST["mcem"], progress=False, seed=4)
    for x, y in zip(r1, r2):
        assert np.array_equal(x.estimate, y.estimate)
    assert not np.array_equal(r1[0].estimate, r3[0].estimate)
    assert 0.0 < r1[0].traces["acceptance"].mean() < 1.0


def test_bad_inputs_fail_alone(toy_models):
    _, av = toy_models
    good = _inputs(2)
    sr = 16000
    bad = [
        EnhanceInput("silent", np.zeros(sr, np.float32), good[0].lips, 25.0),
        EnhanceInput("short", np.full(500, 0.1, np.float32), good[0].lips, 25.0),
        EnhanceInput("nan", np.where(np.arange(sr) == 7, np.nan, 0.1).astype(np.float32), good[0].lips, 25.0),
        EnhanceInput("rate", good[0].mixture, good[0].lips, 25.0, sample_rate=8000),
        EnhanceInput("nolips", good[0].mixture, None, 25.0),
    ]
    outs = enhance(av, "ldem", [good[0]] + bad + [good[1]], params=FAST["ldem"], progress=False)
    assert outs[0].error is None and outs[-1].error is None
    expect = {"silent": "silent", "short": "too short", "nan": "NaN", "rate": "sample rate", "nolips": "lip"}
    for o in outs[1:-1]:
        assert o.estimate is None and o.error and expect[o.item_id] in o.error and o.item_id in o.error, o.error


def test_traces_weights_and_corruption(toy_models):
    _, av = toy_models
    inputs = _inputs(2)
    for algorithm in ("mcem", "ldem"):
        outs = enhance(av, algorithm, inputs, params=FAST[algorithm], progress=False)
        for o, inp in zip(outs, inputs):
            T = STFTConfig().n_frames(inp.mixture.size)
            assert o.traces["weights_encoder"].shape == (T, 2)
            assert o.traces["weights_decoder"].shape == (T, 2)
            np.testing.assert_allclose(o.traces["weights_decoder"].sum(-1), 1.0, atol=1e-5)
            assert o.traces["corruption_stft"].shape == (T,) and o.traces["corruption_stft"].max() == 1.0
            assert len(o.traces["cost"]) == FAST[algorithm]["n_iter"]
            assert o.rtf > 0 and o.wall_time_s > 0
            assert o.estimate.shape == inp.mixture.shape and o.estimate.dtype == np.float32


def test_oracle_and_noisy_baselines():
    inputs = _inputs(2)
    oracle = enhance(None, "oracle-wiener", inputs, progress=False)
    noisy = enhance(None, "noisy", inputs, progress=False)
    for o, n, inp in zip(oracle, noisy, inputs):
        s_in = sisdr(inp.mixture, inp.clean)
        assert sisdr(o.estimate, inp.clean) > s_in + 8.0
        np.testing.assert_allclose(n.estimate, inp.mixture, atol=1e-4)
    missing = enhance(None, "oracle-wiener", [EnhanceInput("x", inputs[0].mixture, None, 25.0)], progress=False)
    assert missing[0].error and "clean" in missing[0].error


def test_nmf_only_baseline_improves():
    rng = np.random.default_rng(7)
    train = [synth_utterance(rng, 1.5)[0] for _ in range(8)]
    from models.enhancement.nmf import is_nmf

    P = torch.cat([power_spectrogram(x / np.max(np.abs(x))) for x in train])
    W, _, _ = is_nmf(P, 16, n_iter=60, rng=np.random.default_rng(0))
    inputs = _inputs(2)
    outs = enhance(None, "nmf-only", inputs, params={"dictionary": W.numpy(), "n_iter": 60}, nmf_rank=4, progress=False)
    gain = np.mean([sisdr(o.estimate, i.clean) - sisdr(i.mixture, i.clean) for o, i in zip(outs, inputs)])
    print(f"nmf-only SI-SDR improvement at 0 dB white: {gain:.2f} dB")
    assert gain > 1.0


@pytest.mark.parametrize("algorithm", EM_ALGORITHMS)
def test_true_noise_fixed_improves_sisdr(toy_models, algorithm):
    """With the true (flat) white-noise PSD fixed (only g updated), every algorithm improves SI-SDR."""
    a, _ = toy_models
    inputs = _inputs(2, snr_db=0.0)
    items = [prepare_item(inp, i) for i, inp in enumerate(inputs)]
    batch = make_batch(items)
    from models.enhancement.api import make_algorithm

    cfg = dict(FAST.get(algorithm, FAST_DEFAULT), update="g")
    algo = make_algorithm(algorithm, cfg)
    win = torch.sin(torch.pi * (torch.arange(1024) + 0.5) / 1024)
    F, B, T = 513, batch.size, batch.power.shape[1]
    W = torch.zeros(B, F, 1)
    for b, (it, inp) in enumerate(zip(items, inputs)):
        W[b] = float(np.var(inp.noise / it.scale)) * float((win ** 2).sum())
    st = NMFState(W, torch.ones(B, T, 1), torch.ones(B, T))
    res = run_em(algo, a, batch, rank=1, nmf_init=st)
    gains = [sisdr(r.estimate, i.clean) - sisdr(i.mixture, i.clean) for r, i in zip(res, inputs)]
    print(algorithm, "SI-SDR gain with the true noise PSD:", np.round(gains, 2))
    assert min(gains) > 2.0


def test_analytic_likelihood_gradient_equals_autograd(toy_models):
    """The gradient E-steps use dL/dd = g e^d / Vx (1 - P / Vx) at the decoder output instead of
    autograd through the likelihood; both must give the same gradient w.r.t. z (padding included)."""
    from models.enhancement.batch import make_batch, prepare_item
    from models.enhancement.em import EMContext
    from models.enhancement.nmf import init_nmf

    _, av = toy_models
    batch = make_batch([prepare_item(i, k, need_lips=True) for k, i in enumerate(_inputs(3))], dtype=torch.float64)
    av64 = av.double()
    try:
        ctx = EMContext(av64, batch, algorithm="ldem", seed=0)
        st = init_nmf(batch.item_ids, batch.n_frames, ctx.F, 4, seed=1, dtype=torch.float64)
        st = type(st)(st.W, st.H, st.g * torch.rand(st.g.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
        z = (ctx.enc_mu + 0.3 * torch.randn(2, *ctx.enc_mu.shape, dtype=torch.float64)).requires_grad_(True)
        (ref,) = torch.autograd.grad(ctx.nll_frames(ctx.decode_var(z), st).sum(), z)
        d = ctx.decode_logvar(z)
        (ours,) = torch.autograd.grad(d, z, grad_outputs=ctx.nll_grad_logvar(d.detach(), st))
    finally:
        av.float()
    assert ref.abs().max() > 0
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-9)
    assert torch.all(ours[:, ~batch.mask] == 0)


def test_decoder_calls_trace_counts_the_passes(toy_models):
    """MCEM decodes every MH proposal (plus the kept states once per iteration); LDEM one pass per
    Langevin step (the M-step's pass is reused by the next gradient): the published cost argument."""
    a, _ = toy_models
    inputs = _inputs(1)
    m = dict(FAST["mcem"], tol=None)
    mc = enhance(a, "mcem", inputs, params=m, progress=False)[0].traces
    # init + n_iter x (steps + kept) + final chain (steps + its state) + the Wiener filter
    assert int(mc["decoder_calls"]) == 1 + m["n_iter"] * (m["n_steps"] + 1) + m["final_steps"] + 1 + 1
    ld = enhance(a, "ldem", inputs, params=FAST["ldem"], progress=False)[0].traces
    # one graph pass per iteration, one more at the first gradient, and the Wiener filter
    assert int(ld["decoder_calls"]) == FAST["ldem"]["n_iter"] + 1 + 1


def test_context_select_slices_every_batched_field(toy_models):
    """EMContext.select slices its batched state generically: a field added later (tensor, list,
    dict of tensors) leaves the batch with its utterance without any code naming it; a field that
    is neither batched nor declared shared is an error."""
    from models.enhancement.em import EMContext

    _, av = toy_models
    batch = make_batch([prepare_item(i, k, need_lips=True) for k, i in enumerate(_inputs(3))])
    ctx = EMContext(av, batch, algorithm="mcem", seed=0)
    ctx.new_state = torch.arange(3.0)[:, None] * torch.ones(3, ctx.T)  # [B, T]
    ctx.new_list = ["a", "b", "c"]
    ctx.new_dict = {"x": torch.arange(3)}
    keep = torch.tensor([True, False, True])
    sub = ctx.select(keep)
    assert sub.B == 2 and sub.batch.item_ids == [batch.item_ids[0], batch.item_ids[2]]
    assert torch.equal(sub.new_state[:, 0], torch.tensor([0.0, 2.0])) and sub.new_list == ["a", "c"]
    assert torch.equal(sub.new_dict["x"], torch.tensor([0, 2]))
    for name in ("P", "mask", "enc_mu", "prior_prec", "enc_weights", "vfeat"):
        assert torch.equal(getattr(sub, name), getattr(ctx, name)[keep]), name
    assert sub.gens == [ctx.gens[0], ctx.gens[2]] and sub.n_frames == [ctx.n_frames[0], ctx.n_frames[2]]
    assert sub.model is ctx.model and ctx.new_list == ["a", "b", "c"]  # the parent is unchanged
    ctx.not_batched = torch.zeros(5)
    with pytest.raises(TypeError, match="not_batched"):
        ctx.select(keep)
