"""Enhance stage: every (system, algorithm) on every mixed item, in batches of
``RunOptions.enhance_chunk`` items per (system, algorithm, condition), so ``enhance()`` sees many
inputs at once.

Systems are the spec's baselines (model-free; ``nmf-only`` reads the speech-NMF dictionary of the
train stage) and every (model entry, algorithm). A model class that declares
``needs_training = False`` is a composite built at enhancement from the checkpoints of the
entries its ``components`` roles name (read from its ``config_class`` with the entry's params);
one that declares ``algorithms`` runs only those (a pair it does not define is not planned).

Table: one row per (item, system, algorithm): the job's rows (``enhanced_path``, ``traces_path``,
timings, ``status``/``error`` per item) with ``job``/``job_label`` of the job that made them,
plus failure rows made here from the upstream tables (a failed mixture item, a failed training,
a failed composite component) and for the items of a failed job, each with the upstream reason.
``enhanced.parquet`` holds the rows of the successful jobs.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from benchmark.runner.codehash import stage_version
from benchmark.runner.context import (
    SPEECH_NMF, StageContext, device_is_gpu, failed_row, job_error, model_class, plain_records, trained,
)
from benchmark.runner.jobs import NOT_ARG, NOT_KEYED, JobOutput, StageJob, StageResult
from benchmark.runner.store import atomic_path, atomic_write_parquet
from benchmark.schema import STATUS_FAILED, STATUS_OK, model_key, pair_id_of
from benchmark.threads import torch_threads

log = logging.getLogger(__name__)

BASELINE_KEY = "baseline"  # enhanced/<BASELINE_KEY>/<algorithm>/... for model-free baselines


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
    """A trained model from its checkpoint; a composite (``components``: label of another model
    entry -> its checkpoint) with its class's ``from_models`` from its components in the order of
    its ``components`` roles; or None for baselines."""
    import models

    if components:
        cls = model_class(str(name))
        labels = component_labels(cls, params)
        return cls.from_models(*(models.load(components[label]) for label in labels), **dict(params or {}))
    if checkpoint is None:
        return None
    return models.load(checkpoint)


def component_labels(cls: Any, params: Optional[dict[str, Any]]) -> tuple[str, ...]:
    """The labels of the entries a composite's ``components`` roles name in its params."""
    cfg = cls.config_class.from_dict(dict(params or {}))
    return tuple(str(getattr(cfg, role)) for role in cls.components)


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
                model_params: Optional[dict[str, Any]] = None, speech_nmf: Optional[str] = None) -> JobOutput:
    """Enhance a batch of mixtures with one (model, algorithm); one row per item (errors per item).
    ``speech_nmf``: the ``nmf-only`` baseline's dictionary (its ``dictionary`` parameter)."""
    from benchmark.audio_io import write_audio
    from models.enhancement.api import enhance

    rd = Path(run_dir)
    if speech_nmf is not None:
        params = {**dict(params or {}), "dictionary": speech_nmf}
    model = load_model(checkpoint, components, model_params, system.get("model"))
    inputs = _load_inputs(rd, items, audio_visual=bool(getattr(model, "is_audio_visual", False)))
    with cpu_threads(device):
        outs = enhance(model, algorithm, inputs, params=params or None, nmf_rank=nmf_rank, device=device,
                       frame_budget=frame_budget, seed=seed, progress=False)
    by_id = {o.item_id: o for o in outs}
    key = model_key(system["model_id"]) if system["model_id"] else BASELINE_KEY
    rows, outputs = [], []
    for it in items:
        o = by_id.get(it["item_id"])
        row = {"item_id": it["item_id"], **system, "algorithm": algorithm, "enhanced_path": "", "traces_path": "",
               "wall_time_s": np.nan, "rtf": np.nan, "device": device, "status": STATUS_FAILED, "error": ""}
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


@dataclass(frozen=True, eq=False)
class EnhanceJob(StageJob):
    """One batch of items with one (system, algorithm). Keyed: the items' mixture identities
    (``mix_ids``: (item_id, mix_id) pairs), the system, the algorithm and its settings, the model
    (the key of its train job, or role -> key for a composite) and the composite's params; not
    keyed: the run folder, the mixture rows (fixed by ``mix_ids``) and checkpoint paths (fixed by
    the model keys). ``frame_budget`` is keyed only on a GPU (batching does not change CPU results)."""

    stage = "enhance"
    fn = staticmethod(enhance_job)
    mix_ids: tuple[tuple[str, str], ...] = field(metadata=NOT_ARG)
    model: Any = field(metadata=NOT_ARG)
    system: dict[str, Any]
    algorithm: str
    params: dict[str, Any]
    nmf_rank: int
    device: str
    frame_budget: int
    seed: int
    model_params: Optional[dict[str, Any]] = None
    run_dir: str = field(default="", metadata=NOT_KEYED)
    items: tuple[dict[str, Any], ...] = field(default=(), metadata=NOT_KEYED)
    checkpoint: Optional[str] = field(default=None, metadata=NOT_KEYED)
    components: Optional[dict[str, str]] = field(default=None, metadata=NOT_KEYED)
    speech_nmf: Optional[str] = field(default=None, metadata=NOT_KEYED)

    def _keyed_names(self) -> list[str]:
        names = super()._keyed_names()
        return names if device_is_gpu(self.device) else [n for n in names if n != "frame_budget"]


def _system(entry: Any) -> dict[str, Any]:
    return {"model_id": entry.label, "model": entry.name, "fusion": entry.fusion}


BASELINE_SYSTEM = {"model_id": "", "model": "", "fusion": None}


