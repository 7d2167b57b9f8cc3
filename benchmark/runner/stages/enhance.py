"""Enhance stage: every (system, algorithm) on every mixed item, in jobs of many items, so
``enhance()`` sees many inputs at once and packs them into batches by its frame budget.

(Over 400 lines on purpose: the stage's three job kinds -- model enhancement, baselines and the
import of an outside system's files -- share one plan, one item identity and one per-item reuse
rule, which the cache's correctness depends on; split, they would have to be kept in step.)

Packing (:func:`job_groups`): on CPU one job per (system, algorithm, training seed, condition,
chunk of ``RunOptions.enhance_chunk`` items), run in parallel worker processes. On a GPU
(``enhance.device: cuda``, or ``auto`` resolving to it) the items of **all conditions** of one
(system, algorithm, training seed) go into one job (several jobs of at most
:data:`GPU_JOB_ITEMS` items when there are more), and the jobs run one at a time in the main
process (:func:`serial`), which keeps the CUDA context; each job loads its model once and
``enhance()`` packs the items of every condition into batches up to its frame budget
(``enhance.frame_budget: auto`` measures it on the device; a batch that runs out of memory is
split in halves and retried). Packing is a scheduling choice: an item's random streams come from
its ``pair_id`` and its own length, so its result does not depend on its batch (tested on CPU,
where it is bit-identical; on a GPU equal within float tolerance, as any change of batch shape).

Systems are the spec's baselines (model-free; ``nmf-only`` reads the speech-NMF dictionary of the
train stage) and every (model entry, algorithm). A model class that declares
``needs_training = False`` is a composite built at enhancement from the checkpoints of the
entries its ``components`` roles name (read from its ``config_class`` with the entry's params);
one that declares ``algorithms`` runs only those (a pair it does not define is not planned).
An entry naming a trained ``checkpoint`` is enhanced like a trained one (the train stage's row
for it is keyed by the checkpoint's checksum). An outside system (``name: external``) has no
model and no algorithm: :class:`ExternalJob` copies its files (matched by item id,
:func:`external_files`) into the run's layout, one job per condition; an item it has no file
for is a failed row ``missing output``.

Table: one row per (item, system, algorithm): the job's rows (``enhanced_path``, ``traces_path``,
timings, ``status``/``error`` per item) with ``job``/``job_label`` of the job that made them,
plus failure rows made here from the upstream tables (a failed mixture item, a failed training,
a failed composite component) and for the items of a failed job, each with the upstream reason.
``enhanced.parquet`` holds the rows of the successful jobs.

Training seeds (``training.seeds``): a trained system runs once per training seed, on that
seed's checkpoint (a composite on its components *of the same seed*); its rows carry
``train_seed``. The baselines, external systems and entries that name a trained ``checkpoint``
(and composites made only of such entries) are not trained here: they run once, with an empty
``train_seed``. The seed is not part of ``model_id`` nor of the system; with several seeds the
files go to ``enhanced/<model_key>/seed-<s>/<algorithm>/...``. The EM random streams stay common
across the visual conditions of a mixture (``pair_id``) and move with the training seed: the EM
seed of a trained system is ``enhance.seed + (train_seed - training.seed)`` (:func:`em_seed`), so
each training seed is an independent replicate of the whole system (model and inference), and
the one seed of a single-seed run keeps ``enhance.seed`` (its job keys are those of before the
seeds axis).
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from benchmark.codehash import stage_version
from benchmark.runner.context import (
    SPEECH_NMF, StageContext, device_is_gpu, failed_row, job_error, model_class, plain_records, seed_of,
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
                params: dict[str, Any], nmf_rank: int, device: str, frame_budget: int | str, seed: int,
                checkpoint: Optional[str] = None, components: Optional[dict[str, str]] = None,
                model_params: Optional[dict[str, Any]] = None, speech_nmf: Optional[str] = None,
                train_seed: Optional[int] = None, seed_dir: str = "",
                item_keys: tuple[str, ...] = (), reuse_items: bool = True) -> JobOutput:
    """Enhance a batch of mixtures with one (model, algorithm); one row per item (errors per item).
    ``speech_nmf``: the ``nmf-only`` baseline's dictionary (its ``dictionary`` parameter);
    ``train_seed``: the training seed of the model (None: not trained here), written to every row;
    ``seed_dir``: the sub-folder of the files (``seed-<s>`` with several training seeds);
    ``item_keys``: one key per item (:func:`item_keys`; empty: none): an item whose files carry
    its key (:func:`reused_row`, written by an earlier job with another packing) is not enhanced
    again; its row and files are taken over (not with ``reuse_items`` False: ``--force``)."""
    from benchmark.audio_io import write_audio
    from models.enhancement.api import enhance

    rd = Path(run_dir)
    key = model_key(system["model_id"]) if system["model_id"] else BASELINE_KEY
    rels = [Path("enhanced") / key / seed_dir / algorithm / it["condition_id"] / f"{it['utt_id']}.wav" for it in items]
    ikeys = list(item_keys) or [""] * len(items)
    reused = {it["item_id"]: r for it, rel, k in zip(items, rels, ikeys)
              if reuse_items and (r := reused_row(rd, rel, k)) is not None}
    todo = [it for it in items if it["item_id"] not in reused]
    if speech_nmf is not None:
        params = {**dict(params or {}), "dictionary": speech_nmf}
    outs = []
    if todo:
        model = load_model(checkpoint, components, model_params, system.get("model"))
        inputs = _load_inputs(rd, todo, audio_visual=bool(getattr(model, "is_audio_visual", False)))
        with cpu_threads(device):
            outs = enhance(model, algorithm, inputs, params=params or None, nmf_rank=nmf_rank, device=device,
                           frame_budget=frame_budget, seed=seed, progress=False)
    if reused:
        log.info("%s/%s: %d of %d item(s) reused from earlier jobs", key, algorithm, len(reused), len(items))
    by_id = {o.item_id: o for o in outs}
    rows, outputs = [], []
    for it, rel, ikey in zip(items, rels, ikeys):
        if it["item_id"] in reused:
            row = reused[it["item_id"]]
            rows.append(row)
            outputs += [p for p in (row["enhanced_path"], row["traces_path"], str(_done_path(rel))) if p]
            continue
        o = by_id.get(it["item_id"])
        row = {"item_id": it["item_id"], **system, "train_seed": train_seed, "algorithm": algorithm,
               "enhanced_path": "", "traces_path": "",
               "wall_time_s": np.nan, "rtf": np.nan, "device": device, "status": STATUS_FAILED, "error": ""}
        if o is None:
            row["error"] = "enhance: no output returned for this item"
        elif o.error or o.estimate is None:
            row["error"] = f"enhance: {o.error or 'no estimate'}"
            row.update(wall_time_s=float(o.wall_time_s), rtf=float(o.rtf))
        elif not np.all(np.isfinite(o.estimate)):
            row["error"] = f"enhance: estimate has {int(np.sum(~np.isfinite(o.estimate)))} NaN/inf samples"
        else:
            _done_path(rd / rel).unlink(missing_ok=True)  # a crash below leaves no stale marker
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
            if ikey:
                _write_done(rd / rel, ikey, row)
                outputs.append(str(_done_path(rel)))
        rows.append(row)
    return JobOutput(rows=rows, outputs=outputs)


def _done_path(wav: Path) -> Path:
    """The marker of an enhanced item: ``<utt_id>.item.json`` next to its ``.wav``."""
    return wav.with_suffix(".item.json")


def _write_done(wav: Path, item_key: str, row: dict[str, Any]) -> None:
    import json

    with atomic_path(_done_path(wav)) as tmp:
        tmp.write_text(json.dumps({"item_key": item_key, "row": row}))


def reused_row(run_dir: Path, wav: Path, item_key: str) -> Optional[dict[str, Any]]:
    """The row of an item enhanced earlier with the same :func:`item_keys` key (its marker next to
    its ``.wav`` names the key, and its files are present), or None (no key, no marker, another
    key: other settings or code, or files missing)."""
    import json

    if not item_key:
        return None
    try:
        done = json.loads((run_dir / _done_path(wav)).read_text())
    except (OSError, ValueError):
        return None
    row = done.get("row") or {}
    if done.get("item_key") != item_key or row.get("status") != STATUS_OK:
        return None
    if not all((run_dir / p).is_file() for p in (row.get("enhanced_path"), row.get("traces_path")) if p):
        return None
    return row


def item_keys(job: "EnhanceJob") -> tuple[str, ...]:
    """One key per item of ``job``: the job's keyed inputs with ``mix_ids`` replaced by the item's
    own (item_id, mix_id), so the key of an item's result does not depend on its job's packing
    (nor on the other items); everything else the job's key hashes (settings, model, seed,
    device, code version) is in it."""
    from benchmark.runner.jobs import job_key

    base = {k: v for k, v in job.inputs.items() if k != "mix_ids"}
    return tuple(job_key("enhance-item", {**base, "item": [i, m]}) for i, m in job.mix_ids)


@dataclass(frozen=True, eq=False)
class EnhanceJob(StageJob):
    """One batch of items with one (system, algorithm). Keyed: the items' mixture identities
    (``mix_ids``: (item_id, mix_id) pairs), the system, the algorithm and its settings, the model
    (the key of its train job, or role -> key for a composite) and the composite's params; not
    keyed: the run folder, the mixture rows (fixed by ``mix_ids``) and checkpoint paths (fixed by
    the model keys). ``frame_budget`` is keyed only on a GPU (batching does not change CPU
    results), as the spec's value (``"auto"`` stays ``"auto"``: the budget measured on the device
    is not keyed, so a resumed run finds its jobs whatever memory is free).

    The key depends on the job's composition (``mix_ids``), so a different packing makes new
    job keys: another ``enhance_chunk``, or on a GPU an added/removed condition or utterance (the
    one all-condition job of a (system, algorithm) changes). The results are kept per item
    (``item_keys``, :func:`item_keys`: the same inputs with the item's own mix id instead of
    ``mix_ids``, written in a marker next to each enhanced file), so such a new job enhances only
    the items whose marker is missing or names another key and takes over the rows and files of
    the others. Moving between CPU and GPU changes ``device``, which is keyed: everything reruns.
    (The score stage's jobs are keyed by the enhancement job's key, so they rerun.)"""

    stage = "enhance"
    fn = staticmethod(enhance_job)
    mix_ids: tuple[tuple[str, str], ...] = field(metadata=NOT_ARG)
    model: Any = field(metadata=NOT_ARG)
    system: dict[str, Any]
    algorithm: str
    params: dict[str, Any]
    nmf_rank: int
    device: str
    frame_budget: int | str
    seed: int
    model_params: Optional[dict[str, Any]] = None
    run_dir: str = field(default="", metadata=NOT_KEYED)
    items: tuple[dict[str, Any], ...] = field(default=(), metadata=NOT_KEYED)
    checkpoint: Optional[str] = field(default=None, metadata=NOT_KEYED)
    components: Optional[dict[str, str]] = field(default=None, metadata=NOT_KEYED)
    speech_nmf: Optional[str] = field(default=None, metadata=NOT_KEYED)
    # fixed by the model's train key(s) and ``seed``, so not keyed
    train_seed: Optional[int] = field(default=None, metadata=NOT_KEYED)
    seed_dir: str = field(default="", metadata=NOT_KEYED)
    # derived from the keyed fields (:func:`item_keys`)
    item_keys: tuple[str, ...] = field(default=(), metadata=NOT_KEYED)
    reuse_items: bool = field(default=True, metadata=NOT_KEYED)  # False when the stage is forced

    def _keyed_names(self) -> list[str]:
        names = super()._keyed_names()
        return names if device_is_gpu(self.device) else [n for n in names if n != "frame_budget"]


# ---- outside systems (``name: external``): their files, scored like the suite's outputs ------

MISSING_OUTPUT = "missing output"


def external_files(outputs: str | Path) -> dict[str, Path]:
    """Item id (``<condition_id>/<utt_id>``) -> file of an outside system's ``outputs``: a folder
    in the layout the runner writes below ``enhanced/<model>/<algorithm>/``
    (``<condition_id>/<utt_id>.wav`` or ``.flac``) or a Kaldi ``wav.scp`` keyed by item id."""
    from benchmark.audio_io import audio_list

    return audio_list(Path(outputs), keep_suffix=False)


def external_job(run_dir: str, items: list[dict[str, Any]], system: dict[str, Any], algorithm: str,
                 sources: dict[str, Optional[str]]) -> JobOutput:
    """Bring an outside system's enhanced files into the run: each item's file (``sources``:
    item id -> path, None when the system has none) is read (any sample rate: resampled to
    16 kHz by :func:`benchmark.corpus.adapters.common.load_audio`) and written where the runner
    writes its own (``enhanced/<model_key>/<algorithm>/<condition_id>/<utt_id>.wav``); an item
    without a file is a failed row with error ``missing output``, an unreadable one a failed
    row with the reason. No timings (NaN): the system was not run here."""
    from benchmark.audio_io import write_audio
    from benchmark.corpus.adapters.common import load_audio

    rd = Path(run_dir)
    rows, outputs = [], []
    for it in items:
        row = {"item_id": it["item_id"], **system, "algorithm": algorithm, "enhanced_path": "", "traces_path": "",
               "wall_time_s": np.nan, "rtf": np.nan, "device": "", "status": STATUS_FAILED, "error": ""}
        src = sources.get(it["item_id"])
        if src is None:
            row["error"] = MISSING_OUTPUT
        else:
            try:
                x = load_audio(src)
            except Exception as exc:  # noqa: BLE001 - one bad file fails alone
                row["error"] = f"external: {src}: {type(exc).__name__}: {exc}"
            else:
                rel = Path("enhanced") / model_key(system["model_id"]) / algorithm / it["condition_id"] / f"{it['utt_id']}.wav"
                write_audio(rd / rel, np.asarray(x, dtype=np.float32))
                outputs.append(str(rel))
                row.update(enhanced_path=str(rel), status=STATUS_OK)
        rows.append(row)
    return JobOutput(rows=rows, outputs=outputs)


@dataclass(frozen=True, eq=False)
class ExternalJob(StageJob):
    """An outside system's files for the items of one condition. Keyed: the items' mixture
    identities, the system, its algorithm label and each item's file content (``digests``:
    (item_id, SHA-256 or "") pairs, so a changed or added file reruns it); not keyed: the run
    folder, the mixture rows and the file paths."""

    stage = "enhance"
    fn = staticmethod(external_job)
    mix_ids: tuple[tuple[str, str], ...] = field(metadata=NOT_ARG)
    digests: tuple[tuple[str, str], ...] = field(metadata=NOT_ARG)
    system: dict[str, Any]
    algorithm: str
    run_dir: str = field(default="", metadata=NOT_KEYED)
    items: tuple[dict[str, Any], ...] = field(default=(), metadata=NOT_KEYED)
    sources: dict[str, Optional[str]] = field(default_factory=dict, metadata=NOT_KEYED)


def _digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def external_systems(spec: Any) -> list[tuple[dict[str, Any], str, Any]]:
    """(system, algorithm label, entry) of the spec's ``name: external`` entries."""
    return [(_system(e), e.algorithm or e.name, e) for e in spec.models if getattr(e, "external", False)]


