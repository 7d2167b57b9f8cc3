"""Shared pytest fixtures.

``tiny_corpus``: a tiny synthetic AV corpus (4 train, 1 val, 2 test, 1 babble speakers x 3
utterances, 32x32 lips at 25 fps), built once per test session into a temporary folder; returns
its root. ``tiny_spec``: a fresh :class:`~benchmark.spec.ExperimentSpec` (the smoke preset with
its corpus pointing at ``tiny_corpus`` and a few cheaper settings) for every test that asks.
Keep these names stable: other test modules depend on them.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from benchmark.spec import CorpusSpec, ExperimentSpec, load_spec

TINY_CORPUS = CorpusSpec(
    name="synthetic", seed=0, n_train_speakers=4, n_val_speakers=1, n_test_speakers=2, n_babble_speakers=1,
    utts_per_speaker=3, fps=25.0, lip_size=32, jobs=1,
)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of the session's tiny synthetic corpus (manifest.parquet + audio/ + lips/)."""
    from benchmark.corpus.build import ensure_corpus

    root = tmp_path_factory.mktemp("tiny_corpus")
    return ensure_corpus(TINY_CORPUS, root=root, progress=False)


@pytest.fixture
def tiny_spec(tiny_corpus: Path) -> ExperimentSpec:
    """The smoke preset on the tiny corpus (2 test utterances, 1 training epoch, 100 bootstrap draws)."""
    spec = load_spec("smoke")
    spec.name = "tiny"
    spec.corpus = dataclasses.replace(TINY_CORPUS, root=str(tiny_corpus))
    spec.conditions.n_utterances = 2
    spec.training.epochs = 1
    spec.report.bootstrap = 100
    return spec


@pytest.fixture
def one_torch_thread():
    """Run the test with one torch CPU thread (tiny tensors: faster than several on the shared
    2-core machine); modules opt in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
