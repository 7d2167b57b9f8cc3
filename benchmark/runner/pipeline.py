"""The stages in order: corpus -> train -> mix -> enhance -> score -> results (-> report).

:func:`run_pipeline` turns an :class:`~benchmark.spec.ExperimentSpec` into content-hashed jobs
stage by stage (each stage's jobs are planned from what the previous stage produced), runs them
on the chosen executor, and merges the rows into one long results table:

* ``results.parquet`` / ``results.csv``: one row per (utterance, condition, model, algorithm),
  with the metric, ``input_*`` and ``delta_*`` columns, timings, reliability-weight summaries
  and ``status``/``error`` (rows of failed items are kept, with NaN metrics and the reason);
* ``mixtures.parquet`` and ``enhanced.parquet`` (the intermediate tables), ``failures.parquet``
  (one row per failed job, with error and traceback) and ``run.json``.

Job granularity: the corpus is one job; one training job per model entry (A-VAEs first, then
the AV models that initialise from them); mixing in chunks of utterances per condition;
enhancement in batches per (model, algorithm, condition) so ``enhance()`` sees many inputs at
once; scoring: one job per chunk of items for the unprocessed mixtures' ``input_*`` scores
(computed once per item, table ``score_input``), then one job per enhancement job that reuses
them. A job's key hashes its settings, the keys (or content checksums) of what it reads, and
the stage code version, so a change of one setting reruns only what depends on it.

The report (``RunOptions.report``) goes to ``RunOptions.report_dir``, by default
``reports/<run folder name>/`` relative to the current directory (as ``report runs/NAME``).
The stage subcommands (``mix``, ``train``, ``enhance``, ``score --preset``) call
:func:`run_stages` with the stage they stop at, so they run (and reuse) exactly ``run``'s jobs.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from benchmark.runner import stages
from benchmark.runner.codehash import STAGE_VERSIONS, stage_version  # noqa: F401 (re-exported)
from benchmark.runner.executors import SerialExecutor, make_executor
from benchmark.runner.jobs import Job, StageResult, canonical, run_jobs
from benchmark.runner.provenance import finish_run_json, write_run_json
from benchmark.runner.store import (
    STATUS_DONE, RunStore, atomic_write_csv, atomic_write_parquet,
)
from benchmark.schema import (
    ITEM_COLUMNS, RESULT_ID_COLUMNS, STATUS_FAILED, STATUS_OK, WEIGHT_COLUMNS, model_key,
)
from benchmark.seeding import stable_hash
from benchmark.spec import ExperimentSpec

log = logging.getLogger(__name__)

STAGES = ("corpus", "train", "mix", "enhance", "score")
#: rank of the clean-speech NMF dictionary of the nmf-only baseline (train_speech_nmf's default)
SPEECH_NMF_RANK = 32

#: each job's key hashes its stage's ``stage_version``: the runner's own version of the stage's
#: job wiring (``STAGE_VERSIONS``) plus the hash of the source files the stage's results depend
#: on (:mod:`benchmark.runner.codehash`), so editing that code reruns the stage and what follows.


@dataclass
class RunOptions:
    """How to run (not what: that is the spec)."""

    jobs: int = 1
    dask_local: int = 0
    scheduler: Optional[str] = None
    retry_failed: bool = False
    max_attempts: int = 3
    progress: bool = True
    report: bool = True
    #: where the report goes; None: ``reports/<run folder name>`` relative to the current
    #: directory (the convention of ``report runs/NAME``, which writes ``reports/NAME/``)
    report_dir: Optional[str] = None
    #: an existing corpus root to use instead of building/locating the spec's corpus (its
    #: checksum stands for it in the job keys, so the same corpus gives the same keys)
    corpus_root: Optional[str] = None
    #: stages whose jobs are recomputed even if done (e.g. ``("train",)`` for ``train --force``)
    force: tuple[str, ...] = ()
    mix_chunk: int = 16  # utterances per mixing job
    enhance_chunk: int = 64  # utterances per enhancement job (enhance() packs them by frame budget)
    preset: str = ""


@dataclass
class RunSummary:
    """What a call of :func:`run_pipeline` did."""

    run_dir: Path
    stages: dict[str, StageResult] = field(default_factory=dict)
    n_rows: int = 0
    n_failed_rows: int = 0
    wall_time_s: float = 0.0
    report_path: Optional[str] = None

    @property
    def failed_jobs(self) -> int:
        return sum(len(r.failed_keys) for r in self.stages.values())

    @property
    def ok(self) -> bool:
        return self.failed_jobs == 0 and self.n_failed_rows == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "stages": {s: {"jobs": len(r.keys), "cached": r.cached, "ran": r.ran, "failed": len(r.failed_keys),
                           "wall_time_s": round(r.wall_time_s, 3)} for s, r in self.stages.items()},
            "rows": self.n_rows, "failed_rows": self.n_failed_rows, "wall_time_s": round(self.wall_time_s, 3),
            "report": self.report_path,
        }

    def text(self) -> str:
        lines = [f"run folder: {self.run_dir}"]
        lines += ["  " + r.summary() for r in self.stages.values()]
        lines.append(f"  results: {self.n_rows} rows, {self.n_failed_rows} failed; total {self.wall_time_s:.1f} s")
        if self.report_path:
            lines.append(f"  report: {self.report_path}")
        if not self.ok:
            lines.append("  FAILURES: see failures.csv; rerun with --retry-failed to run the failed jobs again")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# helpers


def _asdict(obj: Any) -> dict[str, Any]:
    from benchmark.configtools import to_dict

    return to_dict(obj)


def effective_spec(spec: ExperimentSpec) -> ExperimentSpec:
    """Apply ``runner.limit`` (number of test utterances) to the conditions section."""
    lim = spec.runner.limit
    if lim is None:
        return spec
    n = spec.conditions.n_utterances
    cond = dataclasses.replace(spec.conditions, n_utterances=lim if n is None else min(n, lim))
    return dataclasses.replace(spec, conditions=cond)


def _check_labels(spec: ExperimentSpec) -> None:
    from benchmark.configtools import ConfigError

    labels = [m.label for m in spec.models]
    dup = sorted({lab for lab in labels if labels.count(lab) > 1})
    if dup:
        raise ConfigError(f"models: duplicate model label(s) {dup}; give each entry a distinct 'id'")


def _is_composite(entry: Any) -> bool:
    """A model built from other entries' checkpoints (no training), e.g. mixture/switching VAEs."""
    try:
        from models.mixture import is_composite
    except ImportError:
        return False
    return bool(is_composite(entry.name))