def plan_external(ctx: StageContext, ok: pd.DataFrame) -> list[ExternalJob]:
    """One :class:`ExternalJob` per (external system, condition) over the items mixed without
    error; relative ``outputs`` resolve against the current directory."""
    jobs = []
    for sysd, alg, e in external_systems(ctx.spec):
        files = external_files(Path(e.outputs).resolve())
        for cid, grp in ok.groupby("condition_id", sort=True):
            chunk = tuple(plain_records(grp.sort_values("utt_id")))
            found = {c["item_id"]: files.get(c["item_id"]) for c in chunk}
            jobs.append(ExternalJob(
                mix_ids=tuple((c["item_id"], c["mix_id"]) for c in chunk),
                digests=tuple((i, _digest(f) if f is not None else "") for i, f in found.items()),
                system=sysd, algorithm=alg, run_dir=str(ctx.run_dir), items=chunk,
                sources={i: (str(f) if f is not None else None) for i, f in found.items()},
                version=stage_version("enhance"), label=f"{sysd['model_id']}/{alg}/{cid}"))
    return jobs


def _system(entry: Any) -> dict[str, Any]:
    return {"model_id": entry.label, "model": entry.name, "fusion": entry.fusion}


BASELINE_SYSTEM = {"model_id": "", "model": "", "fusion": None}