def systems(spec: Any, train_table: pd.DataFrame) -> list[tuple[dict[str, Any], str, dict[str, Any]]]:
    """(system, algorithm, what the jobs load: ``model``/``components``+``model_params``/
    ``speech_nmf``, or ``blocked``: the upstream reason it cannot run)."""
    done = trained(train_table)
    errors = {} if train_table is None or train_table.empty else dict(zip(train_table["label"], train_table["error"]))
    out = []
    for alg in spec.enhance.baselines:
        kw: dict[str, Any] = {}
        if alg == "nmf-only":
            kw = {"speech_nmf": done[SPEECH_NMF]} if SPEECH_NMF in done else \
                {"blocked": errors.get(SPEECH_NMF) or "train: speech NMF dictionary failed"}
        out.append((dict(BASELINE_SYSTEM), alg, kw))
    for e in spec.models:
        cls = model_class(e.name)
        composite = not getattr(cls, "needs_training", True)
        labels = component_labels(cls, e.params) if composite else ()
        for alg in spec.enhance.algorithms:
            supported = getattr(cls, "algorithms", None)
            if supported is not None and alg not in supported:  # a combination the model does not define
                log.info("%s: no %r for this model (has: %s); that pair is not run", e.label, alg, ", ".join(supported))
                continue
            if composite:
                missing = [label for label in labels if label not in done]
                kw = ({"blocked": f"train: component model(s) {missing} failed"} if missing else
                      {"components": {label: done[label] for label in labels}, "model_params": dict(e.params)})
            elif e.label in done:
                kw = {"model": done[e.label]}
            else:
                kw = {"blocked": errors.get(e.label) or f"train: training of {e.label} failed"}
            out.append((_system(e), alg, kw))
    return out


def serial(ctx: StageContext) -> bool:
    """Enhancement on a GPU runs one job at a time in this process."""
    return device_is_gpu(ctx.spec.enhance.device)


def plan(ctx: StageContext, upstream: dict[str, pd.DataFrame], done: Optional[pd.DataFrame] = None) -> list[EnhanceJob]:
    """One job per (system, algorithm, condition, chunk of the items mixed without error)."""
    if done is not None:
        return []
    es = ctx.spec.enhance
    mixtures = upstream["mix"]
    ok = mixtures[mixtures["status"] == STATUS_OK] if len(mixtures) else mixtures
    version = stage_version("enhance")
    jobs = []
    for sysd, alg, kw in systems(ctx.spec, upstream["train"]):
        if "blocked" in kw:
            continue
        params = dict(es.algorithm_params.get(alg, {}))
        extra: dict[str, Any] = {}
        if "model" in kw:
            model, extra["checkpoint"] = kw["model"]["key"], kw["model"]["checkpoint"]
        elif "components" in kw:
            model = {label: c["key"] for label, c in kw["components"].items()}
            extra["components"] = {label: c["checkpoint"] for label, c in kw["components"].items()}
            extra["model_params"] = kw["model_params"]
        elif "speech_nmf" in kw:
            model, extra["speech_nmf"] = kw["speech_nmf"]["key"], kw["speech_nmf"]["checkpoint"]
        else:
            model = None
        for cid, grp in ok.groupby("condition_id", sort=True):
            recs = plain_records(grp.sort_values("utt_id"))
            for i in range(0, len(recs), ctx.opts.enhance_chunk):
                chunk = tuple(recs[i:i + ctx.opts.enhance_chunk])
                jobs.append(EnhanceJob(
                    mix_ids=tuple((c["item_id"], c["mix_id"]) for c in chunk), model=model, system=sysd,
                    algorithm=alg, params=params, nmf_rank=es.nmf_rank, device=es.device,
                    frame_budget=es.frame_budget, seed=es.seed, run_dir=str(ctx.run_dir), items=chunk,
                    version=version, label=f"{sysd['model_id'] or 'baseline'}/{alg}/{cid}[{i}:{i + len(chunk)}]",
                    **extra))
    return jobs


def collect(ctx: StageContext, jobs: list[EnhanceJob], result: StageResult,
            upstream: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The enhancement table (see the module docstring); writes ``enhanced.parquet``."""
    ok_keys = set(result.ok_keys)
    atomic_write_parquet(ctx.run_dir / "enhanced.parquet", ctx.store.read_table("enhance", result.ok_keys))
    frames = [upstream_failures(ctx, upstream)]
    for j in jobs:
        if j.key in ok_keys:
            frames.append(ctx.store.read_table("enhance", [j.key]).assign(job=j.key, job_label=j.label))
        else:
            err = f"enhance: job failed: {job_error(result, j.key)}"
            frames.append(pd.DataFrame([failed_row(it, j.system, j.algorithm, err) for it in j.items]))
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def upstream_failures(ctx: StageContext, upstream: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The failure rows of (item, system, algorithm) that no enhancement job could make: items
    whose mixing failed (for every system), systems blocked by the train stage (for every item),
    each with the upstream stage's reason."""
    mixtures = upstream["mix"]
    rows = []
    if len(mixtures):
        items = plain_records(mixtures)
        for sysd, alg, kw in systems(ctx.spec, upstream["train"]):
            for it in items:
                if it.get("status") != STATUS_OK:
                    rows.append(failed_row(it, sysd, alg, str(it.get("error") or "mix failed")))
                elif "blocked" in kw:
                    rows.append(failed_row(it, sysd, alg, str(kw["blocked"])))
    return pd.DataFrame(rows)


__all__ = ["EnhanceJob", "enhance_job", "load_model", "systems", "plan", "collect", "upstream_failures", "serial",
           "cpu_threads", "BASELINE_KEY"]