def _is_audio_only(entry: Any) -> bool:
    return entry.fusion is None and entry.name in ("a-vae",)


def _system(entry: Any) -> dict[str, Any]:
    return {"model_id": entry.label, "model": entry.name, "fusion": entry.fusion}


def _baseline_system() -> dict[str, Any]:
    return {"model_id": "", "model": "", "fusion": None}


def _device_is_gpu(device: str) -> bool:
    if device == "cuda":
        return True
    if device == "auto":
        try:
            import torch

            return bool(torch.cuda.is_available())
        except ImportError:
            return False
    return False


# ---------------------------------------------------------------------------------------------
# stages


class Pipeline:
    """One run of the stages on one run folder (use :func:`run_pipeline`)."""

    def __init__(self, spec: ExperimentSpec, run_dir: Path, opts: RunOptions, executor: Any) -> None:
        self.spec = effective_spec(spec)
        self.run_dir = Path(run_dir).resolve()
        self.opts = opts
        self.executor = executor
        self.store = RunStore(self.run_dir)
        self.summary = RunSummary(run_dir=self.run_dir)
        # (item_id, model_id, algorithm) -> reason, for rows that cannot be produced
        self.blocked: dict[tuple[str, str, str], str] = {}

    def _run(self, stage: str, jobs: list[Job], executor: Any = None) -> StageResult:
        if stage in self.opts.force:
            for j in jobs:
                rec = self.store.record_path(j.stage, j.key)
                if rec.exists():
                    log.info("%s: recomputing (forced)", j.describe())
                    rec.unlink()
        self.store.write_plan(stage, [j.key for j in jobs])
        res = run_jobs(jobs, self.run_dir, executor or self.executor, stage=stage, retry_failed=self.opts.retry_failed,
                       max_attempts=self.opts.max_attempts, progress=self.opts.progress)
        if stage in self.summary.stages:  # several waves of one stage: accumulate
            prev = self.summary.stages[stage]
            prev.keys += res.keys
            prev.records.update(res.records)
            prev.cached += res.cached
            prev.ran += res.ran
            prev.failed += res.failed
            prev.gave_up += res.gave_up
            prev.wall_time_s += res.wall_time_s
            self.store.write_plan(stage, prev.keys)
            log.info(res.summary())
            return res
        self.summary.stages[stage] = res
        log.info(res.summary())
        return res

    # -- corpus ------------------------------------------------------------------------------
    def corpus(self) -> tuple[Path, str]:
        """The corpus root and its identity (checksum) for the job keys downstream."""
        if self.opts.corpus_root:
            return self._given_corpus(Path(self.opts.corpus_root))
        c = _asdict(self.spec.corpus)
        job = Job("corpus", {"corpus": c, "version": stage_version("corpus")}, stages.corpus_job,
                  {"corpus": c}, label=self.spec.corpus.name)
        res = self._run("corpus", [job], SerialExecutor())
        rec = res.records[job.key]
        if rec["status"] != STATUS_DONE:
            raise RuntimeError(f"corpus stage failed: {rec['error']}\n{rec.get('traceback', '')}")
        root = Path(rec["meta"]["root"])
        self._link_corpus(root)
        return root, rec["meta"].get("checksum") or job.key

    def _given_corpus(self, root: Path) -> tuple[Path, str]:
        """An existing corpus (``RunOptions.corpus_root``): validated, identified by its checksum
        (the sidecar's, else a hash of the manifest file)."""
        from benchmark.audio_io import DataError
        from benchmark.corpus.manifest import MANIFEST_FILE, read_manifest, read_sidecar

        root = root.resolve()
        read_manifest(root)  # a clear error if it is not a corpus
        try:
            checksum = str(read_sidecar(root).get("checksum") or "")
        except DataError:
            checksum = ""
        if not checksum:
            checksum = "manifest-" + stable_hash((root / MANIFEST_FILE).read_bytes().hex(), length=20)
        self._link_corpus(root)
        return root, checksum

    def _link_corpus(self, root: Path) -> None:
        """``<run>/corpus`` -> the corpus root (atomically replaced)."""
        link = self.run_dir / "corpus"
        if not (link.is_symlink() and os.readlink(link) == str(root)):
            tmp = self.run_dir / ".corpus.link.tmp"
            if tmp.is_symlink() or tmp.exists():
                tmp.unlink()
            os.symlink(root, tmp)
            os.replace(tmp, link)

    # -- training ----------------------------------------------------------------------------
    def train(self, corpus_root: Path, corpus_id: str) -> dict[str, dict[str, Any]]:
        """Train every model entry; returns label -> {"checkpoint", "key"} (missing if failed)."""
        spec = self.spec
        train_dict = _asdict(spec.training)
        ex = SerialExecutor() if _device_is_gpu(spec.training.device) else self.executor
        trained: dict[str, dict[str, Any]] = {}
        plain = [e for e in spec.models if not _is_composite(e)]
        first = [e for e in plain if _is_audio_only(e)]
        second = [e for e in plain if not _is_audio_only(e)]

        def make(entry: Any, init: Optional[dict[str, Any]]) -> Job:
            ed = _asdict(entry)
            out_dir = self.run_dir / "models" / model_key(entry.label)
            inputs = {"entry": ed, "training": train_dict, "corpus": corpus_id, "version": stage_version("train"),
                      "init_from": init["key"] if init else None}
            return Job("train", inputs, stages.train_job,
                       {"entry": ed, "training": train_dict, "corpus_root": str(corpus_root), "out_dir": str(out_dir),
                        "init_from": init["checkpoint"] if init else None}, label=entry.label)

        jobs = [make(e, None) for e in first]
        extra: list[Job] = []
        if "nmf-only" in spec.enhance.baselines:
            out = self.run_dir / "models" / "speech-nmf" / "speech_nmf.npz"
            extra.append(Job("train", {"what": "speech-nmf", "corpus": corpus_id, "rank": SPEECH_NMF_RANK,
                                       "seed": spec.enhance.seed, "version": stage_version("speech-nmf")},
                             stages.speech_nmf_job, {"corpus_root": str(corpus_root), "out_path": str(out),
                                                     "rank": SPEECH_NMF_RANK, "seed": spec.enhance.seed},
                             label="speech-nmf"))
        res = self._run("train", jobs + extra, ex)
        for j in jobs + extra:
            rec = res.records.get(j.key, {})
            if rec.get("status") == STATUS_DONE:
                trained[j.label] = {"checkpoint": self._artifact(rec), "key": j.key}
        avae = next((trained[e.label] for e in first if e.label in trained), None)
        jobs2 = []
        for e in second:
            init = avae if (spec.training.init_from_avae and e.training.get("init_from_avae", True)) else None
            jobs2.append(make(e, init))
        if jobs2:
            res2 = self._run("train", jobs2, ex)
            for j in jobs2:
                rec = res2.records.get(j.key, {})
                if rec.get("status") == STATUS_DONE:
                    trained[j.label] = {"checkpoint": self._artifact(rec), "key": j.key}
        return trained

    def _artifact(self, rec: dict[str, Any]) -> str:
        """Absolute path of the (first) file a training job wrote (records keep run-relative paths,
        so a run folder can be moved or copied)."""
        outs = list(rec.get("outputs") or {})
        return str(self.store.path(outs[0])) if outs else str(rec["meta"]["checkpoint"])

    # -- mixing ------------------------------------------------------------------------------
    def test_utterances(self, corpus_root: Path) -> pd.DataFrame:
        from benchmark.corpus.manifest import read_manifest, select

        df = select(read_manifest(corpus_root), self.spec.conditions.split, self.spec.conditions.n_utterances)
        if df.empty:
            raise RuntimeError(f"{corpus_root}: no utterances in split {self.spec.conditions.split!r}")
        return df

    def mix(self, corpus_root: Path, corpus_id: str) -> pd.DataFrame:
        from benchmark.conditions.build import expand_conditions

        cs = self.spec.conditions
        utts = self.test_utterances(corpus_root)
        rows = [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in utts.to_dict("records")]
        conds = expand_conditions(cs)
        jobs = []
        for cond in conds:
            cd = dataclasses.asdict(cond)
            # only this noise's options: changing another noise's options reruns nothing here
            settings = {"split": cs.split, "noise_options": cs.options_for(cond.noise),
                        "peak_normalise": cs.peak_normalise, "allow_noise_loop": cs.allow_noise_loop}
            for i in range(0, len(rows), self.opts.mix_chunk):
                chunk = rows[i:i + self.opts.mix_chunk]
                inputs = {"corpus": corpus_id, "utts": [u["utt_id"] for u in chunk], "condition": cd,
                          "settings": settings, "version": stage_version("mix")}
                jobs.append(Job("mix", inputs, stages.mix_job,
                                {"run_dir": str(self.run_dir), "corpus_root": str(corpus_root), "utts": chunk,
                                 "condition": cd, "noise_options": cs.options_for(cond.noise)},
                                label=f"{cond.condition_id}[{i}:{i + len(chunk)}]"))
                for u in chunk:  # items of a mixing job that fails as a whole
                    stub = stages._item_stub(u, cond)
                    self._expected_items.append((jobs[-1].key, stub))
                    # the mixture files are a pure function of these: the item's identity for
                    # the jobs downstream (independent of how items are chunked into jobs)
                    self._mix_key_of[stub["item_id"]] = stable_hash(
                        corpus_id, u["utt_id"], canonical(cd), canonical(settings), stage_version("mix"), length=20)
        res = self._run("mix", jobs)
        df = self.store.read_table("mix", res.ok_keys)
        failed_keys = set(res.failed_keys)
        stubs = [dict(s, status=STATUS_FAILED, error=f"mix: job failed: {res.records.get(k, {}).get('error', '?')}")
                 for k, s in self._expected_items if k in failed_keys]
        if stubs:
            df = pd.concat([df, pd.DataFrame(stubs)], ignore_index=True) if len(df) else pd.DataFrame(stubs)
        df = df.sort_values("item_id").reset_index(drop=True)
        atomic_write_parquet(self.run_dir / "mixtures.parquet", df)
        return df

    # -- enhancement -------------------------------------------------------------------------
    def systems(self, trained: dict[str, dict[str, Any]]) -> list[tuple[dict[str, Any], str, dict[str, Any]]]:
        """(system, algorithm, model-loading kwargs or None if it cannot run + reason)."""
        spec = self.spec
        out = []
        for alg in spec.enhance.baselines:
            kw: dict[str, Any] = {}
            if alg == "nmf-only":
                info = trained.get("speech-nmf")
                if info is None:
                    out.append((_baseline_system(), alg, {"_blocked": "train: speech NMF dictionary failed"}))
                    continue
                kw = {"speech_nmf": info}
            out.append((_baseline_system(), alg, kw))
        for e in spec.models:
            for alg in spec.enhance.algorithms:
                if _is_composite(e):
                    from models.enhancement.switching import SWITCH_ESTEPS
                    from models.mixture import composite_dependencies

                    if alg not in SWITCH_ESTEPS:  # a combination the composite does not define
                        log.info("%s: no switching E-step for %r (has: %s); that pair is not run",
                                 e.label, alg, ", ".join(SWITCH_ESTEPS.names()))
                        continue
                    comps = {}
                    missing = []
                    for label in composite_dependencies(e.params):
                        if label in trained:
                            comps[label] = trained[label]
                        else:
                            missing.append(label)
                    if missing:
                        out.append((_system(e), alg, {"_blocked": f"train: component model(s) {missing} failed"}))
                    else:
                        out.append((_system(e), alg, {"components": comps, "model_params": e.params}))
                elif e.label in trained:
                    out.append((_system(e), alg, {"model": trained[e.label]}))
                else:
                    out.append((_system(e), alg, {"_blocked": f"train: training of {e.label} failed"}))
        return out

    def enhance(self, mixtures: pd.DataFrame, trained: dict[str, dict[str, Any]]) -> list[tuple[Job, list[dict]]]:
        es = self.spec.enhance
        ok = mixtures[mixtures["status"] == STATUS_OK] if "status" in mixtures else mixtures
        bad = mixtures[mixtures["status"] != STATUS_OK] if "status" in mixtures else mixtures.iloc[:0]
        mix_keys = {}  # item_id -> content identity of its mixture files
        jobs: list[Job] = []
        job_items: dict[str, list[dict]] = {}
        systems = self.systems(trained)
        for sysd, alg, kw in systems:
            for _, r in bad.iterrows():
                self.blocked[(r["item_id"], sysd["model_id"], alg)] = str(r.get("error") or "mix failed")
            if "_blocked" in kw:
                for iid in mixtures["item_id"]:
                    self.blocked.setdefault((iid, sysd["model_id"], alg), kw["_blocked"])
                continue
            params = dict(es.algorithm_params.get(alg, {}))
            model_id_key: Any = None
            job_kw: dict[str, Any] = {}
            if "model" in kw:
                model_id_key = kw["model"]["key"]
                job_kw["checkpoint"] = kw["model"]["checkpoint"]
            elif "components" in kw:
                model_id_key = {r: c["key"] for r, c in kw["components"].items()}
                job_kw["components"] = {r: c["checkpoint"] for r, c in kw["components"].items()}
                job_kw["model_params"] = kw["model_params"]
            elif "speech_nmf" in kw:
                model_id_key = kw["speech_nmf"]["key"]
                params.setdefault("dictionary", kw["speech_nmf"]["checkpoint"])
            gpu = _device_is_gpu(es.device)
            for cid, grp in ok.groupby("condition_id", sort=True):
                recs = [{k: (None if (isinstance(v, float) and np.isnan(v)) else v) for k, v in r.items()}
                        for r in grp.sort_values("utt_id").to_dict("records")]
                for i in range(0, len(recs), self.opts.enhance_chunk):
                    chunk = recs[i:i + self.opts.enhance_chunk]
                    ids = [(c["item_id"], mix_keys.setdefault(c["item_id"], self._mix_identity(c))) for c in chunk]
                    inputs = {"items": ids, "system": sysd, "algorithm": alg, "params": params, "model": model_id_key,
                              "nmf_rank": es.nmf_rank, "frame_budget": es.frame_budget, "seed": es.seed,
                              "device": es.device, "version": stage_version("enhance")}
                    if not gpu:
                        inputs.pop("frame_budget")  # batching does not change results on CPU
                    j = Job("enhance", inputs, stages.enhance_job,
                            {"run_dir": str(self.run_dir), "items": chunk, "system": sysd, "algorithm": alg,
                             "params": params, "nmf_rank": es.nmf_rank, "device": es.device,
                             "frame_budget": es.frame_budget, "seed": es.seed, **job_kw},
                            label=f"{sysd['model_id'] or 'baseline'}/{alg}/{cid}[{i}:{i + len(chunk)}]")
                    jobs.append(j)
                    job_items[j.key] = chunk
        ex = SerialExecutor() if _device_is_gpu(es.device) else self.executor
        res = self._run("enhance", jobs, ex)
        enh = self.store.read_table("enhance", res.ok_keys)
        atomic_write_parquet(self.run_dir / "enhanced.parquet", enh if len(enh) else pd.DataFrame())
        for k in res.failed_keys:
            j = next(j for j in jobs if j.key == k)
            for c in job_items[k]:
                self.blocked[(c["item_id"], j.kwargs["system"]["model_id"], j.kwargs["algorithm"])] = \
                    f"enhance: job failed: {res.records.get(k, {}).get('error', '?')}"
        return [(j, job_items[j.key]) for j in jobs if j.key in set(res.ok_keys)]

    def _mix_identity(self, row: dict[str, Any]) -> Any:
        """What an enhancement job's result depends on for one item (see :meth:`mix`)."""
        return self._mix_key_of[row["item_id"]]

    # -- scoring -----------------------------------------------------------------------------
    def score_inputs(self, enh_jobs: list[tuple[Job, list[dict]]]) -> dict[str, dict[str, Any]]:
        """The unprocessed mixtures' scores, once per item (not once per (item, model, algorithm)):
        item_id -> ``input_<col>``/``input_<col>_error``. Jobs of the score stage (table
        ``score_input``), chunked per condition like the mixing; an item's scores depend only on
        its mixture files (its mixing identity), the metric names and the PESQ mode."""
        ms = self.spec.metrics
        items: dict[str, dict[str, Any]] = {}
        for _, chunk in enh_jobs:
            for it in chunk:
                items.setdefault(it["item_id"], it)
        by_cond: dict[str, list[dict[str, Any]]] = {}
        for it in items.values():
            by_cond.setdefault(str(it["condition_id"]), []).append(it)
        jobs = []
        for cid in sorted(by_cond):
            recs = sorted(by_cond[cid], key=lambda r: r["item_id"])
            for i in range(0, len(recs), self.opts.mix_chunk):
                chunk = recs[i:i + self.opts.mix_chunk]
                inputs = {"what": "input", "items": [(c["item_id"], self._mix_identity(c)) for c in chunk],
                          "names": list(ms.names), "pesq_mode": ms.pesq_mode, "version": stage_version("score")}
                jobs.append(Job("score", inputs, stages.score_input_job,
                                {"run_dir": str(self.run_dir), "items": chunk, "names": list(ms.names),
                                 "pesq_mode": ms.pesq_mode},
                                label=f"input/{cid}[{i}:{i + len(chunk)}]", table="score_input"))
        if not jobs:
            return {}
        res = self._run("score", jobs)
        df = self.store.read_table("score_input", res.ok_keys)
        if df.empty:
            return {}
        return {r.pop("item_id"): r for r in df.to_dict("records")}

    def score(self, enh_jobs: list[tuple[Job, list[dict]]]) -> list[str]:
        ms = self.spec.metrics
        input_scores = self.score_inputs(enh_jobs)
        jobs = []
        for ej, items in enh_jobs:
            rows = self.store.read_table("enhance", [ej.key]).to_dict("records")
            rows = [{k: (None if (isinstance(v, float) and np.isnan(v) and k in ("enhanced_path", "traces_path")) else v)
                     for k, v in r.items()} for r in rows]
            inputs = {"enhance": ej.key, "names": list(ms.names), "pesq_mode": ms.pesq_mode,
                      "version": stage_version("score")}
            jobs.append(Job("score", inputs, stages.score_job,
                            {"run_dir": str(self.run_dir), "items": items, "enhanced": rows, "names": list(ms.names),
                             "pesq_mode": ms.pesq_mode,
                             "inputs": {it["item_id"]: input_scores[it["item_id"]] for it in items
                                        if it["item_id"] in input_scores}}, label=ej.label))
        res = self._run("score", jobs)
        for k in res.failed_keys:
            j = next(j for j in jobs if j.key == k)
            for e in j.kwargs["enhanced"]:
                self.blocked[(e["item_id"], e["model_id"], e["algorithm"])] = \
                    f"score: job failed: {res.records.get(k, {}).get('error', '?')}"
        return res.ok_keys

    # -- results -----------------------------------------------------------------------------
    def results(self, score_keys: list[str], mixtures: pd.DataFrame) -> pd.DataFrame:
        df = self.store.read_table("score", score_keys)
        items = {r["item_id"]: r for r in mixtures.to_dict("records")}
        extra = []
        for (iid, mid, alg), reason in sorted(self.blocked.items()):
            base = items.get(iid, {"item_id": iid})
            sysd = next((s for s, a, _ in self._systems if s["model_id"] == mid and a == alg), {"model_id": mid})
            extra.append({**{c: base.get(c) for c in ITEM_COLUMNS}, "model_id": mid, "model": sysd.get("model"),
                          "fusion": sysd.get("fusion"), "algorithm": alg, "status": STATUS_FAILED, "error": reason})
        if extra:
            df = pd.concat([df, pd.DataFrame(extra)], ignore_index=True) if len(df) else pd.DataFrame(extra)
        if df.empty:
            return df
        for c in WEIGHT_COLUMNS:
            if c not in df:
                df[c] = np.nan
        df = df.drop_duplicates(subset=["item_id", "model_id", "algorithm"], keep="first")
        front = [c for c in RESULT_ID_COLUMNS if c in df]
        df = df[front + [c for c in df.columns if c not in front]]
        df = df.sort_values(["item_id", "model_id", "algorithm"], kind="stable").reset_index(drop=True)
        atomic_write_parquet(self.run_dir / "results.parquet", df)
        atomic_write_csv(self.run_dir / "results.csv", df)
        return df

    def failures(self) -> pd.DataFrame:
        rows = []
        for stage, res in self.summary.stages.items():
            for k in res.failed_keys:
                rec = res.records.get(k, {})
                rows.append({"stage": stage, "key": k, "label": rec.get("label", ""), "attempts": rec.get("attempts"),
                             "error": rec.get("error", ""), "traceback": rec.get("traceback", "")})
        df = pd.DataFrame(rows, columns=["stage", "key", "label", "attempts", "error", "traceback"])
        atomic_write_parquet(self.run_dir / "failures.parquet", df)
        atomic_write_csv(self.run_dir / "failures.csv", df)
        return df

    # -- report ------------------------------------------------------------------------------
    def report_dir(self) -> Path:
        """``RunOptions.report_dir``, else ``reports/<run folder name>`` (relative to the cwd)."""
        return Path(self.opts.report_dir) if self.opts.report_dir else Path("reports") / self.run_dir.name

    def report(self) -> Optional[str]:
        """Write the report (:func:`benchmark.report.api.write_report`) into :meth:`report_dir`;
        a failing report is recorded as a failed ``report`` stage, the results stay."""
        try:
            from benchmark.report.api import write_report
        except ImportError as exc:
            log.info("no report module (%s); skipping the report", exc)
            return None
        t0 = time.perf_counter()
        try:
            out = write_report(self.run_dir, self.report_dir(), self.spec, progress=self.opts.progress)
        except Exception as exc:  # noqa: BLE001 - the results are safe; report the problem
            log.error("report failed: %s: %s", type(exc).__name__, exc)
            self.summary.stages["report"] = StageResult("report", ["report"], {"report": {
                "status": "failed", "error": f"{type(exc).__name__}: {exc}"}}, ran=1, failed=1,
                wall_time_s=time.perf_counter() - t0)
            return None
        self.summary.stages["report"] = StageResult("report", ["report"], {"report": {"status": STATUS_DONE}}, ran=1,
                                                    wall_time_s=time.perf_counter() - t0)
        return str(out) if out is not None else None

    # -- all ---------------------------------------------------------------------------------
    def run_until(self, until: str = "results") -> dict[str, Any]:
        """Run the stages needed for ``until`` (a stage of :data:`STAGES` or ``"results"``),
        with exactly the jobs (and keys) of a full run, so a later ``run`` reuses them.

        Returns what was produced: ``corpus_root``, ``corpus_id``, ``trained`` (label ->
        checkpoint/key), ``mixtures``, ``enhanced`` (ok enhancement jobs), ``results``.
        ``mix`` needs no training; ``train`` needs no mixing."""
        if until not in STAGES + ("results",):
            raise ValueError(f"run_until: unknown stage {until!r} (one of {STAGES + ('results',)})")
        _check_labels(self.spec)
        self._expected_items = []
        self._mix_key_of = {}
        self._systems = []
        out: dict[str, Any] = {}
        out["corpus_root"], out["corpus_id"] = self.corpus()
        if until == "corpus":
            return out
        if until != "mix":
            out["trained"] = self.train(out["corpus_root"], out["corpus_id"])
            if until == "train":
                return out
        out["mixtures"] = self.mix(out["corpus_root"], out["corpus_id"])
        if until == "mix":
            return out
        self._systems = self.systems(out["trained"])
        out["enhanced"] = self.enhance(out["mixtures"], out["trained"])
        if until == "enhance":
            return out
        score_keys = self.score(out["enhanced"])
        res = self.results(score_keys, out["mixtures"])
        self.failures()
        self.summary.n_rows = int(len(res))
        self.summary.n_failed_rows = int((res["status"] != STATUS_OK).sum()) if len(res) else 0
        out["results"] = res
        return out

    def run(self) -> RunSummary:
        t0 = time.perf_counter()
        self.run_until("results")
        if self.opts.report:
            self.summary.report_path = self.report()
        self.summary.wall_time_s = time.perf_counter() - t0
        return self.summary


