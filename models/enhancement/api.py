"""Public API of the unsupervised enhancement (stable: the runner and the report helpers call it).

::

    from models.enhancement.api import EnhanceInput, EnhanceOutput, enhance

    outs = enhance(model, "ldem", [EnhanceInput(item_id, mixture, lips, fps, clean=..., noise=...)],
                   params={"n_iter": 100}, nmf_rank=10, device="cpu", frame_budget=20000, seed=0)

* ``EnhanceInput(item_id, mixture, lips, fps, clean=None, noise=None, corruption=None, sample_rate=16000,
  pair_id=None)``: ``mixture`` float32 16 kHz mono; ``lips`` uint8 ``N x H x W`` at ``fps`` (None
  for audio-only models); ``clean``/``noise`` only for ``oracle-wiener``; ``corruption``
  per-video-frame level, copied (at the STFT rate) into ``traces["corruption_stft"]`` and given
  as ``level`` to models whose ``uses_level`` is true (the ``oracle-reliability`` control, which
  then requires it); ``pair_id`` the identity the random streams are seeded from (default
  ``item_id``; the runner gives the mixture's :func:`benchmark.schema.pair_id`, so the clean- and
  corrupted-video items of one mixture get common random numbers).
* ``EnhanceOutput(item_id, estimate, traces, wall_time_s, rtf, error)``: ``estimate`` float32,
  same length as the mixture (None on error); ``traces`` keys of :mod:`benchmark.schema`
  (``cost [n_iter]``, ``acceptance [n_iter]`` for MCEM, ``weights_encoder``/``weights_decoder``
  ``[T, 2]`` when the model has fusion weights, ``corruption_stft [T]``, ``frame_rate``) plus
  ``gain_g [T]``, ``n_iter``, ``final_acceptance``; ``wall_time_s`` is the utterance's share of its
  batch's wall time (proportional to its frames); ``rtf = wall_time_s / duration``; ``error`` the
  reason when this utterance failed (the others proceed).
* ``enhance(model, algorithm, inputs, *, params, nmf_rank, device, frame_budget, seed, progress)``:
  ``algorithm`` a name of :data:`models.enhancement.registry.ALGORITHMS` (``mcem``, ``vem``,
  ``peem``, ``ldem``, ``noisy``, ``oracle-wiener``, ``nmf-only``); ``params`` overrides fields of
  the algorithm's config dataclass (unknown keys are an error); ``model`` may be None for the
  baselines. Utterances are packed into batches of at most ``frame_budget`` padded STFT frames.

Randomness: every utterance's random draws (EM sampling, NMF initialisation, the ``nmf-only``
baseline's NMF) come from generators seeded by ``(seed, pair_id, ...)``, never by the batch.

Composite models: a model with a ``custom_enhance`` method (the mixture / switching VAEs of
:mod:`models.mixture`) gets each prepared batch delegated to
``model.custom_enhance(batch, algorithm, params, rank=..., seed=..., stft_cfg=..., progress=...)``,
which must return one :class:`~models.enhancement.em.ItemResult` per utterance of
``batch`` (:class:`~models.enhancement.batch.Batch`), in batch order.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from models.enhancement.baselines import Baseline
from models.enhancement.batch import EnhanceInput, EnhanceOutput, PreparedItem, make_batch, pack_by_budget, prepare_item
from models.enhancement.em import EMAlgorithm, ItemResult, run_em
from models.enhancement.registry import ALGORITHMS
from models.spectral import STFTConfig

log = logging.getLogger(__name__)

__all__ = ["EnhanceInput", "EnhanceOutput", "enhance", "make_algorithm", "resolve_device", "algorithm_config"]


def resolve_device(device: str) -> torch.device:
    """``cpu``, ``cuda`` or ``auto`` (cuda when available) -> a torch device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available")
    return torch.device(device)


def algorithm_config(algorithm: str, params: Optional[dict[str, Any]] = None) -> Any:
    """The config dataclass of ``algorithm`` with ``params`` applied (unknown keys: ValueError)."""
    cls = ALGORITHMS.get(algorithm).config_cls
    params = dict(params or {})
    if dataclasses.is_dataclass(cls):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"algorithm {algorithm!r}: unknown parameter(s) {unknown}; known: {sorted(known)}")
    return cls(**params)


def make_algorithm(algorithm: str, params: Optional[dict[str, Any]] = None) -> EMAlgorithm | Baseline:
    """An instance of the registered algorithm with its config built from ``params``."""
    return ALGORITHMS.get(algorithm)(algorithm_config(algorithm, params))


