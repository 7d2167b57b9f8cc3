"""Slow: every fusion trained on the tiny synthetic corpus beats the A-VAE on validation
reconstruction (the synthetic video carries information about the audio). Run with --slow."""
from __future__ import annotations

import pytest
import torch

import models
from benchmark.spec import ModelEntry, TrainingSpec
from models.registry import FUSIONS
from models.training import load_training_data, reliability_probe, train_model

pytestmark = pytest.mark.slow


def test_every_fusion_beats_audio_only_on_tiny_corpus(tiny_corpus, tmp_path):
    torch.set_num_threads(1)
    data = load_training_data(tiny_corpus, 32, progress=False)
    tr = TrainingSpec(epochs=15, lr=1e-3, batch_size=16, seq_len=50, patience=4)
    a = train_model(ModelEntry("a-vae"), tr, tiny_corpus, tmp_path / "a", data=data, progress=False)
    base = models.load(a).checkpoint_meta["best_val_is_per_bin"]
    worse = {}
    for f in FUSIONS.names():
        p = train_model(ModelEntry("av-vae", f, params={"lip_size": 32}), tr, tiny_corpus, tmp_path / f, data=data,
                        init_from=a, progress=False)
        m = models.load(p)
        v = m.checkpoint_meta["best_val_is_per_bin"]
        print(f"{f}: val IS/bin {v:.3f} vs A-VAE {base:.3f}; probe {reliability_probe(m, data.val)}")
        if not v < base:
            worse[f] = v
    assert not worse, f"AV models not better than the A-VAE ({base:.3f}): {worse}"