def em_seed(enhance_seed: int, train_seed: Optional[int], base_seed: int) -> int:
    """The EM seed of a system: ``enhance_seed`` when it is not trained here (``train_seed``
    None) and for the run's base training seed, ``enhance_seed + (train_seed - base_seed)`` else."""
    return int(enhance_seed) if train_seed is None else int(enhance_seed) + int(train_seed) - int(base_seed)


def trained_by_seed(table: Optional[pd.DataFrame]) -> dict[tuple[str, Optional[int]], dict[str, Any]]:
    """(label, train_seed) -> ``{"checkpoint", "key"}`` of the successful rows of a train table
    (``train_seed`` None: the speech NMF, an entry's named checkpoint, a table without the column)."""
    if table is None or table.empty:
        return {}
    ok = table[table["status"] == STATUS_OK]
    seeds = ok["train_seed"] if "train_seed" in ok else [None] * len(ok)
    return {(str(r["label"]), seed_of(sd)): {"checkpoint": r["checkpoint"], "key": r["key"]}
            for r, sd in zip(ok.to_dict("records"), seeds)}


def systems(spec: Any, train_table: pd.DataFrame) -> list[tuple[dict[str, Any], str, dict[str, Any]]]:
    """(system, algorithm, what the jobs load: ``model``/``components``+``model_params``/
    ``speech_nmf``, or ``blocked``: the upstream reason it cannot run; and ``train_seed``): each
    baseline once, each model entry once per training seed (once, seed None, when it is not
    trained here: see the module docstring)."""
    done = trained_by_seed(train_table)
    errors: dict[tuple[str, Optional[int]], str] = {}
    if train_table is not None and not train_table.empty:
        tseeds = train_table["train_seed"] if "train_seed" in train_table else [None] * len(train_table)
        errors = {(str(lab), seed_of(sd)): str(err) for lab, sd, err in zip(train_table["label"], tseeds,
                                                                          train_table["error"])}
    seeds: list[Optional[int]] = list(spec.training.seed_list)
    fixed = {e.label for e in spec.models if getattr(e, "checkpoint", None)}  # named checkpoints: no seed

    def find(label: str, ts: Optional[int]) -> Optional[dict[str, Any]]:
        return done.get((label, ts)) or done.get((label, None))

    out = []
    for alg in spec.enhance.baselines:
        kw: dict[str, Any] = {"train_seed": None}
        if alg == "nmf-only":
            nmf = done.get((SPEECH_NMF, None))
            kw.update({"speech_nmf": nmf} if nmf is not None else
                      {"blocked": errors.get((SPEECH_NMF, None)) or "train: speech NMF dictionary failed"})
        out.append((dict(BASELINE_SYSTEM), alg, kw))
    for e in spec.models:
        if getattr(e, "external", False):  # its files are brought in by plan_external
            continue
        cls = model_class(e.name)
        composite = not getattr(cls, "needs_training", True)
        labels = component_labels(cls, e.params) if composite else ()
        trained_here = not (e.label in fixed or (composite and set(labels) <= fixed))
        for ts in (seeds if trained_here else [None]):
            for alg in spec.enhance.algorithms:
                supported = getattr(cls, "algorithms", None)
                if supported is not None and alg not in supported:  # a combination the model does not define
                    if ts == seeds[0] or ts is None:
                        log.info("%s: no %r for this model (has: %s); that pair is not run", e.label, alg,
                                 ", ".join(supported))
                    continue
                kw = {"train_seed": ts}
                if composite:
                    missing = [label for label in labels if find(label, ts) is None]
                    kw.update({"blocked": f"train: component model(s) {missing} failed"} if missing else
                              {"components": {label: find(label, ts) for label in labels},
                               "model_params": dict(e.params)})
                elif find(e.label, ts) is not None:
                    kw["model"] = find(e.label, ts)
                else:
                    kw["blocked"] = (errors.get((e.label, ts)) or errors.get((e.label, None))
                                     or f"train: training of {e.label} failed")
                out.append((_system(e), alg, kw))
    return out