def _run_batch(model: Any, algo: Any, algorithm: str, params: Optional[dict], items: list[PreparedItem], device: torch.device,
               rank: int, seed: int, stft_cfg: STFTConfig, progress: bool) -> list[ItemResult]:
    if isinstance(algo, Baseline):
        return algo.run(items, rank=rank, seed=seed, stft_cfg=stft_cfg, progress=progress)
    batch = make_batch(items, device)
    if hasattr(model, "custom_enhance"):
        return model.custom_enhance(batch, algorithm, params, rank=rank, seed=seed, stft_cfg=stft_cfg, progress=progress)
    return run_em(algo, model, batch, rank=rank, seed=seed, stft_cfg=stft_cfg, progress=progress)


def enhance(
    model: Any,
    algorithm: str,
    inputs: list[EnhanceInput],
    *,
    params: Optional[dict[str, Any]] = None,
    nmf_rank: int = 10,
    device: str = "cpu",
    frame_budget: int = 20000,
    seed: int = 0,
    progress: bool = True,
    stft_cfg: STFTConfig = STFTConfig(),
) -> list[EnhanceOutput]:
    """Enhance ``inputs`` with ``model`` and ``algorithm``; one :class:`EnhanceOutput` per input, in order."""
    algo = make_algorithm(algorithm, params) if not (model is not None and hasattr(model, "custom_enhance")) else None
    is_baseline = isinstance(algo, Baseline)
    if not is_baseline and model is None:
        raise ValueError(f"algorithm {algorithm!r} needs a speech model (model=None is only for the baselines)")
    dev = resolve_device(device)
    if model is not None and not is_baseline:
        model.to(dev)
        model.eval()
    need_lips = bool(not is_baseline and model is not None and (getattr(model, "is_audio_visual", False) or hasattr(model, "custom_enhance")))
    need_sources = bool(getattr(algo, "needs_sources", False))
    need_level = bool(not is_baseline and model is not None and getattr(model, "uses_level", False))
    outs: list[Optional[EnhanceOutput]] = [None] * len(inputs)
    prepared: list[PreparedItem] = []
    for i, inp in enumerate(inputs):
        try:
            prepared.append(prepare_item(inp, i, cfg=stft_cfg, need_lips=need_lips, need_sources=need_sources,
                                         need_level=need_level))
        except Exception as exc:  # one bad utterance never stops the others
            log.warning("%s: %s", inp.item_id, exc)
            outs[i] = EnhanceOutput(inp.item_id, None, {}, 0.0, float("nan"), f"{type(exc).__name__}: {exc}")
    keys = [None if it.lips is None else it.lips.shape[1:] for it in prepared]
    groups = pack_by_budget([it.n_frames for it in prepared], frame_budget, keys)
    for grp in tqdm(groups, desc=f"enhance {algorithm}", disable=not progress or len(groups) < 2):
        items = [prepared[j] for j in grp]
        _enhance_group(model, algo, algorithm, params, items, dev, nmf_rank, seed, stft_cfg, progress, outs, allow_split=True)
    for it in prepared:
        o = outs[it.index]
        if o is not None and o.error is None and it.corruption_stft is not None:
            o.traces["corruption_stft"] = it.corruption_stft.astype(np.float32)
    return [o for o in outs]  # type: ignore[misc]


def _enhance_group(model, algo, algorithm, params, items, dev, rank, seed, stft_cfg, progress, outs, allow_split: bool) -> None:
    t0 = time.perf_counter()
    try:
        results = _run_batch(model, algo, algorithm, params, items, dev, rank, seed, stft_cfg, progress)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
    except Exception as exc:
        if allow_split and len(items) > 1:  # find the culprit: retry one by one
            log.warning("batch of %d failed (%s); retrying one by one", len(items), exc)
            for it in items:
                _enhance_group(model, algo, algorithm, params, [it], dev, rank, seed, stft_cfg, progress, outs, allow_split=False)
            return
        for it in items:
            log.warning("%s: enhancement failed: %s", it.item_id, exc)
            outs[it.index] = EnhanceOutput(it.item_id, None, {}, 0.0, float("nan"), f"{type(exc).__name__}: {exc}")
        return
    wall = time.perf_counter() - t0
    tot = sum(it.n_frames for it in items)
    for it, res in zip(items, results):
        share = wall * it.n_frames / tot
        dur = it.n_samples / stft_cfg.sample_rate
        est = res.estimate
        err = None
        if est is None or not np.all(np.isfinite(est)):
            err, est = "non-finite estimate", None
        outs[it.index] = EnhanceOutput(it.item_id, est, res.traces, share, share / dur, err)
