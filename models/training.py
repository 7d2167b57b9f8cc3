"""Clean-speech training of the speech VAEs, with early stopping and visual-reliability augmentation.

(Over 400 lines on purpose: one training run -- its batcher, epoch loop, early stopping, curves,
skip-if-done key and after-training video check -- kept together; the reliability supervision is
in :mod:`models.reliability`, the configuration in :mod:`models.training_config`.)

:func:`train_model` trains one :class:`~models.training_config.ModelEntry` on the corpus's ``train`` split
(clean audio + clean lips; nothing noisy is ever seen), early-stops on the ``val`` split and
writes ``checkpoint.pt`` + ``config.json`` + ``curves.csv`` + ``curves.png`` into ``out_dir``.

* Batches of ``batch_size`` sequences of ``seq_len`` STFT frames (non-overlapping chunks of the
  utterances, last one padded and masked), so temporal layers and fusions see context. (The
  published A-VAE used batches of 128 independent frames; with the frame-wise A-VAE the two are
  the same objective.)
* Adam with ``lr`` (published 1e-4; see the smoke preset for what converges in minutes on CPU),
  ``patience`` epochs of early stopping on the validation negative ELBO, the best weights kept
  (a *copy*, not a reference: trap T12 of the published code, ``docs/references.md``), optional
  lr decay on a validation plateau (``lr_decay``, ``lr_decay_patience``, ``lr_decay_floor``; off by
  default, as published: the lr of each epoch is in the curves), optional linear KL warm-up over
  ``kl_warmup_epochs`` (off by default, as published), an optional wall-clock budget.
* AV models: optional initialisation from a trained A-VAE (``init_from``), and the augmentation of
  :mod:`models.augment` when ``reliability_augmentation`` is on (``augment_p_corrupt``,
  ``augment_p_drop``, ``augment_kinds``; validation always uses clean video).
* Reliability made learnable (all off by default): audio-side degradation of the *encoder's*
  input (frame / band masking, white noise; ``audio_mask_*``, ``audio_noise_*``;
  :func:`models.augment.degrade_audio`; the target stays the clean spectrogram), and an
  auxiliary loss ``reliability_loss_weight * L`` on each fusion's per-frame visual weight,
  ``reliability_loss`` one of ``rank`` (default), ``penalty``, ``bce``/``mse``: defined and
  argued in :mod:`models.reliability` (re-exported here).
* Whether the model uses the video at all: after training, the validation negative ELBO with
  zeroed video minus that with clean video (``video_gain_nats_per_frame`` in the checkpoint's
  metadata, same reparameterisation noise for both).
* Determinism: weights are initialised under ``torch.manual_seed(derive_seed(seed, label))`` and
  every random draw (batch order, reparameterisation noise, augmentation) comes from generators
  seeded by the seed, the model label and the epoch: the same settings give the same checkpoint
  on CPU.
"""
from __future__ import annotations

import copy
import csv
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark.configtools import from_dict, to_dict
from benchmark.seeding import derive_seed, stable_hash
from benchmark.threads import torch_threads
from models.augment import AudioMaskConfig, AugmentConfig, VisualAugmenter, degrade_audio
from models.base import SpeechModel
from models.checkpoint import build_model, load, save
from models.features import ClipItem, chunk_bounds, load_split, pad_batch
from models.reliability import (  # noqa: F401 - re-exported: the reliability supervision lives there
    RELIABILITY_LOSSES, _fusion_inputs, _fusion_modules, _has_fusion_weights, clean_video_weights,
    fusion_weights_with_grad, reliability_loss, reliability_probe,
)
from models.spectral import STFTConfig, lips_to_stft_rate, per_frame_to_stft_rate
from models.training_config import ModelEntry, TrainingSpec

log = logging.getLogger(__name__)

CURVE_COLUMNS = ["epoch", "beta", "train_loss", "train_is_per_bin", "train_kl", "train_reliability_loss", "val_loss",
                 "val_is_per_bin", "val_kl", "lr", "seconds"]

#: a visual "augmenter" that blanks the whole video (level 1 everywhere): the zeroed-video check
VideoTransform = Callable[[np.ndarray, str, int], "tuple[np.ndarray, np.ndarray]"]


