"""Build or locate a corpus from a :class:`~benchmark.spec.CorpusSpec` (any registered corpus).

``ensure_corpus(spec)`` is what every stage and the runner call: it returns the corpus root,
building it with the builder registered in :data:`benchmark.corpus.CORPORA` when the manifest is
missing or was built with other settings, and reusing it otherwise. The default root is
``data/corpus/<name>-<hash of the settings>`` (``$AVBENCH_DATA`` replaces ``data``). Builders
take ``build(spec, root, *, progress=True) -> Path`` and handle ``spec.skip_bad`` themselves
(bad items skipped and listed in ``<root>/bad_items.csv`` instead of aborting).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator, Optional

from benchmark.configtools import to_dict
from benchmark.corpus import CORPORA
from benchmark.corpus.manifest import MANIFEST_FILE, SIDECAR_FILE, read_sidecar
from benchmark.seeding import stable_hash
from benchmark.spec import CorpusSpec

log = logging.getLogger(__name__)

#: CorpusSpec fields that do not change the built corpus (left out of its settings hash)
NON_CONTENT_FIELDS = ("root", "jobs")


def data_dir() -> Path:
    """Where built corpora live by default: ``$AVBENCH_DATA/corpus`` or ``data/corpus``."""
    return Path(os.environ.get("AVBENCH_DATA", "data")) / "corpus"


def corpus_settings(spec: CorpusSpec) -> dict[str, Any]:
    """The settings that define the corpus content (and the builder's version, if it has one)."""
    settings = {k: v for k, v in to_dict(spec).items() if k not in NON_CONTENT_FIELDS}
    try:
        version = getattr(CORPORA.get(spec.name), "version", None)
    except KeyError:
        version = None
    if version is not None:
        settings["builder_version"] = str(version)
    return settings


def settings_hash(spec: CorpusSpec) -> str:
    """A short hash of the corpus identity: :func:`corpus_settings` and the corpus stage's code
    hash (:func:`benchmark.codehash.stage_code`: the builders, the manifest contract and
    what they import), so a corpus built by other corpus code is not reused but rebuilt (in a new
    ``data/corpus/<name>-<hash>`` folder, or in place at an explicit root)."""
    from benchmark.codehash import stage_code

    return stable_hash(json.dumps(corpus_settings(spec), sort_keys=True, default=str), stage_code("corpus").digest,
                       length=12)


def corpus_root(spec: CorpusSpec) -> Path:
    """``spec.root`` if set, else ``data/corpus/<name>-<settings hash>``."""
    if spec.root:
        return Path(spec.root)
    return data_dir() / f"{spec.name}-{settings_hash(spec)}"


def is_current(spec: CorpusSpec, root: str | os.PathLike) -> bool:
    """True when ``root`` holds a complete corpus built with the settings of ``spec``."""
    root = Path(root)
    if not (root / MANIFEST_FILE).exists() or not (root / SIDECAR_FILE).exists():
        return False
    try:
        side = read_sidecar(root)
    except Exception:  # unreadable sidecar: rebuild
        return False
    return side.get("settings_hash") == settings_hash(spec)


@contextlib.contextmanager
def _build_lock(root: Path) -> Iterator[None]:
    """An exclusive lock so concurrent processes do not build the same corpus twice."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".build.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_corpus(spec: CorpusSpec, root: Optional[str | os.PathLike] = None, *, progress: bool = True,
                  force: bool = False) -> Path:
    """The corpus root for ``spec``: built if missing or built with other settings, else reused."""
    root = Path(root) if root is not None else corpus_root(spec)
    if not force and is_current(spec, root):
        log.info("reusing corpus %s (%s)", root, spec.name)
        return root
    builder = CORPORA.get(spec.name)
    with _build_lock(root):
        if not force and is_current(spec, root):  # built by another process meanwhile
            return root
        manifest = root / MANIFEST_FILE
        if manifest.exists():
            log.info("corpus at %s was built with other settings: rebuilding", root)
            manifest.unlink()  # a half-done rebuild must not look complete
        built = Path(builder(spec, root, progress=progress))
        if not (built / MANIFEST_FILE).exists():
            raise RuntimeError(f"corpus builder {spec.name!r} wrote no {MANIFEST_FILE} under {built}")
        side = read_sidecar(built)
        side.setdefault("corpus", spec.name)
        side.setdefault("settings", corpus_settings(spec))
        side["settings_hash"] = settings_hash(spec)
        tmp = built / f".{SIDECAR_FILE}.tmp"
        tmp.write_text(json.dumps(side, indent=2, sort_keys=True, default=str))
        os.replace(tmp, built / SIDECAR_FILE)
    log.info("corpus %s ready at %s", spec.name, built)
    return built
