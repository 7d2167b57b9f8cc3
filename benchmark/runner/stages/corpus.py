"""Corpus stage: build (or locate) the spec's corpus; one job, run in this process.

Table: one row, ``root`` (absolute) and ``corpus_id`` (the corpus checksum from its sidecar,
which the keys of every later stage hash instead of the corpus settings). With
``RunOptions.corpus_root`` no job runs: the given corpus is validated and identified by its
checksum (the sidecar's, else a hash of the manifest file). The corpus job's key hashes the
corpus settings and this stage's code version; :func:`benchmark.corpus.build.settings_hash`
includes the same code hash, so an edit of the corpus code builds a new corpus instead of
reusing the one on disk.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from benchmark.codehash import stage_version
from benchmark.runner.context import StageContext
from benchmark.runner.jobs import JobOutput, StageJob, StageResult
from benchmark.runner.store import STATUS_DONE
from benchmark.seeding import stable_hash

log = logging.getLogger(__name__)


def corpus_job(corpus: dict[str, Any]) -> JobOutput:
    """Build or locate the corpus (:func:`benchmark.corpus.build.ensure_corpus`, which reuses a
    corpus on disk built with the same settings and corpus code)."""
    from benchmark.configtools import from_dict
    from benchmark.corpus.build import ensure_corpus
    from benchmark.corpus.manifest import MANIFEST_FILE, read_sidecar
    from benchmark.spec import CorpusSpec

    spec = from_dict(CorpusSpec, corpus, source="run.json corpus")
    root = Path(ensure_corpus(spec, progress=False)).resolve()
    checksum = read_sidecar(root).get("checksum", "")
    return JobOutput(outputs=[root / MANIFEST_FILE], meta={"root": str(root), "checksum": checksum})


@dataclass(frozen=True, eq=False)
class CorpusJob(StageJob):
    """The corpus job: its one argument, the corpus settings, is its key (with the code version)."""

    stage = "corpus"
    fn = staticmethod(corpus_job)
    corpus: dict[str, Any]


def _given_corpus(root: Path) -> tuple[Path, str]:
    """An existing corpus: validated, identified by its checksum (the sidecar's, else a hash of
    the manifest file)."""
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
    return root, checksum


def link_corpus(run_dir: Path, root: Path) -> None:
    """``<run>/corpus`` -> the corpus root (atomically replaced)."""
    link = run_dir / "corpus"
    if not (link.is_symlink() and os.readlink(link) == str(root)):
        tmp = run_dir / ".corpus.link.tmp"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(root, tmp)
        os.replace(tmp, link)


def serial(ctx: StageContext) -> bool:
    """The corpus job runs in this process (the corpus builder parallelises itself)."""
    return True


def plan(ctx: StageContext, upstream: dict[str, pd.DataFrame], done: Optional[pd.DataFrame] = None) -> list[CorpusJob]:
    """The corpus job (none with ``opts.corpus_root``, or on a second call)."""
    if done is not None or ctx.opts.corpus_root:
        return []
    from benchmark.configtools import to_dict

    return [CorpusJob(to_dict(ctx.spec.corpus), version=stage_version("corpus"), label=ctx.spec.corpus.name)]


def collect(ctx: StageContext, jobs: list[CorpusJob], result: Optional[StageResult],
            upstream: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row: ``root``, ``corpus_id``. A failed corpus job raises (nothing can follow it)."""
    if ctx.opts.corpus_root:
        root, cid = _given_corpus(Path(ctx.opts.corpus_root))
    else:
        (job,) = jobs
        rec = result.records[job.key]
        if rec["status"] != STATUS_DONE:
            raise RuntimeError(f"corpus stage failed: {rec['error']}\n{rec.get('traceback', '')}")
        root, cid = Path(rec["meta"]["root"]), rec["meta"].get("checksum") or job.key
    link_corpus(ctx.run_dir, root)
    return pd.DataFrame([{"root": str(root), "corpus_id": cid}])


__all__ = ["CorpusJob", "corpus_job", "plan", "collect", "serial", "link_corpus"]
