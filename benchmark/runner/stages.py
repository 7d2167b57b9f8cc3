"""The bodies of the pipeline's jobs: thin adapters from a job's plain arguments to the public
functions of each stage (corpus, training, mixing, enhancement, scoring).

Each function is top-level (picklable for joblib and Dask), takes plain data (dicts, strings),
imports its stage lazily, writes its files atomically and returns a
:class:`~benchmark.runner.jobs.JobOutput`. No science lives here.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from benchmark.runner.jobs import JobOutput
from benchmark.runner.store import atomic_path
from benchmark.threads import torch_threads
from benchmark.schema import (
    ITEM_COLUMNS, STATUS_FAILED, STATUS_OK, WEIGHT_COLUMNS, item_id as make_item_id, model_key, pair_id_of,
)

log = logging.getLogger(__name__)

BASELINE_KEY = "baseline"  # enhanced/<BASELINE_KEY>/<algorithm>/... for model-free baselines


# ---------------------------------------------------------------------------------------------
# corpus


def corpus_job(corpus: dict[str, Any]) -> JobOutput:
    """Build or locate the corpus (the corpus stage caches it by its own settings hash)."""
    from benchmark.configtools import from_dict
    from benchmark.corpus.build import ensure_corpus
    from benchmark.corpus.manifest import MANIFEST_FILE, read_sidecar
    from benchmark.spec import CorpusSpec

    spec = from_dict(CorpusSpec, corpus, source="run.json corpus")
    root = Path(ensure_corpus(spec, progress=False)).resolve()
    checksum = read_sidecar(root).get("checksum", "")
    return JobOutput(outputs=[root / MANIFEST_FILE], meta={"root": str(root), "checksum": checksum})


# ---------------------------------------------------------------------------------------------
# training


def train_job(entry: dict[str, Any], training: dict[str, Any], corpus_root: str, out_dir: str,
              init_from: Optional[str] = None) -> JobOutput:
    """Train one speech model on the clean train split; returns its checkpoint path."""
    from benchmark.configtools import from_dict
    from benchmark.spec import ModelEntry, TrainingSpec
    from models.training import train_model

    e = from_dict(ModelEntry, entry, source="model entry")
    t = from_dict(TrainingSpec, training, source="training")
    ckpt = Path(train_model(e, t, Path(corpus_root), Path(out_dir), init_from=Path(init_from) if init_from else None,
                            progress=False))
    return JobOutput(outputs=[ckpt], meta={"checkpoint": str(ckpt)})


def speech_nmf_job(corpus_root: str, out_path: str, rank: int, seed: int) -> JobOutput:
    """Learn the speech NMF dictionary of the ``nmf-only`` baseline on the clean train split."""
    from models.enhancement.baselines import train_speech_nmf

    p = train_speech_nmf(Path(corpus_root), Path(out_path), rank, seed)
    p = Path(p) if p is not None else Path(out_path)
    return JobOutput(outputs=[p], meta={"checkpoint": str(p)})


# ---------------------------------------------------------------------------------------------
# mixing


def _item_stub(utt: dict[str, Any], cond: Any) -> dict[str, Any]:
    """The identity columns of an item (used for failed items)."""
    d = dataclasses.asdict(cond) if dataclasses.is_dataclass(cond) else dict(cond)
    corruption = str(d.get("corruption", ""))
    return {
        "item_id": make_item_id(utt["utt_id"], cond.condition_id), "utt_id": utt["utt_id"],
        "speaker": utt.get("speaker", ""), "condition_id": cond.condition_id, "noise": d.get("noise"),
        "snr_db": d.get("snr_db"), "snr_definition": d.get("snr_definition"), "corruption": corruption,
        "severity": np.nan, "seed": d.get("seed"),
    }


def mix_job(run_dir: str, corpus_root: str, utts: list[dict[str, Any]], condition: dict[str, Any],
            noise_options: dict[str, Any]) -> JobOutput:
    """Mix a chunk of utterances under one condition; a bad utterance fails alone (status column)."""
    from benchmark.conditions.build import Condition, make_item, write_item
    from benchmark.corpus.manifest import load_utterance
    from noise_sets import NOISES

    cond = Condition(**condition)
    source = NOISES.get(cond.noise)(corpus_root=Path(corpus_root), **noise_options)
    rows, outputs = [], []
    for u in utts:
        try:
            utt = load_utterance(corpus_root, u)
            item = make_item(utt, cond, source)
            row = dict(write_item(item, Path(run_dir)))
            row.update(status=STATUS_OK, error="")
            for c in ("mixture_path", "clean_path", "noise_path", "lips_path", "corruption_path"):
                if row.get(c):
                    outputs.append(row[c])
        except Exception as exc:  # noqa: BLE001 - isolate the item
            log.error("mixing %s under %s failed: %s", u.get("utt_id"), cond.condition_id, exc)
            row = _item_stub(u, cond)
            row.update(status=STATUS_FAILED, error=f"mix: {type(exc).__name__}: {exc}")
        rows.append(row)
    return JobOutput(rows=rows, outputs=outputs)


# ---------------------------------------------------------------------------------------------
# enhancement


def _load_inputs(run_dir: Path, items: list[dict[str, Any]], audio_visual: bool) -> list[Any]:
    """The enhancement inputs of mixtures-table rows; ``pair_id`` (:func:`benchmark.schema.pair_id_of`)
    gives the clean- and corrupted-video items of one mixture common random numbers."""
    from benchmark.audio_io import read_audio, read_lips
    from models.enhancement.api import EnhanceInput

    out = []
    for it in items:
        lips = read_lips(run_dir / it["lips_path"]) if audio_visual and it.get("lips_path") else None
        corr = np.load(run_dir / it["corruption_path"]) if it.get("corruption_path") else None
        out.append(EnhanceInput(
            item_id=it["item_id"], mixture=read_audio(run_dir / it["mixture_path"], validate=False),
            lips=lips, fps=float(it["fps"]),
            clean=read_audio(run_dir / it["clean_path"], validate=False) if it.get("clean_path") else None,
            noise=read_audio(run_dir / it["noise_path"], validate=False) if it.get("noise_path") else None,
            corruption=corr, pair_id=pair_id_of(it),
        ))
    return out


def load_model(checkpoint: Optional[str], components: Optional[dict[str, str]] = None, params: Optional[dict] = None,
               name: Optional[str] = None) -> Any:
    """A trained model from its checkpoint, a composite model from its components' checkpoints
    (``components``: label of another model entry -> its checkpoint), or None for baselines."""
    import models

    if components:
        from models.mixture import build_composite

        return build_composite(str(name), dict(params or {}), lambda label: models.load(components[label]))
    if checkpoint is None:
        return None
    return models.load(checkpoint)


def _save_npz(path: Path, traces: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in traces.items()})


def _corruption_at_stft_rate(path: Path, traces: dict[str, Any], fps: float) -> dict[str, np.ndarray]:
    """``corruption_stft`` from the per-video-frame levels, when the algorithm did not record it."""
    w = traces.get("weights_decoder", traces.get("weights_encoder", traces.get("weights_prior")))
    if w is None:
        return {}
    from models.spectral import per_frame_to_stft_rate

    level = np.load(path)
    return {"corruption_stft": per_frame_to_stft_rate(level, int(np.asarray(w).shape[0]), fps).astype(np.float32)}


@contextlib.contextmanager
def cpu_threads(device: str):
    """Torch threads of a CPU enhancement job: ``AVBENCH_ENHANCE_THREADS`` or 1, restored after
    (:mod:`benchmark.threads`, the same policy as the training). No effect on CUDA."""
    if device == "cuda":
        yield
        return
    with torch_threads("AVBENCH_ENHANCE_THREADS"):
        yield


def enhance_job(run_dir: str, items: list[dict[str, Any]], system: dict[str, Any], algorithm: str,
                params: dict[str, Any], nmf_rank: int, device: str, frame_budget: int, seed: int,
                checkpoint: Optional[str] = None, components: Optional[dict[str, str]] = None,
                model_params: Optional[dict[str, Any]] = None) -> JobOutput:
    """Enhance a batch of mixtures with one (model, algorithm); one row per item (errors per item)."""
    from benchmark.audio_io import write_audio
    from models.enhancement.api import enhance

    rd = Path(run_dir)
    model = load_model(checkpoint, components, model_params, system.get("model"))
    inputs = _load_inputs(rd, items, audio_visual=bool(getattr(model, "is_audio_visual", False)))
    with cpu_threads(device):
        outs = enhance(model, algorithm, inputs, params=params or None, nmf_rank=nmf_rank, device=device,
                       frame_budget=frame_budget, seed=seed, progress=False)
    by_id = {o.item_id: o for o in outs}
    key = model_key(system["model_id"]) if system["model_id"] else BASELINE_KEY
    rows, outputs = [], []
    dev = device
    for it in items:
        o = by_id.get(it["item_id"])
        row = {"item_id": it["item_id"], **system, "algorithm": algorithm, "enhanced_path": "", "traces_path": "",
               "wall_time_s": np.nan, "rtf": np.nan, "device": dev, "status": STATUS_FAILED, "error": ""}
        if o is None:
            row["error"] = "enhance: no output returned for this item"
        elif o.error or o.estimate is None:
            row["error"] = f"enhance: {o.error or 'no estimate'}"
            row.update(wall_time_s=float(o.wall_time_s), rtf=float(o.rtf))
        elif not np.all(np.isfinite(o.estimate)):
            row["error"] = f"enhance: estimate has {int(np.sum(~np.isfinite(o.estimate)))} NaN/inf samples"
        else:
            rel = Path("enhanced") / key / algorithm / it["condition_id"] / f"{it['utt_id']}.wav"
            write_audio(rd / rel, np.asarray(o.estimate, dtype=np.float32))
            outputs.append(str(rel))
            row.update(enhanced_path=str(rel), status=STATUS_OK, wall_time_s=float(o.wall_time_s), rtf=float(o.rtf))
            traces = dict(o.traces or {})
            if traces and "corruption_stft" not in traces and it.get("corruption_path"):
                traces.update(_corruption_at_stft_rate(rd / it["corruption_path"], traces, float(it["fps"])))
            if traces:
                trel = rel.with_suffix(".npz")
                _save_npz(rd / trel, traces)
                outputs.append(str(trel))
                row["traces_path"] = str(trel)
        rows.append(row)
    return JobOutput(rows=rows, outputs=outputs)


# ---------------------------------------------------------------------------------------------
# scoring


def weight_summaries(traces_path: Optional[Path]) -> dict[str, float]:
    """Reliability-weight summaries (:data:`~benchmark.schema.WEIGHT_COLUMNS`) of one enhanced
    item, from its traces ``.npz``: the visual-weight trace chosen by
    :func:`benchmark.report.diagnostics.visual_weight` (decoder side first: the decoder-side
    fusion shapes the speech prior the EM actually uses) summarised by
    :func:`benchmark.report.diagnostics.weight_summary` against ``corruption_stft`` (``> 0`` =
    corrupted frame), so the per-row ``visual_weight_auc`` is the report's AUC (1 = the weight
    always drops on corrupted frames, 0.5 = blind to corruption). All NaN without weights; the
    AUC is NaN with only one kind of frame.
    """
    from benchmark.report.diagnostics import load_traces, visual_weight, weight_summary

    traces = load_traces(traces_path)
    w = visual_weight(traces, "decoder")
    if w is None:
        return {c: float("nan") for c in WEIGHT_COLUMNS}
    return weight_summary(w, traces.get("corruption_stft"))


def score_input_job(run_dir: str, items: list[dict[str, Any]], names: list[str], pesq_mode: str) -> JobOutput:
    """The unprocessed mixture's scores (``input_<col>``, ``input_<col>_error``) of a chunk of
    items, computed once per item and reused by every (model, algorithm) that scores it.

    A bad item gets no row (its score jobs then compute the input scores themselves and record
    the problem there)."""
    from benchmark.audio_io import read_audio
    from benchmark.metrics import score_input

    rd = Path(run_dir)
    rows = []
    for it in items:
        try:
            ref = read_audio(rd / it["clean_path"], validate=False)
            mix = read_audio(rd / it["mixture_path"], validate=False)
        except Exception as exc:  # noqa: BLE001 - isolate the item
            log.error("input scores of %s: %s: %s", it.get("item_id"), type(exc).__name__, exc)
            continue
        rows.append({"item_id": it["item_id"], **score_input(ref, mix, names=list(names), pesq_mode=pesq_mode)})
    return JobOutput(rows=rows)


def score_job(run_dir: str, items: list[dict[str, Any]], enhanced: list[dict[str, Any]], names: list[str],
              pesq_mode: str, inputs: Optional[dict[str, dict[str, Any]]] = None) -> JobOutput:
    """Score the enhanced items of one enhancement job: one result row per item.

    ``inputs``: item_id -> the mixture's scores from :func:`score_input_job` (reused, not
    recomputed; an item without them has them computed here)."""
    from benchmark.audio_io import read_audio
    from benchmark.metrics import score_pair

    rd = Path(run_dir)
    by_id = {it["item_id"]: it for it in items}
    inputs = inputs or {}
    rows = []
    for e in enhanced:
        it = by_id[e["item_id"]]
        row = {c: it.get(c) for c in ITEM_COLUMNS}
        row.update({k: e.get(k) for k in ("model_id", "model", "fusion", "algorithm")})
        row.update(status=e.get("status", STATUS_FAILED), error=e.get("error", ""),
                   wall_time_s=e.get("wall_time_s", np.nan), rtf=e.get("rtf", np.nan))
        if row["status"] == STATUS_OK:
            t0 = time.perf_counter()
            try:
                ref = read_audio(rd / it["clean_path"], validate=False)
                est = read_audio(rd / e["enhanced_path"], validate=False)
                mix = read_audio(rd / it["mixture_path"], validate=False)
                row.update(score_pair(ref, est, mix, names=list(names), pesq_mode=pesq_mode,
                                      inputs=inputs.get(e["item_id"])))
            except Exception as exc:  # noqa: BLE001 - one bad item does not stop the job
                row.update(status=STATUS_FAILED, error=f"score: {type(exc).__name__}: {exc}")
            row["score_time_s"] = time.perf_counter() - t0
            row.update(weight_summaries(rd / e["traces_path"] if e.get("traces_path") else None))
        else:
            row.update({c: float("nan") for c in WEIGHT_COLUMNS})
        rows.append(row)
    return JobOutput(rows=rows)


__all__ = ["corpus_job", "train_job", "speech_nmf_job", "mix_job", "enhance_job", "score_input_job", "score_job",
           "weight_summaries", "load_model", "BASELINE_KEY"]
