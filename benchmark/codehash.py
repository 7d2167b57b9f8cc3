"""The code version of each stage: a hash of the source files its results depend on.

A stage's files are its *entry modules* (:data:`STAGE_ENTRIES`; a package stands for every
module under it) plus, transitively, every module of this project (packages ``benchmark``,
``models``, ``noise_sets``) they import. Imports are found statically with :mod:`ast`, without
importing anything:

* ``import a.b`` and ``from a.b import c`` (``c`` when it is a submodule), at any depth of the
  file (the code imports lazily inside functions), relative imports included;
* the parent packages of every module found (their ``__init__.py`` runs on import); of a
  package reached only as a parent, only the imports that run at import time are followed
  (not those inside its functions); the same for :data:`IMPORT_TIME_ONLY` (the config module).

Modules that a registry loads by name (``Registry(..., modules=(...))``) or discovers in a
package (``package=``) are not found this way: each stage lists them among its entries (a
package entry covers every module in it, so a new metric or noise file counts at once).
Third-party and standard-library imports are ignored, and so are the harness modules of
:data:`HARNESS` (runner, report, commands, CLI, perf tools, and this module, which hashes code
but computes no result): they plan, store and present
results without changing them, so editing the report never reruns training. The exceptions
(:data:`NOT_HARNESS`) compute results: each stage module of :mod:`benchmark.runner.stages`
(its jobs' functions and their keys) is an entry of its own stage, so editing ``enhance_job``
reruns the enhancement and nothing before it, and :mod:`benchmark.report.diagnostics`, whose
reliability-weight summaries the score jobs write into every result row, is an entry of the
score stage (its own harness imports, the report's statistics and run-folder helpers, are not
followed). The pipeline, store, executors and status modules stay out. The runner's own job
wiring also has a hand-bumped version per stage (:data:`STAGE_VERSIONS`).

The hash covers the files' bytes (not their mtimes), sorted by path relative to the repository
root, so any edit of a covered file -- a comment included -- changes it. Results are cached per
process (:func:`stage_code` is memoised on ``(stage, root)``); a long-lived process does not see
later edits (call ``stage_code.cache_clear()``).
"""
from __future__ import annotations

import ast
import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

#: repository root of this checkout (holds ``benchmark/``, ``models/``, ``noise_sets/``)
REPO_ROOT = Path(__file__).resolve().parents[1]
PROJECT_PACKAGES = ("benchmark", "models", "noise_sets")
#: modules (and packages) never followed: they do not change any stage's results
HARNESS = ("benchmark.runner", "benchmark.report", "benchmark.commands", "benchmark.cli", "benchmark.perf",
           "benchmark.perf_grid", "benchmark.codehash")
#: modules under :data:`HARNESS` that are followed all the same (they compute results): the
#: stage modules and the reliability-weight summaries of the diagnostics
NOT_HARNESS = ("benchmark.runner.stages", "benchmark.report.diagnostics")
#: modules followed like parent packages (only their import-time imports): the configuration,
#: whose functions import every registry only to validate names (the settings themselves are in
#: the job keys)
IMPORT_TIME_ONLY = ("benchmark.spec",)

#: the runner's own version of each stage (bump by hand when a harness module, e.g. ``jobs.py``'s
#: key computation or ``pipeline.py``, changes what a stage's jobs compute; the stage modules
#: themselves are in the code hash); :func:`stage_version` appends the code hash
STAGE_VERSIONS = {"corpus": "1", "train": "1", "speech-nmf": "1", "mix": "1", "enhance": "1", "score": "1"}

#: the entry modules of each stage (and of ``speech-nmf``, the train job that learns the speech
#: NMF dictionary of the ``nmf-only`` baseline with ``models.enhancement.baselines``, so that
#: editing the EM does not rerun the speech models' training); a package stands for all its modules
STAGE_ENTRIES: dict[str, tuple[str, ...]] = {
    # the corpus builders (the registry of benchmark.corpus names them) and the manifest contract
    "corpus": ("benchmark.runner.stages.corpus", "benchmark.corpus.build", "benchmark.corpus.manifest",
               "benchmark.corpus.synthetic", "benchmark.corpus.adapters"),
    # speech-model training (the fusion zoo is filled through models.registry.FUSIONS)
    "train": ("benchmark.runner.stages.train", "models.training", "models.vae", "models.fusion", "models.visual",
              # the augmentation reaches the corruptions through their registry, by name
              "benchmark.conditions.corruptions"),
    # (its job has a module of its own, which the train stage module imports by name only)
    "speech-nmf": ("benchmark.runner.stages.speech_nmf", "models.enhancement.baselines"),
    # the noise registry's modules (noise_sets) and the corruptions
    "mix": ("benchmark.runner.stages.mix", "benchmark.conditions.build", "benchmark.conditions.mixing",
            "benchmark.conditions.corruptions", "noise_sets"),
    # every algorithm module (the algorithm registry names them) and, through their imports, the
    # model classes they load checkpoints into
    "enhance": ("benchmark.runner.stages.enhance", "models.enhancement", "models.checkpoint", "models.mixture"),
    # the metrics and the per-row reliability-weight summaries (benchmark.report.diagnostics)
    "score": ("benchmark.runner.stages.score", "benchmark.metrics", "benchmark.report.diagnostics"),
}