def run_stages(spec: ExperimentSpec, run_dir: str | os.PathLike, until: str,
               opts: Optional[RunOptions] = None) -> tuple[RunSummary, dict[str, Any]]:
    """Run the stages of ``spec`` needed for ``until`` in ``run_dir`` (locked, resumable, the same
    cached jobs as :func:`run_pipeline`): what the stage subcommands (``mix``, ``train``,
    ``enhance``, ``score``) call. Returns the summary and :meth:`Pipeline.run_until`'s dict."""
    opts = opts or RunOptions(report=False)
    run_dir = Path(run_dir)
    store = RunStore(run_dir)
    with store.lock():
        store.clean_temp()
        write_run_json(run_dir, _asdict(effective_spec(spec)), preset=opts.preset,
                       options=dict(dataclasses.asdict(opts), stage=until))
        executor = make_executor(jobs=opts.jobs, dask_local=opts.dask_local, scheduler=opts.scheduler)
        t0 = time.perf_counter()
        try:
            p = Pipeline(spec, run_dir, opts, executor)
            produced = p.run_until(until)
        finally:
            executor.close()
        p.summary.wall_time_s = time.perf_counter() - t0
        finish_run_json(run_dir, p.summary.as_dict())
    return p.summary, produced


def run_pipeline(spec: ExperimentSpec, run_dir: str | os.PathLike, opts: Optional[RunOptions] = None) -> RunSummary:
    """Run (or resume) every stage of ``spec`` in ``run_dir``; see the module docstring."""
    opts = opts or RunOptions()
    run_dir = Path(run_dir)
    store = RunStore(run_dir)
    with store.lock():
        store.clean_temp()
        write_run_json(run_dir, _asdict(effective_spec(spec)), preset=opts.preset, options=dataclasses.asdict(opts))
        executor = make_executor(jobs=opts.jobs, dask_local=opts.dask_local, scheduler=opts.scheduler)
        try:
            summary = Pipeline(spec, run_dir, opts, executor).run()
        finally:
            executor.close()
        finish_run_json(run_dir, summary.as_dict())
    return summary


__all__ = ["RunOptions", "RunSummary", "Pipeline", "run_pipeline", "run_stages", "effective_spec", "stage_version",
           "STAGES"]