#: the most items of one enhancement job on a GPU (all conditions of a (system, algorithm,
#: training seed) together): bounds the host memory of its inputs (lip frames at the STFT rate)
#: and of its score job, which scores the items of one enhancement job
GPU_JOB_ITEMS = 1024


def serial(ctx: StageContext) -> bool:
    """Enhancement on a GPU runs one job at a time in this process: the CUDA context and the
    allocator's cache persist from job to job, and no two jobs compete for device memory."""
    return device_is_gpu(ctx.spec.enhance.device)


def job_groups(ok: pd.DataFrame, gpu: bool, chunk: int) -> list[tuple[str, list[dict[str, Any]]]]:
    """(label, items) of the enhancement jobs of one (system, algorithm, training seed): on a GPU
    the items of all conditions (sorted by condition and utterance) in jobs of at most
    :data:`GPU_JOB_ITEMS`; else per condition in jobs of ``chunk`` items."""
    if gpu:
        parts = [("all-conditions", plain_records(ok.sort_values(["condition_id", "utt_id"])))] if len(ok) else []
        chunk = GPU_JOB_ITEMS
    else:
        parts = [(str(cid), plain_records(grp.sort_values("utt_id"))) for cid, grp in ok.groupby("condition_id", sort=True)]
    return [(f"{name}[{i}:{i + len(recs[i:i + chunk])}]", recs[i:i + chunk])
            for name, recs in parts for i in range(0, len(recs), chunk)]


