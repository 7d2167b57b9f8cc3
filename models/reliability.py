"""Visual-reliability supervision of the fusions during training: reading the fusions'
per-frame visual weights with their graph, re-running the same fusions on the clean video of the
same frames, the auxiliary :func:`reliability_loss` and the after-training :func:`reliability_probe`.

Split out of :mod:`models.training`, which re-exports these names. All off by default. The
auxiliary loss is ``reliability_loss_weight * L`` on each fusion's per-frame visual weight ``w_v``,
driven by ``level``, the per-frame corruption level of the visual augmentation
(``training.reliability_loss`` picks ``L``; :func:`reliability_loss`):

- ``rank`` (default): a paired ranking hinge ``max(0, margin * level - (w_v(clean) -
  w_v(corrupted)))`` on the corrupted frames, ``w_v(clean)`` being the same fusion on the same
  frame (same audio input, same latent sample) with the *clean* video (``reliability_margin``;
  costs one more front-end pass on the clean lips and one more call of each fusion per batch).
  It only asks the weight to be lower with the corrupted video than with the clean one; it has
  no component that moves all frames together, so it cannot fight the reconstruction over the
  overall visual share.
- ``penalty``: ``level * w_v`` per frame. Corrupted frames are pushed towards the audio in
  proportion to how corrupted they are and clean frames get no term, but as long as the weight
  cannot tell them apart the push lowers every frame's visual weight (measured: it halved it).
- ``bce`` / ``mse``: the first version, a BCE (squared error) between ``w_v`` and ``1 - level``.
  Ill-posed and kept only to reproduce its measurement (``docs/fusion_weights.md``,
  "Learning reliability"): its target on clean frames is ``w_v = 1``, i.e. *ignore the
  audio*, which the reconstruction opposes; most of its gradient moves every frame's weight
  together (towards the mean target), and on the smoke corpus the trained weights did not
  separate occluded from clean frames at loss weight 1 or 100.

All are zero on frames with level 0 except ``bce``/``mse``. Corruptions whose frames look
clean (``freeze``, ``low-fps``, ``offset``: real lip images from another time) carry a level
that a per-frame weight cannot see; they are in the default augmentation kinds and act as
label noise for fusions without temporal context (restrict ``augment_kinds`` to avoid it).
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import numpy as np
import torch

from benchmark.seeding import derive_seed
from models.base import SpeechModel
from models.features import ClipItem
from models.spectral import STFTConfig, lips_to_stft_rate


@contextlib.contextmanager
def fusion_weights_with_grad(model: SpeechModel) -> Iterator[dict[str, torch.Tensor]]:
    """Inside the block, the per-frame fusion weights ``[B, T, 2]`` (column 1 = visual) of the
    model's encode/decode calls, keyed "encoder"/"decoder", *with their graph*.

    The one place training reaches into the fusions: the loss's own encode/decode calls are made
    inside :meth:`training_loss`, so this reads their ``FusionOutput.weights`` through
    forward hooks on the model's ``fusion_enc`` / ``fusion_dec`` modules. Empty for models without
    fusion weights (the A-VAE; every fusion, concat included, reports them)."""
    captured: dict[str, torch.Tensor] = {}
    handles = []
    for key, attr in (("encoder", "fusion_enc"), ("decoder", "fusion_dec")):
        module = getattr(model, attr, None)
        if isinstance(module, torch.nn.Module):
            def hook(_m, _inp, out, key=key):
                if getattr(out, "weights", None) is not None:
                    captured[key] = out.weights
            handles.append(module.register_forward_hook(hook))
    try:
        yield captured
    finally:
        for h in handles:
            h.remove()


#: the kinds of :func:`reliability_loss` (``training.reliability_loss``)
RELIABILITY_LOSSES = ("penalty", "rank", "bce", "mse")


def reliability_loss(weights: dict[str, torch.Tensor], level: torch.Tensor, mask: torch.Tensor,
                     kind: str = "rank", *, clean_weights: Optional[dict[str, torch.Tensor]] = None,
                     margin: float = 0.1) -> torch.Tensor:
    """Auxiliary reliability loss on the fusions' visual weights (our loss, not a published one;
    the module docstring gives the reasoning), averaged over the fusions (``weights``:
    "encoder"/"decoder" -> ``[B, T, 2]``, column 1 = ``w_v``) and per real frame (``mask [B, T]``).
    ``level [B, T]`` in [0, 1] is the visual corruption level (0 = clean, 1 = video gone).

    * ``penalty``: ``level * w_v``.
    * ``rank``: ``max(0, margin * level - (w_v(clean) - w_v))`` on frames with ``level > 0``;
      ``clean_weights`` (same keys and shapes) are the same fusions with the clean video.
    * ``bce`` / ``mse``: BCE / squared error between ``w_v`` and ``1 - level`` (ill-posed, kept to
      reproduce the first measurement).

    ``penalty`` and ``rank`` are exactly zero on clean frames (no gradient there)."""
    if not weights:
        raise ValueError("reliability_loss needs per-frame fusion weights (the model has none)")
    if kind not in RELIABILITY_LOSSES:
        raise ValueError(f"unknown reliability loss {kind!r} ({', '.join(RELIABILITY_LOSSES)})")
    if kind == "rank" and (clean_weights is None or set(clean_weights) != set(weights)):
        raise ValueError("the rank reliability loss needs the clean-video weights of the same fusions")
    level = level.clamp(0.0, 1.0)
    m = mask.to(level.dtype)
    n = m.sum().clamp_min(1.0)
    parts = []
    for key, w in weights.items():
        v = w[..., 1]
        if kind == "penalty":
            per = level * v
        elif kind == "rank":
            gap = clean_weights[key][..., 1] - v
            per = torch.where(level > 0, torch.relu(margin * level - gap), torch.zeros_like(v))
        elif kind == "bce":
            target = 1.0 - level
            # log(v + eps) rather than a clamp: a weight at exactly 0 (a closed piecewise-linear
            # gate) must still receive a gradient
            per = -(target * torch.log(v + 1e-6) + (1 - target) * torch.log(1 - v + 1e-6))
        else:
            per = (v - (1.0 - level)).pow(2)
        parts.append((per * m).sum() / n)
    return torch.stack(parts).mean()


def _fusion_modules(model: SpeechModel) -> dict[str, torch.nn.Module]:
    """The model's fusion modules keyed "encoder" / "decoder" (``fusion_enc`` / ``fusion_dec``; absent ones left out)."""
    mods = {key: getattr(model, attr, None) for key, attr in (("encoder", "fusion_enc"), ("decoder", "fusion_dec"))}
    return {key: m for key, m in mods.items() if isinstance(m, torch.nn.Module)}


