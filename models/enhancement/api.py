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
  baselines. Utterances are packed into batches of at most ``frame_budget`` padded STFT frames
  (``B * T_max``; their order and company never change an utterance's random draws); utterances
  sharing a ``pair_id`` go to batches of the same structure
  (:func:`~models.enhancement.batch.pack_by_budget`), so their common random numbers stay
  bit-exact when the items of several visual conditions are enhanced in one call.

Frame budget ``"auto"`` (the default): on CPU :data:`~models.enhancement.batch.DEFAULT_FRAME_BUDGET`;
on CUDA it is measured once per call (one model, one algorithm): a probe batch of at most
:data:`~models.enhancement.batch.PROBE_FRAMES` padded frames (run once more, and its results
dropped, so that the packing below is the same as with a fixed budget) gives the peak
bytes per padded frame (``torch.cuda.max_memory_allocated`` above what was allocated before), and the
budget is the share :data:`~models.enhancement.batch.AUTO_BUDGET_MARGIN` of the free device memory
(``torch.cuda.mem_get_info`` plus the allocator's reusable cache) over it
(:func:`~models.enhancement.batch.fit_frame_budget`).

Failures: a batch that runs out of memory (:func:`~models.enhancement.batch.is_out_of_memory`) is
split in halves and each half retried (down to single utterances), so no utterance is lost to a
budget that was too large; a batch that fails for another reason is retried one utterance at a
time, so the error lands on the utterance that causes it.

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
from models.enhancement.batch import (
    DEFAULT_FRAME_BUDGET, PROBE_FRAMES, EnhanceInput, EnhanceOutput, PreparedItem, fit_frame_budget, is_out_of_memory,
    make_batch, pack_by_budget, prepare_item,
)
from models.enhancement.em import EMAlgorithm, ItemResult, run_em
from models.enhancement.registry import ALGORITHMS
from models.spectral import STFTConfig

log = logging.getLogger(__name__)

__all__ = ["EnhanceInput", "EnhanceOutput", "enhance", "make_algorithm", "resolve_device", "resolve_frame_budget",
           "algorithm_config"]


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
    frame_budget: int | str = "auto",
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
    n_frames = [it.n_frames for it in prepared]
    pair_ids = [it.seed_id for it in prepared]

    def run(items: list[PreparedItem], sink: list[Optional[EnhanceOutput]]) -> None:
        _enhance_group(model, algo, algorithm, params, items, dev, nmf_rank, seed, stft_cfg, progress, sink, allow_split=True)

    budget = resolve_frame_budget(frame_budget, dev)
    if budget is None and prepared:  # auto on CUDA: a probe batch measures the bytes per frame
        probe = pack_by_budget(n_frames, PROBE_FRAMES, keys, pair_ids)[0]
        # its results are dropped: rerun in the real packing, the pairs keep their common structure
        budget = _probe_budget(lambda items: run(items, [None] * len(inputs)), [prepared[j] for j in probe], dev)
        log.info("enhance %s: auto frame budget %d (probe of %d utterance(s))", algorithm, budget, len(probe))
    groups = pack_by_budget(n_frames, budget or DEFAULT_FRAME_BUDGET, keys, pair_ids)
    for grp in tqdm(groups, desc=f"enhance {algorithm}", disable=not progress or len(groups) < 2):
        run([prepared[j] for j in grp], outs)
    for it in prepared:
        o = outs[it.index]
        if o is not None and o.error is None and it.corruption_stft is not None:
            o.traces["corruption_stft"] = it.corruption_stft.astype(np.float32)
    return [o for o in outs]  # type: ignore[misc]


def resolve_frame_budget(frame_budget: int | str, dev: torch.device) -> Optional[int]:
    """The frame budget to pack with: an int as given; ``"auto"``: None on CUDA (to be measured
    by a probe batch), :data:`~models.enhancement.batch.DEFAULT_FRAME_BUDGET` elsewhere."""
    if isinstance(frame_budget, str):
        if frame_budget != "auto":
            raise ValueError(f"frame_budget must be a positive int or 'auto', got {frame_budget!r}")
        return None if dev.type == "cuda" else DEFAULT_FRAME_BUDGET
    return int(frame_budget)


def _probe_budget(run: Any, items: list[PreparedItem], dev: torch.device) -> int:
    """Enhance the probe ``items`` with ``run`` (which keeps no result) and return the frame
    budget that fits the free device memory at their peak bytes per padded frame."""
    torch.cuda.synchronize(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    base = torch.cuda.memory_allocated(dev)
    run(items)
    per_frame = (torch.cuda.max_memory_allocated(dev) - base) / float(len(items) * max(it.n_frames for it in items))
    free, _ = torch.cuda.mem_get_info(dev)
    reusable = torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev)
    return fit_frame_budget(int(free + reusable), per_frame)


def _enhance_group(model, algo, algorithm, params, items, dev, rank, seed, stft_cfg, progress, outs, allow_split: bool) -> None:
    t0 = time.perf_counter()
    results: Optional[list[ItemResult]] = None
    try:
        results = _run_batch(model, algo, algorithm, params, items, dev, rank, seed, stft_cfg, progress)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
    except Exception as exc:
        if is_out_of_memory(exc) and len(items) > 1:  # too large a batch: halves (below, once the
            # traceback, which holds the batch's tensors, is released), never lose an utterance
            log.warning("batch of %d ran out of memory (%s); retrying as two halves", len(items), exc)
        elif allow_split and len(items) > 1:  # find the culprit: retry one by one
            log.warning("batch of %d failed (%s); retrying one by one", len(items), exc)
            for it in items:
                _enhance_group(model, algo, algorithm, params, [it], dev, rank, seed, stft_cfg, progress, outs, allow_split=False)
            return
        else:
            for it in items:
                log.warning("%s: enhancement failed: %s", it.item_id, exc)
                outs[it.index] = EnhanceOutput(it.item_id, None, {}, 0.0, float("nan"), f"{type(exc).__name__}: {exc}")
            return
    if results is None:  # out of memory: the two halves
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        half = len(items) // 2
        for part in (items[:half], items[half:]):
            _enhance_group(model, algo, algorithm, params, part, dev, rank, seed, stft_cfg, progress, outs, allow_split)
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
