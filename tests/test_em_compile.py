"""The EM speed options (``EMConfig.compile``, ``matmul_precision``, ``decoder_dtype``).

Fast tests: the vectorised sums / cost that the compiled path uses equal the eager ones, the
in-place Wiener gain equals its formula, the options are validated, the matmul precision is
restored, and the bf16 decoder is applied (results close to, not equal to, float32).
Slow tests (``torch.compile`` with inductor on CPU: tens of seconds of compilation on a cold
cache): compiled equals eager for MCEM and LDEM on a tiny (random-init) toy model.

Tolerance of compiled vs eager: the compiled kernels reassociate float32 sums (over frequency,
over samples), so values differ by a few ulps: relative 1e-5 on the estimates of a continuous
algorithm (LDEM; measured ~2e-7). MCEM's accept/reject decisions are discontinuous: a likelihood
that differs by one ulp flips a decision whose ``log u`` lies within rounding of ``log a``, and
the chain then takes another path. Its test therefore asks for the 1e-5 agreement on every
utterance whose acceptance trace is identical, and for acceptance rates within 0.01 elsewhere.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.configtools import FieldError
from models.enhancement.api import EnhanceInput, enhance
from models.enhancement.context import matmul_precision, step_kernels
from models.enhancement.mcem import MCEMConfig
from models.enhancement.nmf import EPS, NMFState, _sums, fused_is_cost, fused_sums, is_cost, wiener_gain
from models.enhancement.toy import ToyVAE, synth_utterance

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = {
    "mcem": {"n_iter": 5, "n_steps": 6, "burn_in": 3, "final_steps": 6, "final_burn_in": 3, "tol": None},
    "ldem": {"n_iter": 6, "tol": None},
}


@pytest.fixture(scope="module")
def toy_av():
    """A tiny audio-visual toy VAE, random init (equality of two code paths needs no training)."""
    torch.manual_seed(1)
    return ToyVAE(visual=True).eval()


def _inputs(n: int = 3, seed: int = 300) -> list[EnhanceInput]:
    out = []
    for i in range(n):
        x, lips, fps = synth_utterance(np.random.default_rng(seed + i), (1.0, 1.4, 0.8)[i % 3])
        noise = np.random.default_rng(seed + 50 + i).standard_normal(x.size).astype(np.float32)
        noise *= np.sqrt(np.sum(x ** 2) / np.sum(noise ** 2))
        out.append(EnhanceInput(f"c/u{i}", (x + noise).astype(np.float32), lips, fps, clean=x, noise=noise))
    return out


def _random_state(B: int = 3, T: int = 20, F: int = 33, K: int = 4, R: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    P = torch.rand(B, T, F, generator=g) * 3
    Vs = torch.rand(R, B, T, F, generator=g) * 2 + 1e-3
    st = NMFState(torch.rand(B, F, K, generator=g) + 0.01, torch.rand(B, T, K, generator=g) + 0.01,
                  torch.rand(B, T, generator=g) + 0.5)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 15:] = False
    mask[2, 9:] = False
    w = torch.rand(R, B, T, generator=g)
    return P, Vs, st, mask, w / w.sum(0, keepdim=True)


@pytest.mark.parametrize("weighted", [False, True])
def test_vectorised_sums_and_cost_equal_the_eager_loops(weighted):
    P, Vs, st, mask, w = _random_state()
    w = w if weighted else None
    m = mask.unsqueeze(-1)
    for need_g in (False, True):
        ref = _sums(P, Vs, st.g, st.noise_var(), m, need_g, w)
        new = fused_sums(P, Vs, st.g, st.noise_var(), m, need_g, w)
        for a, b in zip(ref, new):
            if a is None:
                assert b is None
                continue
            torch.testing.assert_close(b, a, rtol=1e-5, atol=0)
            assert torch.all(b[~mask] == 0)
    torch.testing.assert_close(fused_is_cost(P, Vs, st, mask, w), is_cost(P, Vs, st, mask, w), rtol=1e-6, atol=0)
    # a different sample set gives a different cost (the comparison is not vacuous)
    assert not torch.allclose(fused_is_cost(P, Vs * 2, st, mask, w), is_cost(P, Vs, st, mask, w))


def test_in_place_wiener_gain_equals_its_formula():
    _, Vs, st, _, w = _random_state()
    WH = st.noise_var()
    gVs = st.g.unsqueeze(-1) * Vs
    ratio = gVs / (gVs + WH).clamp_min(EPS)
    assert torch.equal(wiener_gain(Vs, st.g, WH), ratio.mean(0))
    assert torch.equal(wiener_gain(Vs, st.g, WH, w), (w.unsqueeze(-1) * ratio).sum(0))


def test_options_are_validated_and_off_is_the_eager_code():
    with pytest.raises(FieldError):
        MCEMConfig(compile="max-autotune")
    with pytest.raises(FieldError):
        MCEMConfig(decoder_dtype="float16")
    with pytest.raises(FieldError):
        MCEMConfig(matmul_precision="medium")
    cfg = MCEMConfig()
    assert (cfg.compile, cfg.matmul_precision, cfg.decoder_dtype) == ("off", "highest", "float32")
    off = step_kernels("off")
    assert off.sums is _sums and off.is_cost is is_cost and off.wiener_gain is wiener_gain
    assert step_kernels("default") is step_kernels("default")  # compiled once per process
    assert step_kernels("default").sums is not _sums


def test_matmul_precision_is_restored():
    before = torch.get_float32_matmul_precision()
    with pytest.raises(RuntimeError):
        with matmul_precision("high" if before == "highest" else "highest"):
            assert torch.get_float32_matmul_precision() != before
            raise RuntimeError("inside")
    assert torch.get_float32_matmul_precision() == before
    with pytest.raises(ValueError):
        with matmul_precision("medium"):
            pass


@pytest.mark.parametrize("algorithm", ["mcem", "ldem"])
def test_bf16_decoder_is_applied_and_close(toy_av, algorithm):
    inputs = _inputs()
    exact = enhance(toy_av, algorithm, inputs, params=FAST[algorithm], progress=False)
    again = enhance(toy_av, algorithm, inputs, params=dict(FAST[algorithm], decoder_dtype="float32", matmul_precision="highest"), progress=False)
    bf16 = enhance(toy_av, algorithm, inputs, params=dict(FAST[algorithm], decoder_dtype="bfloat16"), progress=False)
    for e, a, b in zip(exact, again, bf16):
        assert e.error is None and b.error is None
        assert np.array_equal(e.estimate, a.estimate)  # the explicit defaults are the default path
        rel = np.max(np.abs(b.estimate - e.estimate)) / np.max(np.abs(e.estimate))
        assert 0 < rel < 0.05, rel  # bf16 changes the decoder output (8 mantissa bits), not the result's scale


def _compare(av, algorithm: str, mode: str, params: dict) -> None:
    inputs = _inputs()
    eager = enhance(av, algorithm, inputs, params=params, progress=False)
    comp = enhance(av, algorithm, inputs, params=dict(params, compile=mode), progress=False)
    n_same = 0
    for e, c in zip(eager, comp):
        assert e.error is None and c.error is None, c.error
        assert int(c.traces["n_iter"]) == int(e.traces["n_iter"])
        same_path = "acceptance" not in e.traces or np.array_equal(e.traces["acceptance"], c.traces["acceptance"])
        if same_path:
            n_same += 1
            np.testing.assert_allclose(c.estimate, e.estimate, rtol=0, atol=1e-5 * np.max(np.abs(e.estimate)))
            np.testing.assert_allclose(c.traces["cost"], e.traces["cost"], rtol=1e-5)
        else:  # an MH decision flipped on a rounding difference: the chains go on differently
            assert np.max(np.abs(c.traces["acceptance"] - e.traces["acceptance"])) < 0.01
    assert n_same >= 1


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["mcem", "ldem"])
def test_compiled_equals_eager(toy_av, algorithm):
    _compare(toy_av, algorithm, "default", FAST[algorithm])


@pytest.mark.slow
def test_compiled_ldem_with_convergence_and_reduce_overhead(toy_av):
    # utterances leave the batch (new shapes: recompiled / marked dynamic); reduce-overhead on CPU
    # compiles with static shapes (no CUDA graph there)
    _compare(toy_av, "ldem", "default", dict(FAST["ldem"], n_iter=12, tol=1e-3))
    _compare(toy_av, "ldem", "reduce-overhead", FAST["ldem"])


def test_perf_flag_effects_side_by_side():
    from benchmark import perf

    model = perf.load_model(None, "a-vae")
    inputs = perf.make_inputs(3, 0.5, lips=False)
    variants = {k: v for k, v in perf.FLAG_VARIANTS.items() if "compile" not in v}  # compiling is the slow test's
    rows = perf.flag_effects(model, inputs, ["ldem"], ["cpu"], params={"ldem": {"n_iter": 2, "decoder_dtype": "bfloat16"}},
                             variants=variants)
    by = {r.flag: r for r in rows}
    assert list(by) == ["exact", "matmul_precision=high", "decoder_dtype=bfloat16"]
    assert by["exact"].diff_db == 0 and by["exact"].max_abs == 0  # the exact run drops the speed options of params
    assert by["decoder_dtype=bfloat16"].max_abs > 0 and np.isfinite(by["decoder_dtype=bfloat16"].diff_db)
    assert all(r.n_failed == 0 and r.wall_s > 0 for r in rows)
    text = perf.format_flag_effects(rows)
    assert all(name in text for name in by) and "95% CI" in text