def subset_rows(ok: pd.DataFrame, subsets: dict[str, Any], algorithm: str, model_id: str) -> Optional[pd.DataFrame]:
    """The mixture rows of ``ok`` that (``algorithm``, system ``model_id``) runs on: those passing
    the ``enhance.subsets`` filters of the algorithm and of the model label (both apply); None
    when the model's filter names ``algorithms`` without this one."""
    from benchmark.conditions.subsets import matches

    filters = [f for f in (subsets.get(algorithm), subsets.get(model_id) if model_id else None) if f]
    if any("algorithms" in f and algorithm not in f["algorithms"] for f in filters):
        return None
    if not filters or ok.empty:
        return ok
    keep = [all(matches(f, r["noise"], r["snr_db"], r["corruption"]) for f in filters)
            for r in ok[["noise", "snr_db", "corruption"]].to_dict("records")]
    return ok[keep]


def plan(ctx: StageContext, upstream: dict[str, pd.DataFrame], done: Optional[pd.DataFrame] = None) -> list[EnhanceJob]:
    """The enhancement jobs of every (system, algorithm[, training seed]) over the items mixed
    without error -- restricted by ``enhance.subsets`` (:func:`subset_rows`) -- packed by
    :func:`job_groups` (per condition on CPU, across conditions on a GPU)."""
    if done is not None:
        return []
    es = ctx.spec.enhance
    mixtures = upstream["mix"]
    ok = mixtures[mixtures["status"] == STATUS_OK] if len(mixtures) else mixtures
    version = stage_version("enhance")
    multi = len(ctx.spec.training.seed_list) > 1
    gpu = device_is_gpu(es.device)
    jobs = []
    for sysd, alg, kw in systems(ctx.spec, upstream["train"]):
        if "blocked" in kw:
            continue
        rows = subset_rows(ok, es.subsets, alg, sysd["model_id"])
        if rows is None:  # the model's subset does not name this algorithm
            continue
        groups = job_groups(rows, gpu, ctx.opts.enhance_chunk)
        params = dict(es.algorithm_params.get(alg, {}))
        ts = kw["train_seed"]
        extra: dict[str, Any] = {"train_seed": ts, "seed_dir": f"seed-{ts}" if multi and ts is not None else ""}
        tag = f"@seed{ts}" if extra["seed_dir"] else ""
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
        for where, recs in groups:
            chunk = tuple(recs)
            job = EnhanceJob(
                mix_ids=tuple((c["item_id"], c["mix_id"]) for c in chunk), model=model, system=sysd,
                algorithm=alg, params=params, nmf_rank=es.nmf_rank, device=es.device,
                frame_budget=es.frame_budget, seed=em_seed(es.seed, ts, ctx.spec.training.seed),
                run_dir=str(ctx.run_dir), items=chunk, version=version,
                label=f"{sysd['model_id'] or 'baseline'}{tag}/{alg}/{where}", **extra)
            jobs.append(dataclasses.replace(job, item_keys=item_keys(job), reuse_items="enhance" not in ctx.opts.force))
    return jobs + plan_external(ctx, ok)


def collect(ctx: StageContext, jobs: list[StageJob], result: StageResult,
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
            frames.append(pd.DataFrame([{**failed_row(it, j.system, j.algorithm, err),
                                         "train_seed": getattr(j, "train_seed", None)} for it in j.items]))
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
        brought = [(sysd, alg, {}) for sysd, alg, _ in external_systems(ctx.spec)]
        for sysd, alg, kw in systems(ctx.spec, upstream["train"]) + brought:
            for it in items:
                if it.get("status") != STATUS_OK:
                    rows.append({**failed_row(it, sysd, alg, str(it.get("error") or "mix failed")),
                                 "train_seed": kw.get("train_seed")})
                elif "blocked" in kw:
                    rows.append({**failed_row(it, sysd, alg, str(kw["blocked"])), "train_seed": kw.get("train_seed")})
    return pd.DataFrame(rows)


__all__ = ["EnhanceJob", "ExternalJob", "external_job", "external_files", "external_systems", "plan_external",
           "MISSING_OUTPUT", "enhance_job", "load_model", "systems", "trained_by_seed", "em_seed", "plan", "collect", "upstream_failures", "serial",
           "job_groups", "GPU_JOB_ITEMS",
           "cpu_threads", "BASELINE_KEY"]