@contextlib.contextmanager
def _fusion_inputs(model: SpeechModel) -> Iterator[dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]:
    """Inside the block, the ``(audio, visual, mask)`` inputs of the model's last
    ``fusion_enc`` / ``fusion_dec`` calls (keyed "encoder"/"decoder"), with their graph, so that
    the same fusion can be re-run on the same audio input with other visual features."""
    captured: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def recorder(key: str):
        def hook(_m, args):
            if len(args) >= 3:
                captured[key] = (args[0], args[1], args[2])
        return hook

    handles = [m.register_forward_pre_hook(recorder(key)) for key, m in _fusion_modules(model).items()]
    try:
        yield captured
    finally:
        for h in handles:
            h.remove()


def clean_video_weights(model: SpeechModel, inputs: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                        clean_vfeat: torch.Tensor) -> dict[str, torch.Tensor]:
    """The weights ``[B, T, 2]`` of the fusions whose calls ``inputs`` recorded (see
    :func:`_fusion_inputs`), re-run on the same audio inputs and masks with the clean-video
    features ``clean_vfeat [B, T, Dv]`` (repeated when a call had extra sample rows)."""
    out = {}
    modules = _fusion_modules(model)
    for key, (audio, visual, mask) in inputs.items():
        module = modules[key]
        v = clean_vfeat
        if visual.shape[0] != v.shape[0]:
            v = v.repeat(visual.shape[0] // v.shape[0], *([1] * (v.dim() - 1)))
        out[key] = module(audio, v, mask).weights
    return out


def _has_fusion_weights(model: SpeechModel) -> bool:
    """Whether a forward pass reports per-frame fusion weights (a four-frame probe)."""
    if not model.is_audio_visual:
        return False
    c = model.config
    dev = next(model.parameters()).device
    mask = torch.ones(1, 4, dtype=torch.bool, device=dev)
    was = model.training
    model.eval()
    with torch.no_grad(), fusion_weights_with_grad(model) as w:
        v = model.visual_features(torch.zeros(1, 4, c.lip_size, c.lip_size, device=dev), mask)
        mu, _ = model.encode(torch.ones(1, 4, c.n_freq, device=dev), v, mask)
        model.decode(mu, v, mask)
    model.train(was)
    return bool(w)


def reliability_probe(model: SpeechModel, items: list[ClipItem], corruptions: tuple[str, ...] = ("noise@1.0", "zeros"),
                      *, seed: int = 0, stft_cfg: STFTConfig = STFTConfig()) -> dict[str, dict[str, float]]:
    """Mean visual weight (column 1 of the returned fusion weights) of the encoder and decoder fusions on
    ``items`` (clean speech, encoder-mean latents) with clean video and with each corruption
    (``"zeros"``: the whole video blank, as in whole-video dropout; other names go through
    :func:`benchmark.conditions.corruptions.apply_corruption`). ``{}`` for models without weights.
    A diagnostic of whether the fusion learned to distrust bad video, not a test metric."""
    if not model.is_audio_visual:
        return {}
    out: dict[str, dict[str, float]] = {}
    model.eval()
    for cond in ("clean",) + tuple(corruptions):
        sums: dict[str, float] = {}
        n = 0.0
        for it in items:
            frames = it.lips_video
            if cond == "zeros":
                frames = np.zeros_like(frames)
            elif cond != "clean":
                from benchmark.conditions.corruptions import apply_corruption

                frames, _ = apply_corruption(frames, cond, derive_seed(seed, "probe", it.utt_id))
            lips = torch.from_numpy(np.ascontiguousarray(lips_to_stft_rate(frames, it.n_frames, it.fps, stft_cfg)))
            lips = lips.float().div_(255.0)[None]
            mask = torch.ones(1, it.n_frames, dtype=torch.bool)
            with torch.no_grad():
                v = model.visual_features(lips, mask)
                mu, _, w_enc = model.encode(it.power[None], v, mask, return_weights=True)
                w_dec = model.decode(mu, v, mask, return_weights=True).weights
            w = {k: t for k, t in (("encoder", w_enc), ("decoder", w_dec)) if t is not None}
            if not w:
                return {}
            for k, t in w.items():
                sums[k] = sums.get(k, 0.0) + float(t[..., 1].sum())
            n += it.n_frames
        out[cond] = {k: s / n for k, s in sums.items()}
    return out
