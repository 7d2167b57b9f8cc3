"""A toy audio-visual corpus for the model/training tests (independent of the synthetic corpus
generator): each utterance is a sequence of "visemes" (states held 3-8 video frames); state k
sounds as a harmonic tone with its own pitch/brightness (state 0 = near silence) and shows a mouth
rectangle whose opening and width depend on k. The video therefore truly tells the spectrum."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from benchmark.audio_io import write_audio, write_lips
from benchmark.corpus.manifest import ManifestRow, read_manifest, write_manifest

SR, FPS, LIP = 16000, 25.0, 16


@lru_cache(maxsize=None)
def _band(lo: float):
    from scipy.signal import butter

    return butter(2, [lo, lo * 2.2], btype="band", fs=SR, output="sos")


def _utterance(rng: np.random.Generator, n_video: int, speaker_shift: float) -> tuple[np.ndarray, np.ndarray]:
    from scipy.signal import sosfilt

    states = []
    while len(states) < n_video:
        states += [int(rng.integers(0, 5))] * int(rng.integers(3, 9))
    states = np.array(states[:n_video])
    spf = int(SR / FPS)
    audio = np.zeros(n_video * spf, np.float32)
    for i, k in enumerate(states):
        noise = rng.standard_normal(spf + 256)
        if k == 0:
            seg = 0.002 * noise
        else:  # a band of noise whose centre and level depend on the state (and a little on the speaker)
            lo = 250.0 * k * speaker_shift
            sos = _band(lo)
            seg = (0.05 + 0.02 * k) * sosfilt(sos, noise) * 3
        audio[i * spf:(i + 1) * spf] = seg[256:] + 0.001 * rng.standard_normal(spf)
    lips = np.full((n_video, LIP, LIP), 90, np.uint8)
    for i, k in enumerate(states):
        h = 1 + 2 * k
        w = 4 + (k % 2) * 6
        lips[i, LIP // 2 - h // 2: LIP // 2 - h // 2 + h, LIP // 2 - w // 2: LIP // 2 - w // 2 + w] = 20
    lips = np.clip(lips.astype(int) + rng.integers(-5, 6, lips.shape), 0, 255).astype(np.uint8)
    return audio, lips


def build_toy_corpus(root: Path, n_train: int = 3, n_val: int = 1, utts: int = 4, seed: int = 0) -> Path:
    """Write a tiny AV corpus (manifest contract) under ``root`` and return ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    rows = []
    spk = [(f"tr{i}", "train") for i in range(n_train)] + [(f"va{i}", "val") for i in range(n_val)] + [("te0", "test")]
    for s_i, (spk_id, split) in enumerate(spk):
        for u in range(utts):
            n_video = int(rng.integers(30, 50))
            audio, lips = _utterance(rng, n_video, 0.9 + 0.1 * s_i)
            uid = f"{spk_id}_{u:02d}"
            write_audio(root / "audio" / f"{uid}.wav", audio)
            write_lips(root / "lips" / f"{uid}.npy", lips)
            rows.append(ManifestRow(uid, spk_id, split, f"audio/{uid}.wav", f"lips/{uid}.npy", FPS, n_video, audio.size))
    write_manifest(root, rows, {"generator": "toy-test-corpus", "seed": seed})
    return root


def test_toy_corpus_contract(tmp_path):
    root = build_toy_corpus(tmp_path / "c", n_train=1, n_val=1, utts=1)
    df = read_manifest(root)
    assert set(df["split"]) == {"train", "val", "test"}
    assert (df["n_frames"] > 0).all()