def zero_video(frames: np.ndarray, utt_id: str, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """All frames zero, level 1 (the same input as whole-video dropout)."""
    return np.zeros_like(frames), np.ones(len(frames), np.float32)


@dataclass
class TrainingData:
    """Loaded train/val splits (reuse one across models of the same corpus and lip size)."""

    corpus_root: Path
    lip_size: int
    train: list[ClipItem]
    val: list[ClipItem]


def load_training_data(corpus_root: str | Path, lip_size: int = 64, *, progress: bool = True,
                       stft_cfg: STFTConfig = STFTConfig()) -> TrainingData:
    """Load the corpus's train and val splits as :class:`~models.features.ClipItem` lists."""
    root = Path(corpus_root)
    train = load_split(root, "train", lip_size=lip_size, stft_cfg=stft_cfg, progress=progress)
    val = load_split(root, "val", lip_size=lip_size, stft_cfg=stft_cfg, progress=progress)
    return TrainingData(root, lip_size, train, val)


def resolve_training(entry: ModelEntry, training: TrainingSpec) -> TrainingSpec:
    """``training`` with the entry's ``training`` overrides applied and validated."""
    if not entry.training:
        return training
    return from_dict(TrainingSpec, {**to_dict(training), **entry.training}, source=f"model {entry.label!r} training")


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("training.device is 'cuda' but no CUDA device is available")
    return torch.device(name)


def input_stats(items: list[ClipItem]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frequency mean and std of ``log(|S|^2 + eps)`` over all training frames."""
    from models.vae import LOG_EPS

    s = torch.zeros(items[0].power.shape[1], dtype=torch.float64)
    s2 = torch.zeros_like(s)
    n = 0
    for it in items:
        lp = torch.log(it.power.double() + LOG_EPS)
        s += lp.sum(0)
        s2 += lp.pow(2).sum(0)
        n += lp.shape[0]
    mean = s / n
    std = (s2 / n - mean.pow(2)).clamp_min(0).sqrt()
    return mean.float(), std.float()


class _Batcher:
    """Builds padded batches ``(power, lips, mask, level)`` of sequence chunks, with per-epoch
    (augmented) lips and their per-frame corruption level ``[B, T]`` at the STFT rate (0 = clean);
    with ``paired=True`` each batch also carries the *clean* lips of the same frames (fifth item),
    for the paired ranking loss."""

    def __init__(self, items: list[ClipItem], seq_len: int, batch_size: int, audio_visual: bool,
                 augmenter: Optional[VisualAugmenter | VideoTransform], stft_cfg: STFTConfig) -> None:
        self.items = items
        self.chunks = [(i, s, e) for i, it in enumerate(items) for s, e in chunk_bounds(it.n_frames, seq_len)]
        self.batch_size = batch_size
        self.audio_visual = audio_visual
        self.augmenter = augmenter
        self.stft_cfg = stft_cfg

    def __len__(self) -> int:
        return math.ceil(len(self.chunks) / self.batch_size)

    def batches(self, epoch: int, generator: Optional[torch.Generator], paired: bool = False):
        order = torch.randperm(len(self.chunks), generator=generator).tolist() if generator is not None \
            else list(range(len(self.chunks)))
        lips_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        clean_cache: dict[int, np.ndarray] = {}
        for b in range(0, len(order), self.batch_size):
            sel = [self.chunks[k] for k in order[b:b + self.batch_size]]
            powers = [self.items[i].power[s:e] for i, s, e in sel]
            lips = clean = None
            level = torch.zeros(len(sel), max(e - s for _, s, e in sel))
            if self.audio_visual:
                lips, clean = [], []
                for j, (i, s, e) in enumerate(sel):
                    if i not in lips_cache:
                        it = self.items[i]
                        frames, lev = it.lips_video, np.zeros(len(it.lips_video), np.float32)
                        if self.augmenter is not None:
                            frames, lev = self.augmenter(frames, it.utt_id, epoch)
                        lips_cache[i] = (lips_to_stft_rate(frames, it.n_frames, it.fps, self.stft_cfg),
                                         per_frame_to_stft_rate(lev, it.n_frames, it.fps, self.stft_cfg))
                    lips.append(torch.from_numpy(np.ascontiguousarray(lips_cache[i][0][s:e])).float().div_(255.0))
                    level[j, :e - s] = torch.from_numpy(np.asarray(lips_cache[i][1][s:e], np.float32))
                    if paired:
                        if i not in clean_cache:
                            it = self.items[i]
                            clean_cache[i] = lips_to_stft_rate(it.lips_video, it.n_frames, it.fps, self.stft_cfg)
                        clean.append(torch.from_numpy(np.ascontiguousarray(clean_cache[i][s:e])).float().div_(255.0))
            power, lips_t, mask = pad_batch(powers, lips)
            if paired:
                yield power, lips_t, mask, level, (pad_batch(powers, clean)[1] if clean else None)
            else:
                yield power, lips_t, mask, level


@dataclass
class EpochOptions:
    """Training-only options of one epoch: audio degradation of the encoder input (``audio``,
    its masking ``fill [F]`` and generator) and the reliability loss (weight 0 = off)."""

    audio: Optional[AudioMaskConfig] = None
    audio_fill: Optional[torch.Tensor] = None
    audio_gen: Optional[torch.Generator] = None
    reliability_weight: float = 0.0
    reliability_kind: str = "rank"
    reliability_margin: float = 0.1

    @property
    def paired(self) -> bool:
        """Whether the batches must carry the clean lips too (the ``rank`` loss)."""
        return self.reliability_weight > 0 and self.reliability_kind == "rank"


def _run_epoch(model: SpeechModel, batcher: _Batcher, epoch: int, device: torch.device, beta: float,
               optimizer: Optional[torch.optim.Optimizer], order_gen: Optional[torch.Generator],
               noise_gen: torch.Generator, options: Optional[EpochOptions] = None) -> dict[str, float]:
    train = optimizer is not None
    model.train(train)
    opt = options if (train and options is not None) else EpochOptions()
    tot = {"loss": 0.0, "is_per_bin": 0.0, "kl": 0.0}
    if opt.reliability_weight > 0:
        tot["reliability"] = 0.0
    n_frames = 0.0
    with torch.set_grad_enabled(train):
        for batch in (batcher.batches(epoch, order_gen, paired=True) if opt.paired else batcher.batches(epoch, order_gen)):
            power, lips, mask, level = batch[:4]
            power, mask, level = power.to(device), mask.to(device), level.to(device)
            lips = lips.to(device) if lips is not None else None
            enc_power = None
            if opt.audio is not None and opt.audio.active:
                enc_power = degrade_audio(power, mask, opt.audio, opt.audio_gen, fill=opt.audio_fill).power
            vfeat = model.visual_features(lips, mask) if model.is_audio_visual else None
            with fusion_weights_with_grad(model) as weights, _fusion_inputs(model) as inputs:
                out = model.training_loss(power, vfeat, mask, beta=beta, generator=noise_gen, encoder_power=enc_power,
                                          level=level)  # level: only an oracle fusion reads it
            objective = out["loss"]  # the negative ELBO (reported), plus the auxiliary loss when on
            if opt.reliability_weight > 0:
                clean_w = None
                if opt.paired:  # the same fusion calls with the clean video of the same frames
                    clean_w = clean_video_weights(model, inputs, model.visual_features(batch[4].to(device), mask))
                out["reliability"] = reliability_loss(weights, level, mask, opt.reliability_kind,
                                                      clean_weights=clean_w, margin=opt.reliability_margin)
                objective = objective + opt.reliability_weight * out["reliability"]
            if train:
                optimizer.zero_grad(set_to_none=True)
                objective.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
                optimizer.step()
            w = float(mask.sum())
            n_frames += w
            for k in tot:
                tot[k] += float(out[k].detach()) * w
    return {k: v / max(n_frames, 1.0) for k, v in tot.items()}


def train_model(entry: ModelEntry, training: TrainingSpec, corpus_root: Path, out_dir: Path, *,
                init_from: Optional[Path] = None, progress: bool = True, data: Optional[TrainingData] = None,
                augment: Optional[AugmentConfig] = None) -> Path:
    """Train ``entry`` on clean speech; write checkpoint, config, curves; return the checkpoint path
    (see :func:`_train_model`). Training runs with ``AVBENCH_TRAIN_THREADS`` torch threads, 1 by
    default (:mod:`benchmark.threads`: these models are small, and parallelism across models
    belongs to the runner)."""
    with torch_threads("AVBENCH_TRAIN_THREADS"):
        return _train_model(entry, training, corpus_root, out_dir, init_from=init_from, progress=progress,
                            data=data, augment=augment)


def _train_model(entry: ModelEntry, training: TrainingSpec, corpus_root: Path, out_dir: Path, *,
                 init_from: Optional[Path] = None, progress: bool = True, data: Optional[TrainingData] = None,
                 augment: Optional[AugmentConfig] = None) -> Path:
    """Train ``entry`` on clean speech; write checkpoint, config, curves; return the checkpoint path.

    ``init_from``: an A-VAE checkpoint to initialise an AV model from (ignored for the A-VAE).
    ``data``: pre-loaded splits (must match the model's lip size). ``augment``: augmentation
    settings (default :class:`~models.augment.AugmentConfig` with the training seed)."""
    t0 = time.time()
    tr = resolve_training(entry, training)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = _device(tr.device)
    label = entry.label
    params = dict(entry.params)
    if entry.name == "a-vae" and entry.fusion:
        raise ValueError(f"model {label!r}: the audio-only a-vae takes no fusion (got {entry.fusion!r})")
    torch.manual_seed(derive_seed(tr.seed, label, "init"))
    model = build_model(entry.name, params, fusion=entry.fusion)
    lip_size = int(getattr(model.config, "lip_size", 64))
    if data is None or (model.is_audio_visual and data.lip_size != lip_size):
        data = load_training_data(corpus_root, lip_size, progress=progress)
    if not data.train or not data.val:
        raise ValueError(f"{corpus_root}: training needs non-empty train and val splits")

    mean, std = input_stats(data.train)
    model.set_input_stats(mean, std)
    model.init_output_bias(mean)
    init_info: list[str] = []
    if init_from is not None and model.is_audio_visual:
        base = load(init_from)
        init_info = model.init_from_avae(base)
        log.info("%s: initialised from A-VAE %s (%d tensors)", label, init_from, len(init_info))
    model.to(device)

    if tr.augment_p_corrupt + tr.augment_p_drop > 1.0:
        raise ValueError(f"model {label!r}: training.augment_p_corrupt + augment_p_drop must not exceed 1 "
                         f"(got {tr.augment_p_corrupt} + {tr.augment_p_drop})")
    aug_cfg = augment or AugmentConfig(p_corrupt=tr.augment_p_corrupt, p_drop=tr.augment_p_drop,
                                       kinds=tr.augment_kinds, seed=tr.seed)
    augmenter = VisualAugmenter(aug_cfg) if (model.is_audio_visual and tr.reliability_augmentation) else None
    audio_cfg = audio_mask_config(tr)
    if tr.reliability_loss_weight > 0 and (augmenter is None or not _has_fusion_weights(model)):
        raise ValueError(f"model {label!r}: training.reliability_loss_weight > 0 needs an audio-visual model whose "
                         "fusion reports per-frame weights and reliability_augmentation on (the "
                         "corruption level is its target)")
    stft_cfg = STFTConfig()
    train_b = _Batcher(data.train, tr.seq_len, tr.batch_size, model.is_audio_visual, augmenter, stft_cfg)
    val_b = _Batcher(data.val, tr.seq_len, tr.batch_size, model.is_audio_visual, None, stft_cfg)
    # fused Adam: the same update in one kernel per step (on CPU torch otherwise runs its
    # per-tensor loop, ~30 % of an AV epoch at batch_size 8; rounding differs in the last bits)
    optimizer = torch.optim.Adam(model.parameters(), lr=tr.lr, fused=True)
    # optional lr decay on a validation plateau (off at lr_decay 1.0, as published)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=tr.lr_decay, patience=tr.lr_decay_patience,
        min_lr=tr.lr * tr.lr_decay_floor) if tr.lr_decay < 1.0 else None

    curves: list[dict[str, float]] = []
    best = {"val_loss": float("inf"), "epoch": -1}
    best_state = copy.deepcopy(model.state_dict())
    bad = 0
    stop_reason = "max epochs"
    bar = tqdm(range(tr.epochs), desc=f"train {label}", disable=not progress, leave=False)
    for epoch in bar:
        te = time.time()
        beta = min(1.0, (epoch + 1) / tr.kl_warmup_epochs) if tr.kl_warmup_epochs > 0 else 1.0
        order_gen = torch.Generator().manual_seed(derive_seed(tr.seed, label, "order", epoch))
        noise_gen = torch.Generator(device=device).manual_seed(derive_seed(tr.seed, label, "noise", epoch))
        epoch_opts = EpochOptions(audio_cfg if audio_cfg.active else None, mean.exp().to(device),
                                  torch.Generator().manual_seed(derive_seed(tr.seed, label, "audio-mask", epoch)),
                                  tr.reliability_loss_weight, tr.reliability_loss, tr.reliability_margin)
        trm = _run_epoch(model, train_b, epoch, device, beta, optimizer, order_gen, noise_gen, epoch_opts)
        val_gen = torch.Generator(device=device).manual_seed(derive_seed(tr.seed, "val-noise"))
        vam = _run_epoch(model, val_b, 0, device, 1.0, None, None, val_gen)
        row = {"epoch": epoch + 1, "beta": beta, "train_loss": trm["loss"], "train_is_per_bin": trm["is_per_bin"],
               "train_kl": trm["kl"], "train_reliability_loss": trm.get("reliability", 0.0), "val_loss": vam["loss"], "val_is_per_bin": vam["is_per_bin"],
               "val_kl": vam["kl"], "lr": optimizer.param_groups[0]["lr"], "seconds": time.time() - te}
        curves.append(row)
        bar.set_postfix(train=f"{trm['loss']:.1f}", val=f"{vam['loss']:.1f}", val_is=f"{vam['is_per_bin']:.3f}")
        log.debug("%s epoch %d: %s", label, epoch + 1, row)
        if not all(math.isfinite(v) for v in row.values()):
            stop_reason = f"non-finite loss at epoch {epoch + 1}"
            log.warning("%s: %s; keeping the best weights so far", label, stop_reason)
            break
        # early stopping on the full validation objective, only once the KL weight is 1
        if beta >= 1.0 and vam["loss"] < best["val_loss"]:
            best = {"val_loss": vam["loss"], "val_is_per_bin": vam["is_per_bin"], "val_kl": vam["kl"], "epoch": epoch + 1}
            best_state = copy.deepcopy(model.state_dict())
            bad = 0
        elif beta >= 1.0:
            bad += 1
            if bad > tr.patience:
                stop_reason = f"early stop (no val improvement in {tr.patience} epochs)"
                break
        if scheduler is not None and beta >= 1.0:
            scheduler.step(vam["loss"])
        if tr.max_minutes is not None and (time.time() - t0) / 60 > tr.max_minutes:
            stop_reason = f"time budget {tr.max_minutes} min"
            break
    bar.close()
    if best["epoch"] < 0:  # never reached beta = 1 (or diverged at once): keep the last weights
        best = {"val_loss": curves[-1]["val_loss"], "val_is_per_bin": curves[-1]["val_is_per_bin"],
                "val_kl": curves[-1]["val_kl"], "epoch": len(curves)}
        best_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    gain = video_gain(model, val_b, device, derive_seed(tr.seed, "val-noise")) if model.is_audio_visual else {}
    model.cpu()

    cost = model.cost_summary() if hasattr(model, "cost_summary") else {}
    meta: dict[str, Any] = {
        "label": label, "entry": to_dict(entry), "training": to_dict(tr), "corpus_root": str(corpus_root),
        "init_from": str(init_from) if init_from else None, "init_copied": len(init_info),
        "augmentation": ({**asdict(aug_cfg), "kinds": augmenter.kinds, "shared_corruptions": augmenter.shared}
                         if augmenter is not None else None),
        "epochs_run": len(curves), "best_epoch": best["epoch"], "stop_reason": stop_reason,
        "best_val_loss": best["val_loss"], "best_val_is_per_bin": best["val_is_per_bin"], "best_val_kl": best["val_kl"],
        "train_frames": sum(it.n_frames for it in data.train), "val_frames": sum(it.n_frames for it in data.val),
        "train_seconds": time.time() - t0, "params": cost.get("params"), "macs_per_frame": cost.get("macs"),
        "device": str(device), "train_key": training_key(entry, tr, corpus_root, init_from),
        "audio_masking": asdict(audio_cfg) if audio_cfg.active else None,
        "reliability_supervision": ({"weight": tr.reliability_loss_weight, "loss": tr.reliability_loss,
                                     **({"margin": tr.reliability_margin} if tr.reliability_loss == "rank" else {})}
                                    if tr.reliability_loss_weight > 0 else None),
        **gain,
    }
    ckpt = save(model, out_dir, meta=meta)
    write_curves(curves, out_dir, title=label)
    log.info("%s: %d epochs (%s), best epoch %d, val loss %.2f, val IS/bin %.4f, %.1f s", label, len(curves),
             stop_reason, best["epoch"], best["val_loss"], best["val_is_per_bin"], meta["train_seconds"])
    if gain:
        log.info("%s: validation -ELBO with zeroed video minus clean video: %+.3f nats/frame (IS/bin %+.4f)", label,
                 gain["video_gain_nats_per_frame"], gain["video_gain_is_per_bin"])
    return ckpt


def audio_mask_config(tr: TrainingSpec) -> AudioMaskConfig:
    """The :class:`~models.augment.AudioMaskConfig` of the training options ``audio_mask_*`` / ``audio_noise_*``."""
    if len(tr.audio_noise_snr_db) != 2 or tr.audio_noise_snr_db[0] > tr.audio_noise_snr_db[1]:
        raise ValueError(f"training.audio_noise_snr_db must be [low, high], got {tr.audio_noise_snr_db}")
    return AudioMaskConfig(p_frames=tr.audio_mask_p_frames, n_frame_masks=tr.audio_mask_n_frames,
                           max_frames=tr.audio_mask_max_frames, p_bands=tr.audio_mask_p_bands,
                           n_band_masks=tr.audio_mask_n_bands, max_bins=tr.audio_mask_max_bins,
                           p_noise=tr.audio_noise_p, snr_db=(float(tr.audio_noise_snr_db[0]),
                                                             float(tr.audio_noise_snr_db[1])))


def video_gain(model: SpeechModel, val_batcher: "_Batcher", device: torch.device, seed: int) -> dict[str, float]:
    """Whether the model uses the video at all: validation negative ELBO (nats per frame) and IS
    per bin with zeroed video minus clean video, with the same reparameterisation noise
    (``seed``) for both. Positive = the video helps; ~0 = the model ignores it."""
    zero_b = copy.copy(val_batcher)
    zero_b.augmenter = zero_video
    res = {}
    for name, b in (("clean", val_batcher), ("zeros", zero_b)):
        gen = torch.Generator(device=device).manual_seed(seed)
        res[name] = _run_epoch(model, b, 0, device, 1.0, None, None, gen)
    return {"val_loss_zero_video": res["zeros"]["loss"], "val_is_per_bin_zero_video": res["zeros"]["is_per_bin"],
            "video_gain_nats_per_frame": res["zeros"]["loss"] - res["clean"]["loss"],
            "video_gain_is_per_bin": res["zeros"]["is_per_bin"] - res["clean"]["is_per_bin"]}


def training_key(entry: ModelEntry, training: TrainingSpec, corpus_root: Path, init_from: Optional[Path]) -> str:
    """Content hash of what determines a training run (for skip-if-done decisions)."""
    sidecar = Path(corpus_root) / "corpus.json"
    corpus_sig = sidecar.read_text() if sidecar.exists() else str(corpus_root)
    init_sig = ""
    if init_from is not None:
        from models.checkpoint import read_meta

        try:
            init_sig = read_meta(init_from).get("meta", {}).get("train_key", str(init_from))
        except FileNotFoundError:
            init_sig = str(init_from)
    return stable_hash("train/1", to_dict(entry), to_dict(training), corpus_sig, init_sig)


def write_curves(curves: list[dict[str, float]], out_dir: Path, *, title: str = "") -> tuple[Path, Path]:
    """``curves.csv`` and ``curves.png`` (train/val loss and IS divergence per epoch)."""
    out_dir = Path(out_dir)
    csv_path = out_dir / "curves.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CURVE_COLUMNS)
        w.writeheader()
        for r in curves:
            w.writerow(r)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [r["epoch"] for r in curves]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    axes[0].plot(ep, [r["train_loss"] for r in curves], label="train")
    axes[0].plot(ep, [r["val_loss"] for r in curves], label="val")
    axes[0].set_ylabel("negative ELBO per frame")
    axes[1].plot(ep, [r["train_is_per_bin"] for r in curves], label="train")
    axes[1].plot(ep, [r["val_is_per_bin"] for r in curves], label="val")
    axes[1].set_ylabel("IS divergence per TF bin")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    png = out_dir / "curves.png"
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return csv_path, png
