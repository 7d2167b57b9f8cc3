"""Baselines in the algorithm registry, so they appear in every table.

* ``noisy``: the mixture itself (no processing).
* ``oracle-wiener``: the Wiener filter with the *true* clean and noise power spectra,
  ``|S|^2 / (|S|^2 + |N|^2) X``: an upper bound no unsupervised method reaches.
* ``nmf-only``: the non-deep baseline. A speech IS-NMF dictionary ``W_s`` learned on the clean
  train split (:func:`train_speech_nmf`, stored as a model artifact, loaded with
  :func:`load_speech_nmf`) is kept fixed while the activations and a noise NMF of rank
  ``nmf_rank`` (random init, seeded per utterance as in the EM) are fitted to the mixture by
  multiplicative updates; the estimate is the Wiener filter of the speech part.

A baseline has the same ``run(items, ...)`` shape for :func:`models.enhancement.api.enhance`:
prepared items in, :class:`~models.enhancement.em.ItemResult` out. None uses the speech model.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark.audio_io import DataError
from benchmark.configtools import check_fields
from benchmark.seeding import rng as seeded_rng
from models.enhancement.batch import PreparedItem
from models.enhancement.em import ItemResult
from models.enhancement.nmf import EPS, is_nmf
from models.enhancement.registry import ALGORITHMS
from models.spectral import STFTConfig, istft, power_spectrogram

log = logging.getLogger(__name__)


class Baseline:
    """Base of the non-EM baselines: ``run(items) -> list[ItemResult]`` (no speech model)."""

    name = "baseline"
    needs_sources = False
    config_cls: type = object

    def __init__(self, config: Any = None, **params: Any) -> None:
        self.config = config if config is not None else self.config_cls(**params)

    def run(self, items: list[PreparedItem], *, rank: int = 10, seed: int = 0, stft_cfg: STFTConfig = STFTConfig(),
            progress: bool = False) -> list[ItemResult]:
        raise NotImplementedError

    @staticmethod
    def _wave(item: PreparedItem, S: torch.Tensor, stft_cfg: STFTConfig) -> np.ndarray:
        y = istft(S, item.n_samples, stft_cfg).numpy().astype(np.float64) * item.scale
        return y.astype(np.float32)


@dataclass
class NoConfig:
    """No settings."""


@ALGORITHMS.register("noisy")
class Noisy(Baseline):
    """The unprocessed mixture (the reference row of every table)."""

    name = "noisy"
    config_cls = NoConfig

    def run(self, items, *, rank=10, seed=0, stft_cfg=STFTConfig(), progress=False):
        return [ItemResult(it.item_id, self._wave(it, it.X, stft_cfg), {"cost": np.zeros(0, np.float32),
                "frame_rate": np.float32(stft_cfg.frame_rate)}) for it in items]


@ALGORITHMS.register("oracle-wiener")
class OracleWiener(Baseline):
    """Wiener filter from the true clean and noise power spectra (upper bound)."""

    name = "oracle-wiener"
    needs_sources = True
    config_cls = NoConfig

    def run(self, items, *, rank=10, seed=0, stft_cfg=STFTConfig(), progress=False):
        out = []
        for it in items:
            gain = it.clean_power / (it.clean_power + it.noise_power).clamp_min(EPS)
            out.append(ItemResult(it.item_id, self._wave(it, gain * it.X, stft_cfg),
                                  {"cost": np.zeros(0, np.float32), "frame_rate": np.float32(stft_cfg.frame_rate)}))
        return out


@dataclass
class NMFOnlyConfig:
    """nmf-only settings: the speech dictionary (path or array) and the number of iterations."""

    dictionary: Any = None  # path to the .npz of train_speech_nmf, or an array [F, Ks]
    n_iter: int = field(default=100, metadata={"range": (1, None)})

    def __post_init__(self) -> None:
        check_fields(self)  # types and declared ranges


@ALGORITHMS.register("nmf-only")
class NMFOnly(Baseline):
    """Fixed speech NMF dictionary (learned on clean train speech) + noise NMF, IS multiplicative updates."""

    name = "nmf-only"
    config_cls = NMFOnlyConfig

    def run(self, items, *, rank=10, seed=0, stft_cfg=STFTConfig(), progress=False):
        d = self.config.dictionary
        if d is None:
            raise ValueError("nmf-only needs params={'dictionary': <path of train_speech_nmf output or array>}")
        Ws = torch.as_tensor(load_speech_nmf(d) if isinstance(d, (str, os.PathLike)) else np.asarray(d), dtype=torch.float32)
        ks = Ws.shape[1]
        out = []
        for it in tqdm(items, desc="nmf-only", disable=not progress, leave=False):
            if Ws.shape[0] != it.X.shape[1]:
                raise DataError(it.item_id, f"speech dictionary has {Ws.shape[0]} bins, the STFT has {it.X.shape[1]}")
            P = it.X.abs().pow(2).float()
            W, H, costs = is_nmf(P, rank, n_iter=self.config.n_iter, W_fixed=Ws, rng=seeded_rng(seed, it.seed_id, "nmf"))
            Vs = H[:, :ks] @ W[:, :ks].T
            Vn = H[:, ks:] @ W[:, ks:].T
            gain = Vs / (Vs + Vn).clamp_min(EPS)
            out.append(ItemResult(it.item_id, self._wave(it, gain * it.X, stft_cfg),
                                  {"cost": np.asarray(costs, np.float32), "frame_rate": np.float32(stft_cfg.frame_rate)}))
        return out


def train_speech_nmf(corpus_root: str | os.PathLike, out_path: str | os.PathLike, rank: int = 32, seed: int = 0, *,
                     n_iter: int = 200, max_frames: int = 20000, split: str = "train",
                     stft_cfg: STFTConfig = STFTConfig()) -> Path:
    """Learn the speech IS-NMF dictionary ``W_s [F, rank]`` on the clean ``split`` of a corpus.

    Each utterance is peak-normalised (as the test mixtures are); at most ``max_frames``
    frames (a seeded random subset) are used. Writes ``out_path`` (.npz: ``W``, ``rank``,
    ``seed``, ``n_frames``, ``costs``, ``corpus_root``) atomically and returns its path.
    """
    from benchmark.corpus.manifest import load_utterance, read_manifest, select

    df = select(read_manifest(corpus_root), split=split)
    if df.empty:
        raise DataError(corpus_root, f"no utterances in split {split!r} to learn the speech NMF dictionary")
    powers = []
    for _, row in tqdm(df.iterrows(), total=len(df), desc="speech NMF: reading", leave=False):
        u = load_utterance(corpus_root, row)
        x = u.audio.astype(np.float64)
        powers.append(power_spectrogram((x / max(np.max(np.abs(x)), 1e-9)).astype(np.float32), stft_cfg))
    P = torch.cat(powers)
    r = seeded_rng(seed, "speech-nmf", str(corpus_root))
    if P.shape[0] > max_frames:
        P = P[torch.as_tensor(np.sort(r.choice(P.shape[0], max_frames, replace=False)))]
    W, _, costs = is_nmf(P, rank, n_iter=n_iter, rng=r)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, W=W.numpy().astype(np.float32), rank=rank, seed=seed, n_frames=P.shape[0],
             costs=np.asarray(costs, np.float32), corpus_root=str(corpus_root))
    os.replace(tmp, out_path)
    log.info("speech NMF dictionary (rank %d, %d frames, final IS cost %.4f) -> %s", rank, P.shape[0], costs[-1], out_path)
    return out_path


def load_speech_nmf(path: str | os.PathLike) -> np.ndarray:
    """The speech dictionary ``W_s [F, rank]`` written by :func:`train_speech_nmf`."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "speech NMF dictionary not found (train it with train_speech_nmf)")
    try:
        with np.load(path) as z:
            W = np.asarray(z["W"], np.float32)
    except Exception as exc:
        raise DataError(path, f"cannot read the speech NMF dictionary ({type(exc).__name__}: {exc})") from exc
    if W.ndim != 2 or not np.all(np.isfinite(W)) or np.any(W < 0):
        raise DataError(path, f"invalid speech NMF dictionary (shape {W.shape}, must be finite and non-negative)")
    return W
