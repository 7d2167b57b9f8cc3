"""End to end on the synthetic corpus with quickly trained models (issue 6 correctness tests).

Slow (a few minutes on 2 cores: a smoke-size corpus, an A-VAE and an AV-VAE/concat trained on
clean speech). Run with ``scripts/test.sh --slow`` or ``pytest -m slow tests/test_enhancement_e2e_slow.py -s``.
The figures are printed; the assertions are the issue's claims, not constants fitted to them.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from benchmark.conditions.build import Condition, make_item
from benchmark.corpus.build import ensure_corpus
from benchmark.corpus.manifest import load_utterance, read_manifest, select
from benchmark.metrics import si_sdr
from benchmark.spec import ModelEntry, load_spec
from models import load
from models.enhancement.api import EnhanceInput, enhance
from models.training import train_model
from noise_sets.builtin import make_noise

pytestmark = pytest.mark.slow

N_TEST = 6


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    spec = load_spec("smoke")
    root = ensure_corpus(spec.corpus, root=tmp_path_factory.mktemp("corpus"), progress=False)
    out = tmp_path_factory.mktemp("models")
    tr = spec.training
    a = train_model(ModelEntry(name="a-vae"), tr, root, out / "a-vae", progress=False)
    av = train_model(ModelEntry(name="av-vae", fusion="concat"), dataclasses.replace(tr, epochs=20), root,
                     out / "av-concat", init_from=a, progress=False)
    utts = [load_utterance(root, r) for _, r in select(read_manifest(root), "test", N_TEST).iterrows()]
    return root, load(a), load(av), utts


def _inputs(root, utts, snr_db, corruption="none"):
    noise = make_noise("white", corpus_root=root)
    cond = Condition(noise="white", snr_db=snr_db, snr_definition="energy", corruption=corruption, seed=0)
    out = []
    for u in utts:
        it = make_item(u, cond, noise)
        out.append(EnhanceInput(item_id=f"{cond.condition_id}/{u.utt_id}", mixture=it.mixture, lips=it.lips,
                                fps=it.fps, clean=it.clean, noise=it.noise, corruption=it.level))
    return out


def _delta(inputs, outputs):
    assert all(o.error is None for o in outputs), [o.error for o in outputs]
    return float(np.mean([si_sdr(i.clean, o.estimate) - si_sdr(i.clean, i.mixture) for i, o in zip(inputs, outputs)]))


@pytest.mark.parametrize("algorithm", ["mcem", "vem", "peem", "ldem"])
def test_every_algorithm_improves_si_sdr_at_0db_white(trained, algorithm):
    root, avae, _, utts = trained
    inputs = _inputs(root, utts, 0.0)
    d = _delta(inputs, enhance(avae, algorithm, inputs, progress=False))
    print(f"\n{algorithm} A-VAE, white 0 dB, {len(inputs)} utterances: mean delta SI-SDR {d:+.2f} dB")
    assert d > 0.0


def test_av_model_with_clean_video_beats_avae_at_minus5db(trained):
    root, avae, av, utts = trained
    inputs = _inputs(root, utts, -5.0)
    d_a = _delta(inputs, enhance(avae, "mcem", inputs, progress=False))
    d_av = _delta(inputs, enhance(av, "mcem", inputs, progress=False))
    print(f"\nMCEM white -5 dB: A-VAE {d_a:+.2f} dB, AV-VAE/concat (clean video) {d_av:+.2f} dB")
    assert d_av > d_a