def code_unit(stage: str, inputs: dict[str, Any]) -> str:
    """The :data:`STAGE_ENTRIES` key whose version a job of ``stage`` with these key inputs
    carries (``speech-nmf`` for that train job, else the stage)."""
    return "speech-nmf" if stage == "train" and inputs.get("what") == "speech-nmf" else stage


_MODULE_NAME = re.compile(r"^(?:%s)(?:\.[A-Za-z_][A-Za-z0-9_]*)*$" % "|".join(PROJECT_PACKAGES))


@dataclass(frozen=True)
class CodeHash:
    """The code identity of one stage: ``digest`` (16 hex digits) over ``files`` (paths relative
    to the repository root, sorted)."""

    stage: str
    digest: str
    files: tuple[str, ...]

    def as_dict(self, with_files: bool = True) -> dict[str, object]:
        d: dict[str, object] = {"digest": self.digest, "n_files": len(self.files)}
        if self.stage in STAGE_VERSIONS:
            d["version"] = _version(self.stage, self.digest)
        if with_files:
            d["files"] = list(self.files)
        return d


def _under(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == h or name.startswith(h + ".") for h in prefixes)


def _is_harness(name: str) -> bool:
    return _under(name, HARNESS) and not _under(name, NOT_HARNESS)


def module_file(name: str, root: Path) -> Optional[Path]:
    """The source file of project module ``name`` under ``root`` (``a/b.py`` or
    ``a/b/__init__.py``), or None (not a project module, a harness module, or no such file)."""
    if not _MODULE_NAME.match(name) or _is_harness(name):
        return None
    base = root.joinpath(*name.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_names(path: Path, root: Path, *, import_time_only: bool = False) -> set[str]:
    """Dotted names a file may import: every ``import``/``from ... import`` (relative ones
    resolved; ``from a import b`` gives ``a`` and ``a.b``); with ``import_time_only``, not those
    inside functions. Names outside the project are kept; :func:`module_file` filters them."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    mod = _module_name(path, root)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out: set[str] = set()
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if import_time_only and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        todo.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                if node.level - 1 >= len(parts):
                    continue
                base = ".".join(parts[:len(parts) - (node.level - 1)])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names if a.name != "*")
    return out


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _entry_files(name: str, root: Path) -> list[Path]:
    """The file of module ``name``; for a package, every module file under it."""
    f = module_file(name, root)
    if f is None:
        raise ValueError(f"codehash: entry module {name!r} not found under {root}")
    if f.name != "__init__.py":
        return [f]
    return sorted(p for p in f.parent.rglob("*.py") if module_file(_module_name(p, root), root) == p)


def module_closure(entries: Iterable[str], root: Path = REPO_ROOT) -> list[Path]:
    """The entry modules' files and every project module file they import, transitively, with
    their parent packages (sorted by path)."""
    root = Path(root).resolve()
    full: set[Path] = set()  # imported by name: all their imports followed
    parents: set[Path] = set()  # reached only as parent packages: import-time imports followed
    todo: list[tuple[Optional[Path], bool]] = []

    def add(name: str) -> None:
        chain = _with_parents(name)
        todo.append((module_file(name, root), name not in IMPORT_TIME_ONLY))
        todo.extend((module_file(n, root), False) for n in chain[:-1])

    for e in entries:
        todo += [(f, True) for f in _entry_files(e, root)]
        add(e)
    while todo:
        p, is_full = todo.pop()
        if p is None or p in full or (p in parents and not is_full):
            continue
        (full if is_full else parents).add(p)
        for name in imported_names(p, root, import_time_only=not is_full):
            add(name)
    return sorted(full | parents)


def code_hash(entries: Iterable[str], root: Path = REPO_ROOT, name: str = "") -> CodeHash:
    """Hash the files of :func:`module_closure` (each file's path relative to ``root`` and its
    bytes, in path order); not memoised."""
    root = Path(root).resolve()
    rels = sorted(p.relative_to(root).as_posix() for p in module_closure(entries, root))
    h = hashlib.sha256()
    for rel in rels:
        h.update(rel.encode() + b"\0" + (root / rel).read_bytes() + b"\0")
    return CodeHash(name, h.hexdigest()[:16], tuple(rels))


@functools.lru_cache(maxsize=None)
def stage_code(stage: str, root: Path = REPO_ROOT) -> CodeHash:
    """The :class:`CodeHash` of ``stage`` (a key of :data:`STAGE_ENTRIES`) for the checkout at
    ``root``, memoised per process."""
    return code_hash(STAGE_ENTRIES[stage], root, stage)


def stage_version(stage: str, root: Path = REPO_ROOT) -> str:
    """``<runner version>+<code hash>`` of a stage: what its jobs' keys hash as their code version."""
    return _version(stage, stage_code(stage, root).digest)


def _version(stage: str, digest: str) -> str:
    return f"{STAGE_VERSIONS[stage]}+{digest}"


def code_hashes(root: Path = REPO_ROOT) -> dict[str, CodeHash]:
    """:func:`stage_code` of every stage."""
    return {s: stage_code(s, root) for s in STAGE_ENTRIES}


__all__ = ["CodeHash", "code_unit", "STAGE_ENTRIES", "STAGE_VERSIONS", "HARNESS", "NOT_HARNESS", "code_hash", "stage_code", "stage_version", "code_hashes",
           "module_closure", "imported_names", "module_file"]
