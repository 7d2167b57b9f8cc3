"""Common random numbers: the clean- and corrupted-video items of one mixture share their random
streams (EM sampling, NMF initialisation), so a model that cannot see the video gives them
bit-identical estimates and the paired "drop from clean to corrupted video" is exactly 0."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.schema import item_id, pair_id, pair_id_of
from models.enhancement.api import EnhanceInput, enhance
from models.enhancement.batch import make_batch, prepare_item
from models.enhancement.em import EMContext
from models.enhancement.nmf import init_nmf
from models.enhancement.toy import ToyVAE, synth_utterance
from models.vae import AVAE, VAEConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = {"ldem": {"n_iter": 4, "n_chains": 2}, "mcem": {"n_iter": 3, "n_steps": 4, "burn_in": 2, "final_steps": 4,
                                                        "final_burn_in": 2}}


def _mixture(seed: int = 7, duration: float = 1.0):
    x, lips, fps = synth_utterance(np.random.default_rng(seed), duration)
    noise = 0.3 * np.random.default_rng(seed + 1).standard_normal(x.size).astype(np.float32)
    return (x + noise).astype(np.float32), lips, fps


def _pair(seed: int = 7, with_pair_id: bool = True) -> tuple[EnhanceInput, EnhanceInput]:
    """A clean-video and a corrupted-video item of the same mixture (as the mixing makes them)."""
    mix, lips, fps = _mixture(seed)
    bad = lips.copy()
    level = np.zeros(len(lips), np.float32)
    level[: len(lips) // 2] = 0.7
    bad[level > 0, 4:12, 4:12] = 128
    pid = pair_id("u0", "white", 0.0) if with_pair_id else None
    clean = EnhanceInput(item_id("u0", "white_snr0_none"), mix, lips, fps, corruption=np.zeros(len(lips), np.float32),
                         pair_id=pid)
    corr = EnhanceInput(item_id("u0", "white_snr0_occlusion-0.7"), mix.copy(), bad, fps, corruption=level, pair_id=pid)
    return clean, corr


def _tiny_models():
    torch.manual_seed(0)
    return {"a-vae": AVAE(VAEConfig(hidden=32, latent_dim=4)), "toy": ToyVAE(visual=False, hidden=32, latent_dim=4)}


@pytest.mark.parametrize("algorithm", ["ldem", "mcem"])
@pytest.mark.parametrize("which", ["a-vae", "toy"])
def test_audio_only_model_gives_bit_identical_estimates_across_visual_conditions(which, algorithm):
    model = _tiny_models()[which]
    clean, corr = _pair()
    # one enhance() call per condition, as the runner makes one job per condition
    (a,) = enhance(model, algorithm, [clean], params=FAST[algorithm], seed=3, progress=False)
    (b,) = enhance(model, algorithm, [corr], params=FAST[algorithm], seed=3, progress=False)
    assert a.error is None and b.error is None
    assert a.item_id != b.item_id  # outputs keep their item ids
    np.testing.assert_array_equal(a.estimate, b.estimate)
    np.testing.assert_array_equal(a.traces["cost"], b.traces["cost"])
    # the traces still carry each item's own corruption level
    assert a.traces["corruption_stft"].max() == 0.0 and b.traces["corruption_stft"].max() > 0.0
    # without a pair id (default: the item id) the streams differ, and so do the estimates
    c0, c1 = _pair(with_pair_id=False)
    (a2,) = enhance(model, algorithm, [c0], params=FAST[algorithm], seed=3, progress=False)
    (b2,) = enhance(model, algorithm, [c1], params=FAST[algorithm], seed=3, progress=False)
    assert not np.array_equal(a2.estimate, b2.estimate)


def test_different_mixtures_get_different_streams():
    ids = [pair_id("u0", "white", 0.0), pair_id("u0", "white", 5.0), pair_id("u1", "white", 0.0),
           pair_id("u0", "babble", 0.0), pair_id("u0", "white", 0.0, seed=1), pair_id("u0", "white", 0.0, "active")]
    assert len(set(ids)) == len(ids)
    st = init_nmf(ids, [20] * len(ids), 513, 4, seed=0)
    W = st.W.reshape(len(ids), -1)
    assert all(not torch.equal(W[i], W[j]) for i in range(len(ids)) for j in range(i))
    # the EM generators of two mixtures in one batch draw different numbers; of one pair, the same
    mix, lips, fps = _mixture()
    inputs = [EnhanceInput(f"c{k}/u0", mix, None, fps, pair_id=p) for k, p in enumerate([ids[0], ids[1], ids[0]])]
    batch = make_batch([prepare_item(inp, k) for k, inp in enumerate(inputs)])
    assert batch.pair_ids == [ids[0], ids[1], ids[0]]
    ctx = EMContext(_tiny_models()["a-vae"], batch, algorithm="ldem", seed=0)
    r = ctx.randn(tail=(4,))
    assert not torch.equal(r[0], r[1]) and torch.equal(r[0], r[2])


def test_pair_id_default_is_item_id():
    mix, lips, fps = _mixture()
    it = prepare_item(EnhanceInput("c/u0", mix, None, fps), 0)
    assert it.seed_id == "c/u0" and make_batch([it]).pair_ids == ["c/u0"]


def test_mixing_pairs_visual_conditions_and_pair_ids_match(tiny_corpus, tmp_path):
    """The mixing gives the clean- and corrupted-video items of a mixture the same samples, and
    their table rows the same pair id (other noise / SNR: another pair id)."""
    from benchmark.conditions.build import Condition, make_item, write_item
    from benchmark.corpus.manifest import load_utterance, read_manifest
    from noise_sets import NOISES

    df = read_manifest(tiny_corpus)
    utt = load_utterance(tiny_corpus, df[df["split"] == "test"].iloc[0])
    base = Condition("white", 0.0, corruption="none")
    conds = [base, dataclasses.replace(base, corruption="occlusion@0.7"), dataclasses.replace(base, snr_db=5.0)]
    items = [make_item(utt, c, NOISES.get(c.noise)()) for c in conds]
    np.testing.assert_array_equal(items[0].mixture, items[1].mixture)
    np.testing.assert_array_equal(items[0].noise, items[1].noise)
    assert not np.array_equal(items[0].lips, items[1].lips)
    rows = [write_item(it, tmp_path) for it in items]
    assert pair_id_of(rows[0]) == pair_id_of(rows[1]) != pair_id_of(rows[2])
    assert rows[0]["item_id"] != rows[1]["item_id"]


def test_runner_enhance_and_score_jobs_give_zero_paired_drop(tiny_corpus, tmp_path):
    """Runner level: the mixing, enhancement and scoring jobs of one mixture under clean and
    occluded video, with the A-VAE: identical enhanced files, so the drop is exactly 0."""
    from benchmark.conditions.build import Condition, make_item, write_item
    from benchmark.corpus.manifest import load_utterance, read_manifest
    from benchmark.report.diagnostics import metric_drop
    from benchmark.runner.stages import enhance_job, score_job
    from models.checkpoint import save
    from noise_sets import NOISES

    df = read_manifest(tiny_corpus)
    utt = load_utterance(tiny_corpus, df[df["split"] == "test"].iloc[0])
    ckpt = save(_tiny_models()["a-vae"], tmp_path / "models" / "a-vae")
    system = {"model_id": "a-vae", "model": "a-vae", "fusion": None}
    results = []
    wavs = []
    for corr in ("none", "occlusion@0.7"):
        cond = Condition("white", 0.0, corruption=corr)
        row = dict(write_item(make_item(utt, cond, NOISES.get("white")()), tmp_path), status="ok")
        enh = enhance_job(str(tmp_path), [row], system, "ldem", FAST["ldem"], 4, "cpu", 20000, 0, checkpoint=str(ckpt))
        (erow,) = enh.rows
        assert erow["status"] == "ok", erow["error"]
        wavs.append((tmp_path / erow["enhanced_path"]).read_bytes())
        results += score_job(str(tmp_path), [row], enh.rows, ["si_sdr"], "wb").rows
    assert wavs[0] == wavs[1]
    res = pd.DataFrame(results).assign(system="a-vae")
    drop = metric_drop(res, "delta_si_sdr", n_boot=50)
    assert drop.loc[0, "n_pairs"] == 1 and drop.loc[0, "drop"] == 0.0
