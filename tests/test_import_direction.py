"""Imports run one way (statically, with :mod:`ast`; nothing is imported).

* Every module under ``models/`` imports of :mod:`benchmark` only the leaf helpers listed in
  ``models/__init__.py`` (:data:`MODELS_MAY_IMPORT`), and those leaves (and the package
  ``__init__`` files that run when they are imported) import only leaves in turn.
* The modules below the harness (``benchmark/conditions``, ``benchmark/corpus``,
  ``benchmark/metrics``, the leaf helpers, ``noise_sets``) import nothing of the harness
  (``benchmark.runner``, ``benchmark.report``, ``benchmark.commands``, the CLI, the perf tools),
  except the exceptions of :data:`KNOWN_UPWARD`, each with its reason.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: the benchmark modules ``models/`` may import (a package entry covers its submodules);
#: the reasons are in ``models/__init__.py``
MODELS_MAY_IMPORT = ("benchmark.registry", "benchmark.seeding", "benchmark.audio_io", "benchmark.configtools",
                     "benchmark.threads", "benchmark.conditions.corruptions", "benchmark.corpus.manifest")
#: package inits that run when a leaf is imported (their import-time imports must be leaves too)
LEAF_PARENTS = ("benchmark", "benchmark.conditions", "benchmark.corpus")
HARNESS = ("benchmark.runner", "benchmark.report", "benchmark.commands", "benchmark.cli", "benchmark.perf",
           "benchmark.perf_grid")
BELOW_HARNESS_DIRS = ("benchmark/conditions", "benchmark/corpus", "benchmark/metrics", "noise_sets")
#: (importing module, imported module) pairs allowed to point upwards, with the reason
KNOWN_UPWARD: set[tuple[str, str]] = set()  # none: the code hash lives in benchmark.codehash, not in the runner


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, *, top_level_only: bool = False, name: str | None = None) -> set[str]:
    """Absolute names of the modules ``path`` imports (``from a import b`` gives ``a`` and ``a.b``,
    since ``b`` may be a submodule); relative imports resolved; with ``top_level_only`` only the
    statements that run at import time (not those inside functions). ``name``: the module's
    dotted name (default: from its path in the repository)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    pkg = (name or module_name(path)).split(".")
    if path.name != "__init__.py":
        pkg = pkg[:-1]
    if top_level_only:
        nodes = []
        todo = list(tree.body)
        while todo:
            n = todo.pop()
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            nodes.append(n)
            todo.extend(ast.iter_child_nodes(n))
    else:
        nodes = list(ast.walk(tree))
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(pkg[:len(pkg) - node.level + 1] + ([base] if base else []))
            if base:
                out.add(base)
            out.update(f"{base}.{a.name}" if base else a.name for a in node.names)
    return out


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def project_modules(name: str) -> bool:
    return name == "benchmark" or name.startswith("benchmark.")


def source(name: str) -> Path | None:
    base = REPO / Path(*name.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.exists():
            return p
    return None


def bad_benchmark_imports(path: Path, *, top_level_only: bool = False, name: str | None = None) -> list[str]:
    """The benchmark modules ``path`` imports that are neither a leaf nor a leaf's parent package
    (``from benchmark.x import Name`` counts as ``benchmark.x``: names that are not modules are
    dropped)."""
    bad = []
    for mod in sorted(imports(path, top_level_only=top_level_only, name=name)):
        if not project_modules(mod) or source(mod) is None:
            continue  # third-party, or a class/function imported from a module (checked as the module)
        if within(mod, MODELS_MAY_IMPORT) or mod in LEAF_PARENTS:
            continue
        bad.append(mod)
    return bad


def test_the_checker_sees_lazy_relative_and_from_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from benchmark.spec import ModelEntry\n"
                     "from benchmark import runner\nimport benchmark.report.tables\n"
                     "from benchmark.seeding import derive_seed\nfrom benchmark.conditions.corruptions import CORRUPTIONS\n"
                     "from ... import benchmark\nfrom ...benchmark import cli\n")
    found = bad_benchmark_imports(probe, name="models.sub.probe")
    # (models.sub.probe: three dots reach the repository root)
    assert found == ["benchmark.cli", "benchmark.report.tables", "benchmark.runner", "benchmark.spec"]
    # a function-level import is skipped when only import-time statements count
    assert "benchmark.spec" not in bad_benchmark_imports(probe, name="models.sub.probe", top_level_only=True)


def test_models_import_only_leaf_helpers_of_benchmark():
    offenders = {}
    for path in sorted((REPO / "models").rglob("*.py")):
        bad = bad_benchmark_imports(path)
        if bad:
            offenders[path.relative_to(REPO).as_posix()] = bad
    assert not offenders, f"models/ imports non-leaf benchmark modules (see models/__init__.py): {offenders}"


@pytest.mark.parametrize("leaf", MODELS_MAY_IMPORT + LEAF_PARENTS)
def test_leaf_helpers_import_only_leaves(leaf):
    path = source(leaf)
    assert path is not None, f"leaf {leaf} not found"
    files = sorted(path.parent.rglob("*.py")) if path.name == "__init__.py" and leaf not in LEAF_PARENTS else [path]
    offenders = {}
    for f in files:
        # a parent package only needs its import-time imports to be leaves
        bad = bad_benchmark_imports(f, top_level_only=leaf in LEAF_PARENTS)
        if bad:
            offenders[f.relative_to(REPO).as_posix()] = bad
    assert not offenders, f"leaf helpers import non-leaf benchmark modules: {offenders}"


def test_modules_below_the_harness_do_not_import_it():
    offenders = []
    paths = [p for d in BELOW_HARNESS_DIRS for p in sorted((REPO / d).rglob("*.py"))]
    paths += [source(m) for m in MODELS_MAY_IMPORT if source(m).name != "__init__.py"]
    for path in paths:
        me = module_name(path)
        for mod in sorted(imports(path)):
            if within(mod, HARNESS) and source(mod) is not None and (me, mod) not in KNOWN_UPWARD:
                offenders.append((me, mod))
    assert not offenders, f"modules below the harness import it: {offenders}"
