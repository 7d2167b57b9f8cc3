"""Clean-speech training on a toy AV corpus: artifacts, early stopping, AV beats audio-only on
validation (the toy video carries the spectrum), determinism, augmentation."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

import models
from benchmark.spec import ModelEntry, TrainingSpec
from models.augment import AugmentConfig, VisualAugmenter
from models.training import load_training_data, train_model
from test_training_toycorpus import LIP, build_toy_corpus


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = build_toy_corpus(tmp_path_factory.mktemp("toy") / "corpus", n_train=3, n_val=1, utts=4)
    return root, load_training_data(root, LIP, progress=False)


def _spec(**kw):
    base = dict(epochs=12, lr=3e-3, batch_size=16, seq_len=32, patience=3, reliability_augmentation=False)
    base.update(kw)
    return TrainingSpec(**base)


def test_training_writes_artifacts_and_av_beats_audio_only(toy, tmp_path):
    root, data = toy
    a = train_model(ModelEntry("a-vae"), _spec(), root, tmp_path / "a", data=data, progress=False)
    for f in ("checkpoint.pt", "config.json", "curves.csv", "curves.png"):
        assert (tmp_path / "a" / f).exists(), f
    rows = list(csv.DictReader(open(tmp_path / "a" / "curves.csv")))
    assert len(rows) >= 4 and float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    av = train_model(ModelEntry("av-vae", "gated", params={"lip_size": LIP}), _spec(reliability_augmentation=True),
                     root, tmp_path / "av", data=data, init_from=a, progress=False)
    ma, mav = models.load(a), models.load(av)
    va, vav = ma.checkpoint_meta["best_val_is_per_bin"], mav.checkpoint_meta["best_val_is_per_bin"]
    print(f"val IS/bin: a-vae {va:.3f}, av-vae/gated {vav:.3f}")
    assert mav.checkpoint_meta["init_copied"] > 0 and mav.checkpoint_meta["augmentation"]["p_drop"] > 0
    assert vav < va, "the AV model should reconstruct held-out speech better than the A-VAE (video is informative)"


def test_training_is_deterministic(toy, tmp_path):
    root, data = toy
    entry = ModelEntry("av-vae", "modality-attention", params={"lip_size": LIP, "temporal": "conv"})
    spec = _spec(epochs=2, reliability_augmentation=True)
    p1 = train_model(entry, spec, root, tmp_path / "r1", data=data, progress=False)
    p2 = train_model(entry, spec, root, tmp_path / "r2", data=data, progress=False)
    s1, s2 = models.load(p1).state_dict(), models.load(p2).state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    p3 = train_model(entry, _spec(epochs=2, reliability_augmentation=True, seed=1), root, tmp_path / "r3", data=data,
                     progress=False)
    assert not all(torch.equal(s1[k], v) for k, v in models.load(p3).state_dict().items())


def test_avae_with_fusion_is_an_error(toy, tmp_path):
    root, data = toy
    with pytest.raises(ValueError, match="no fusion"):
        train_model(ModelEntry("a-vae", "gated"), _spec(epochs=1), root, tmp_path, data=data, progress=False)


def test_augmenter_is_seeded_and_does_what_it_says():
    frames = (np.random.default_rng(0).random((30, 16, 16)) * 255).astype(np.uint8)
    aug = VisualAugmenter(AugmentConfig(p_corrupt=0.7, p_drop=0.3, seed=5))
    outs = [aug(frames, f"u{i}", 0) for i in range(40)]
    again = [aug(frames, f"u{i}", 0) for i in range(40)]
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(outs, again))
    dropped = [o for o in outs if not o[0].any()]
    changed = [o for o in outs if o[0].any() and not np.array_equal(o[0], frames)]
    assert dropped and changed, "both whole-video dropout and corruptions should occur"
    assert all(o[1].max() > 0 for o in changed)
    off = VisualAugmenter(AugmentConfig(p_corrupt=0.0, p_drop=0.0))
    assert np.array_equal(off(frames, "u", 0)[0], frames)


def test_kl_warmup_schedule_and_early_stopping_only_at_full_kl(toy, tmp_path):
    root, data = toy
    train_model(ModelEntry("a-vae"), _spec(epochs=3, kl_warmup_epochs=2), root, tmp_path, data=data, progress=False)
    rows = list(csv.DictReader(open(tmp_path / "curves.csv")))
    assert [float(r["beta"]) for r in rows] == [0.5, 1.0, 1.0]
    meta = models.load(tmp_path).checkpoint_meta
    assert meta["best_epoch"] >= 2  # the best checkpoint is chosen among full-KL epochs


def test_augmentation_settings_come_from_the_training_spec(toy, tmp_path):
    root, data = toy
    entry = ModelEntry("av-vae", "concat", params={"lip_size": LIP})
    p = train_model(entry, _spec(epochs=1, reliability_augmentation=True, augment_p_corrupt=0.3, augment_p_drop=0.2,
                                 augment_kinds=["blur", "occlusion"]), root, tmp_path / "a", data=data, progress=False)
    aug = models.load(p).checkpoint_meta["augmentation"]
    assert (aug["p_corrupt"], aug["p_drop"], aug["kinds"]) == (0.3, 0.2, ["blur", "occlusion"])
    with pytest.raises(ValueError, match="must not exceed 1"):
        train_model(entry, _spec(epochs=1, reliability_augmentation=True, augment_p_corrupt=0.8, augment_p_drop=0.5),
                    root, tmp_path / "b", data=data, progress=False)


def test_lr_decays_on_validation_plateau_only_when_asked(toy, tmp_path):
    root, data = toy
    # lr 3e-2 on the toy corpus: the validation loss stalls within a few epochs
    spec = _spec(epochs=10, lr=3e-2, patience=100, lr_decay=0.5, lr_decay_patience=0, lr_decay_floor=0.1)
    train_model(ModelEntry("a-vae"), spec, root, tmp_path / "d", data=data, progress=False)
    rows = list(csv.DictReader(open(tmp_path / "d" / "curves.csv")))
    lrs = [float(r["lr"]) for r in rows]
    vals = [float(r["val_loss"]) for r in rows]
    assert lrs[0] == pytest.approx(3e-2) and all(b <= a for a, b in zip(lrs, lrs[1:]))
    assert min(lrs) >= 3e-3 - 1e-12  # the floor: lr * lr_decay_floor
    best = vals[0]
    for k in range(1, len(rows) - 1):  # patience 0: a non-improving epoch halves the next epoch's lr
        if vals[k] < best:
            best = vals[k]
        elif lrs[k] > 3e-3 + 1e-12:
            assert lrs[k + 1] == pytest.approx(max(lrs[k] * 0.5, 3e-3))
    assert lrs[-1] < lrs[0], "the validation loss never stalled in 10 epochs at lr 3e-2 (the test's premise)"
    train_model(ModelEntry("a-vae"), _spec(epochs=3), root, tmp_path / "f", data=data, progress=False)
    assert {float(r["lr"]) for r in csv.DictReader(open(tmp_path / "f" / "curves.csv"))} == {3e-3}
